package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		payload []byte
	}{
		// A frame may carry nothing; the reader must not mistake it for the end.
		{"Empty", []byte{}},
		{"Small", []byte("hello")},
		// The limit itself is allowed.
		{"Largest", bytes.Repeat([]byte{0xab}, MaxPayload)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := appendFrame(nil, 42, tc.payload)
			data = appendFrame(data, 43, []byte("next"))
			fr := &frameReader{r: bytes.NewReader(data)}
			seq, got, err := fr.next()
			require.NoError(t, err)
			assert.Equal(t, uint64(42), seq)
			assert.Equal(t, tc.payload, got)
			seq, got, err = fr.next()
			require.NoError(t, err)
			assert.Equal(t, uint64(43), seq)
			assert.Equal(t, []byte("next"), got)
			_, _, err = fr.next()
			assert.ErrorIs(t, err, io.EOF)
		})
	}
}

// openLog opens the log in dir and returns it with the payloads it replayed.
func openLog(t *testing.T, dir string, after uint64, opts Options) (*Log, []string, error) {
	t.Helper()
	opts.Logger = quiet
	var got []string
	l, err := Open(dir, after, opts, func(lsn uint64, p []byte) error {
		got = append(got, fmt.Sprintf("%d:%s", lsn, p))
		return nil
	})
	return l, got, err
}

func appendAll(t *testing.T, l *Log, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		_, c, err := l.Append([]byte(p))
		require.NoError(t, err)
		require.NoError(t, c.Wait())
	}
}

func TestLogReplaysEveryRecordInOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, got, err := openLog(t, dir, 0, Options{})
	require.NoError(t, err)
	assert.Empty(t, got)
	appendAll(t, l, "a", "b")
	require.NoError(t, l.Close())

	// Reopening without appending must not lose or renumber anything.
	l, got, err = openLog(t, dir, 0, Options{})
	require.NoError(t, err)
	assert.Equal(t, []string{"1:a", "2:b"}, got)
	appendAll(t, l, "c")
	require.NoError(t, l.Close())
	l, got, err = openLog(t, dir, 0, Options{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	assert.Equal(t, []string{"1:a", "2:b", "3:c"}, got)

	_, _, err = l.Append([]byte("late"))
	assert.ErrorIs(t, err, ErrClosed)
}

func TestRotateAndRemove(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, _, err := openLog(t, dir, 0, Options{})
	require.NoError(t, err)
	appendAll(t, l, "a", "b")
	cut, err := l.Rotate()
	require.NoError(t, err)
	assert.Equal(t, uint64(2), cut)
	again, err := l.Rotate()
	require.NoError(t, err)
	assert.Equal(t, cut, again, "rotating an empty segment keeps it")
	appendAll(t, l, "c")

	// Before removal the whole log is there; a snapshot at cut skips it.
	require.NoError(t, l.Close())
	l, got, err := openLog(t, dir, 0, Options{})
	require.NoError(t, err)
	assert.Equal(t, []string{"1:a", "2:b", "3:c"}, got)
	require.NoError(t, l.RemoveThrough(cut))
	require.NoError(t, l.Close())

	l, got, err = openLog(t, dir, cut, Options{})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	assert.Equal(t, []string{"3:c"}, got)

	// Without the snapshot that covered them, the missing records are an
	// error, not an empty start.
	_, _, err = openLog(t, dir, 0, Options{})
	assert.ErrorContains(t, err, "a log file is missing")
}

func TestGroupCommitUnderConcurrency(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts Options
	}{
		// Each fsync starts as soon as the previous one ends.
		{"NoInterval", Options{}},
		// Waiting for more records, ended early by a small batch size.
		{"IntervalAndBatch", Options{FsyncInterval: 500_000, FsyncBatch: 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, _, err := openLog(t, dir, 0, tc.opts)
			require.NoError(t, err)
			const workers, each = 16, 50
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						_, c, err := l.Append(fmt.Appendf(nil, "%d-%d", w, i))
						if assert.NoError(t, err) {
							assert.NoError(t, c.Wait())
						}
					}
				})
			}
			wg.Wait()
			require.NoError(t, l.Barrier().Wait())
			require.NoError(t, l.Close())
			l, got, err := openLog(t, dir, 0, Options{})
			require.NoError(t, err)
			require.NoError(t, l.Close())
			assert.Len(t, got, workers*each)
		})
	}
}

// writeLog leaves a closed log of n records in dir and returns the path of
// its only segment and each frame's offset.
func writeLog(t *testing.T, dir string, n int) (string, []int64) {
	t.Helper()
	l, _, err := openLog(t, dir, 0, Options{})
	require.NoError(t, err)
	for i := range n {
		appendAll(t, l, fmt.Sprintf("record-%d", i+1))
	}
	require.NoError(t, l.Close())
	path := filepath.Join(dir, segmentName(1))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var offsets []int64
	fr := &frameReader{r: bytes.NewReader(data)}
	for {
		at := fr.off
		if _, _, err := fr.next(); err != nil {
			break
		}
		offsets = append(offsets, at)
	}
	require.Len(t, offsets, n+1, "header and records")
	return path, offsets[1:]
}

func TestDamagedLog(t *testing.T) {
	t.Parallel()
	const n = 5
	cases := []struct {
		name string
		// damage changes the segment, given each record's offset.
		damage func(data []byte, off []int64) []byte
		// durable is how many records the watermark says were durable
		// when the damage happened; 0 leaves it at all of them.
		durable int
		// want is the records replayed, or nil if Open must fail.
		want []string
		// wantErr is part of the error, with the offset it must name.
		wantErr string
	}{
		{
			// kill -9 in the middle of write(): the last frame is short.
			name:    "TruncatedLastRecordIsDropped",
			damage:  func(d []byte, off []int64) []byte { return d[:len(d)-3] },
			durable: 4,
			want:    []string{"1:record-1", "2:record-2", "3:record-3", "4:record-4"},
		},
		{
			// The crash came while the header itself was being written.
			name:    "TruncatedHeaderIsDropped",
			damage:  func(d []byte, off []int64) []byte { return d[:off[4]+5] },
			durable: 4,
			want:    []string{"1:record-1", "2:record-2", "3:record-3", "4:record-4"},
		},
		{
			// Power loss after the file grew but before its pages were
			// written: the tail reads back as zeros.
			name:    "ZeroFilledTailIsDropped",
			damage:  func(d []byte, off []int64) []byte { return append(d[:off[3]], make([]byte, 100)...) },
			durable: 3,
			want:    []string{"1:record-1", "2:record-2", "3:record-3"},
		},
		{
			// A damaged record followed by good ones cannot be a torn write.
			name:    "MidFileChecksumIsCorruption",
			damage:  func(d []byte, off []int64) []byte { d[off[1]+headerSize+2] ^= 0x01; return d },
			wantErr: "payload checksum mismatch",
		},
		{
			// A damaged length must not pass for a frame that runs past the end.
			name:    "MidFileLengthIsCorruption",
			damage:  func(d []byte, off []int64) []byte { d[off[2]+1] = 0xff; return d },
			wantErr: "header checksum mismatch",
		},
		{
			// Flipped bits in the last record are damage: a crash leaves a
			// short file or zeros, never altered bytes.
			name:    "LastRecordGarbageIsCorruption",
			damage:  func(d []byte, off []int64) []byte { d[off[4]+2] ^= 0x40; return d },
			wantErr: "header checksum mismatch",
		},
		{
			// A short tail the watermark says was durable: acknowledged
			// records were lost, which a crash cannot explain.
			name:    "TruncatedDurableRecordIsLoss",
			damage:  func(d []byte, off []int64) []byte { return d[:len(d)-3] },
			wantErr: "1 acknowledged records are missing",
		},
		{
			// Zeros over durable records are loss too, not a torn write.
			name:    "ZeroedDurableRecordsAreLoss",
			damage:  func(d []byte, off []int64) []byte { return append(d[:off[2]], make([]byte, len(d)-int(off[2]))...) },
			wantErr: "3 acknowledged records are missing",
		},
		{
			// An emptied file loses everything it held.
			name:    "EmptiedFileIsLoss",
			damage:  func(d []byte, off []int64) []byte { return nil },
			wantErr: "5 acknowledged records are missing",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, off := writeLog(t, dir, n)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			damaged := tc.damage(data, off)
			require.NoError(t, os.WriteFile(path, damaged, 0o644))
			if tc.durable > 0 {
				setWatermark(t, dir, watermark{first: 1, size: off[tc.durable], lsn: uint64(tc.durable)})
			}

			l, got, err := openLog(t, dir, 0, Options{})
			if tc.wantErr != "" {
				require.Error(t, err)
				var corrupt *CorruptError
				if errors.As(err, &corrupt) {
					assert.Equal(t, path, corrupt.File)
					assert.Contains(t, off, corrupt.Offset, "the offset is a record's")
				} else {
					var loss *LossError
					require.ErrorAs(t, err, &loss)
				}
				assert.ErrorContains(t, err, tc.wantErr)
				assert.ErrorContains(t, err, path)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			appendAll(t, l, "after")
			require.NoError(t, l.Close())

			// The torn tail was cut off, so the next start is clean and
			// the new record follows the last good one.
			l, got, err = openLog(t, dir, 0, Options{})
			require.NoError(t, err)
			require.NoError(t, l.Close())
			assert.Equal(t, append(tc.want, fmt.Sprintf("%d:after", len(tc.want)+1)), got)
		})
	}
}

// setWatermark replaces dir's watermark, as a crash at another moment
// would have left it.
func setWatermark(t *testing.T, dir string, w watermark) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, WatermarkFile), w.encode(nil), 0o644))
}

func TestLostLogFilesAreRefusedUnlessAccepted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// damage changes the directory, whose one segment is path.
		damage func(t *testing.T, dir, path string)
	}{
		// Deleting the newest file used to start silently from nothing.
		{"DeletedFile", func(t *testing.T, dir, path string) { require.NoError(t, os.Remove(path)) }},
		{"HalfTruncatedFile", func(t *testing.T, dir, path string) {
			info, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, info.Size()/2))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name+"IsRefused", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, _ := writeLog(t, dir, 6)
			tc.damage(t, dir, path)
			_, _, err := openLog(t, dir, 0, Options{})
			var loss *LossError
			require.ErrorAs(t, err, &loss)
			assert.Equal(t, uint64(6), loss.Want)
		})
		t.Run(tc.name+"IsAcceptedOnRequest", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, _ := writeLog(t, dir, 6)
			tc.damage(t, dir, path)
			l, got, err := openLog(t, dir, 0, Options{AcceptLoss: true})
			require.NoError(t, err)
			appendAll(t, l, "after")
			require.NoError(t, l.Close())
			// The next start needs no acceptance: the watermark now
			// describes the shorter log.
			l, again, err := openLog(t, dir, 0, Options{})
			require.NoError(t, err)
			require.NoError(t, l.Close())
			assert.Equal(t, append(got, fmt.Sprintf("%d:after", len(got)+1)), again)
		})
	}
}

func TestLogShorterThanTheSnapshotSawIsLoss(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeLog(t, dir, 3)
	_, _, err := openLog(t, dir, 0, Options{Durable: 5})
	var loss *LossError
	require.ErrorAs(t, err, &loss)
	assert.Equal(t, uint64(3), loss.Have)
	assert.Equal(t, uint64(5), loss.Want)
}

func TestTornRecordInAnEarlierSegmentIsCorruption(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, _ := writeLog(t, dir, 3)
	l, _, err := openLog(t, dir, 0, Options{})
	require.NoError(t, err)
	appendAll(t, l, "in the next segment")
	require.NoError(t, l.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data[:len(data)-2], 0o644))

	_, _, err = openLog(t, dir, 0, Options{})
	var corrupt *CorruptError
	require.ErrorAs(t, err, &corrupt)
	assert.Equal(t, path, corrupt.File)
	assert.ErrorContains(t, err, "not the last")
}

func TestSnapshot(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, dir string, payloads ...string) {
		t.Helper()
		require.NoError(t, WriteSnapshot(nil, dir, func(w *SnapshotWriter) error {
			for _, p := range payloads {
				if err := w.Add([]byte(p)); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	read := func(dir string) ([]string, bool, error) {
		var got []string
		found, err := ReadSnapshot(dir, func(p []byte) error {
			got = append(got, string(p))
			return nil
		})
		return got, found, err
	}

	t.Run("AbsentIsNotAnError", func(t *testing.T) {
		t.Parallel()
		got, found, err := read(t.TempDir())
		require.NoError(t, err)
		assert.False(t, found)
		assert.Empty(t, got)
	})
	t.Run("ReplacedWhole", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, dir, "old")
		write(t, dir, "a", "", "c")
		got, found, err := read(dir)
		require.NoError(t, err)
		assert.True(t, found)
		assert.Equal(t, []string{"a", "", "c"}, got)
		_, err = os.Stat(filepath.Join(dir, SnapshotFile+".tmp"))
		assert.ErrorIs(t, err, os.ErrNotExist, "no temporary file is left")
	})
	t.Run("FailedWriteKeepsTheOldOne", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		write(t, dir, "old")
		err := WriteSnapshot(nil, dir, func(w *SnapshotWriter) error { return io.ErrShortWrite })
		require.ErrorIs(t, err, io.ErrShortWrite)
		got, _, err := read(dir)
		require.NoError(t, err)
		assert.Equal(t, []string{"old"}, got)
	})
	damages := []struct {
		name   string
		damage func([]byte) []byte
		reason string
	}{
		// A snapshot is renamed into place whole, so a short one is damage,
		// never a crash's doing, and it must not read as a smaller state.
		{"TruncatedBeforeTrailer", func(d []byte) []byte { return d[:len(d)-headerSize-trailerSize-8] }, "ends before its trailer"},
		{"TruncatedInsideTrailer", func(d []byte) []byte { return d[:len(d)-3] }, "payload bytes"},
		{"FlippedBit", func(d []byte) []byte { d[len(d)/2] ^= 0x10; return d }, "checksum mismatch"},
	}
	for _, tc := range damages {
		t.Run(tc.name+"IsCorruption", func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write(t, dir, "first record", "second record", "third record")
			path := filepath.Join(dir, SnapshotFile)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, tc.damage(data), 0o644))
			_, _, err = read(dir)
			var corrupt *CorruptError
			require.ErrorAs(t, err, &corrupt)
			assert.Equal(t, path, corrupt.File)
			assert.ErrorContains(t, err, tc.reason)
		})
	}
}

func TestLockDirAllowsOneProcess(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	f, err := LockDir(dir)
	require.NoError(t, err)
	_, err = LockDir(dir)
	require.ErrorContains(t, err, "in use")
	require.NoError(t, f.Close())
	f, err = LockDir(dir)
	require.NoError(t, err, "closing releases the lock")
	require.NoError(t, f.Close())
}
