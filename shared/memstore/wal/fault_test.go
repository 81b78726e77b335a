package wal_test

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/memstore/wal"
	"github.com/adcount/impression-counter/shared/memstore/wal/faultfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// open opens the log in dir through fs and returns it with the payloads it
// replayed.
func open(t *testing.T, dir string, fs wal.FS) (*wal.Log, []string) {
	t.Helper()
	var got []string
	l, err := wal.Open(dir, 0, wal.Options{Logger: quiet, FS: fs}, func(lsn uint64, p []byte) error {
		got = append(got, fmt.Sprintf("%d:%s", lsn, p))
		return nil
	})
	require.NoError(t, err)
	return l, got
}

func appendDurably(t *testing.T, l *wal.Log, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		_, c, err := l.Append([]byte(p))
		require.NoError(t, err)
		require.NoError(t, c.Wait())
	}
}

// segmentsOnly makes a hook apply to log segments only, not to the
// watermark, the snapshot or the directory.
func segmentsOnly(h faultfs.Hook) faultfs.Hook {
	if h == nil {
		return nil
	}
	return func(path string) error {
		if !strings.HasPrefix(filepath.Base(path), "wal-") {
			return nil
		}
		return h(path)
	}
}

// TestNoWriteSucceedsAfterAFailedFsync reproduces issue 11's first defect:
// records appended while an fsync was failing went into the next batch,
// whose fsync succeeded, and were acknowledged although the kernel may
// have dropped the pages before them. From the failed byte on, the log
// must refuse everything, and a restart must find only what was durable.
func TestNoWriteSucceedsAfterAFailedFsync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fs := &faultfs.FS{}
	l, _ := open(t, dir, fs)
	appendDurably(t, l, "durable")

	// The next fsync fails once, after the test has appended behind it;
	// later fsyncs succeed, as they do once the kernel has dropped the
	// pages it could not write.
	inSync, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.OnSync(segmentsOnly(func(string) error {
		failed := false
		once.Do(func() {
			close(inSync)
			<-release
			failed = true
		})
		if failed {
			return syscall.EIO
		}
		return nil
	}))
	_, first, err := l.Append([]byte("fsync fails"))
	require.NoError(t, err)
	<-inSync
	_, behind, err := l.Append([]byte("appended during the failing fsync"))
	require.NoError(t, err)
	close(release)

	require.ErrorIs(t, first.Wait(), syscall.EIO)
	assert.ErrorIs(t, behind.Wait(), syscall.EIO, "a record behind a failed fsync is never acknowledged")
	_, _, err = l.Append([]byte("later"))
	assert.ErrorIs(t, err, syscall.EIO, "the log takes no more writes")
	assert.ErrorIs(t, l.Err(), syscall.EIO)
	assert.ErrorIs(t, l.Close(), syscall.EIO)

	l, got := open(t, dir, nil)
	require.NoError(t, l.Close())
	assert.Equal(t, []string{"1:durable"}, got, "a restart recovers only what was durable")
}

// TestAFailedWriteLeavesALogThatStarts reproduces issue 11's second case:
// an I/O error under the log left bytes that made the next start fail
// with "header checksum mismatch". The log cuts itself back to its last
// durable byte; if even that fails, the watermark says where the failure
// began and the next start drops what follows.
func TestAFailedWriteLeavesALogThatStarts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// truncate is the truncate hook while the device fails.
		truncate faultfs.Hook
	}{
		// The device fails a write but can still cut the file.
		{"CutBack", nil},
		// The device fails everything on the segment: only the
		// watermark's record of the failure saves the next start.
		{"CutFailsToo", func(string) error { return syscall.EIO }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fs := &faultfs.FS{}
			l, _ := open(t, dir, fs)
			appendDurably(t, l, "a", "b")
			fs.OnWrite(segmentsOnly(func(string) error { return syscall.EIO }))
			fs.OnTruncate(segmentsOnly(tc.truncate))
			_, c, err := l.Append([]byte("half written"))
			require.NoError(t, err)
			require.ErrorIs(t, c.Wait(), syscall.EIO)
			_, _, err = l.Append([]byte("refused"))
			require.ErrorIs(t, err, syscall.EIO)
			require.Error(t, l.Close())

			l, got := open(t, dir, nil)
			appendDurably(t, l, "c")
			require.NoError(t, l.Close())
			assert.Equal(t, []string{"1:a", "2:b"}, got)
			l, got = open(t, dir, nil)
			require.NoError(t, l.Close())
			assert.Equal(t, []string{"1:a", "2:b", "3:c"}, got, "the log continues cleanly")
		})
	}
}

// TestAFailedRotationIsRetriedAndWritesGoOn reproduces issue 11's second
// defect, the log's half: running out of file descriptors (or a directory
// made read-only for a while) when the next segment was opened failed the
// log for good. The current segment is intact, so writes go on into it and
// the rotation succeeds once the cause is gone.
func TestAFailedRotationIsRetriedAndWritesGoOn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// fail is the open hook while the cause lasts.
		fail faultfs.Hook
	}{
		// The new segment cannot be created.
		{"SegmentOpen", segmentsOnly(func(string) error { return syscall.EMFILE })},
		// It is created, but the directory cannot be opened to make its
		// entry durable: the half-made segment must not stay behind.
		{"DirectoryOpen", func(path string) error {
			if filepath.Ext(path) == "" && !strings.HasSuffix(path, wal.WatermarkFile) {
				return syscall.EMFILE
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fs := &faultfs.FS{}
			l, _ := open(t, dir, fs)
			appendDurably(t, l, "a")
			fs.OnOpen(tc.fail)
			_, err := l.Rotate()
			require.ErrorIs(t, err, syscall.EMFILE)
			assert.NoError(t, l.Err(), "the log is still usable")
			appendDurably(t, l, "b")

			fs.OnOpen(nil)
			cut, err := l.Rotate()
			require.NoError(t, err)
			assert.Equal(t, uint64(2), cut)
			appendDurably(t, l, "c")
			require.NoError(t, l.Close())
			l, got := open(t, dir, nil)
			require.NoError(t, l.Close())
			assert.Equal(t, []string{"1:a", "2:b", "3:c"}, got)
		})
	}
}
