package memstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/memstore/wal"
	"github.com/adcount/impression-counter/shared/memstore/wal/faultfs"
	"github.com/adcount/impression-counter/shared/storetest"
)

var _ adcount.Pinger = (*memstore.Store)(nil)

// openFaulty opens a store in dir that writes through fs, with campaign
// "c1" created.
func openFaulty(t *testing.T, dir string, fs *faultfs.FS, clock *storetest.Clock) *memstore.Store {
	t.Helper()
	s, err := memstore.Open(dir, memstore.WithClock(clock.Now), memstore.WithLogger(quiet),
		memstore.WithSnapshotInterval(time.Hour), memstore.WithFS(fs))
	require.NoError(t, err)
	c, err := adcount.NewCampaign("c1", "Faults", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(context.Background(), c))
	return s
}

func impression(i int) adcount.Impression {
	return adcount.Impression{CampaignID: "c1", UserID: fmt.Sprint("u", i), AdID: "a"}
}

// segments makes a hook apply to log segments only.
func segments(h faultfs.Hook) faultfs.Hook {
	return func(path string) error {
		if !strings.HasPrefix(filepath.Base(path), "wal-") {
			return nil
		}
		return h(path)
	}
}

func TestPingSaysNotReadyOnceTheLogHasFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mem, err := memstore.New()
	require.NoError(t, err)
	require.NoError(t, mem.Ping(ctx), "a store without a data directory cannot fail this way")

	fs := &faultfs.FS{}
	s := openFaulty(t, t.TempDir(), fs, storetest.NewClock(storetest.Epoch))
	require.NoError(t, s.Ping(ctx))
	fs.OnSync(segments(func(string) error { return syscall.EIO }))
	_, err = s.RecordImpression(ctx, impression(1))
	require.ErrorIs(t, err, adcount.ErrUnavailable)

	err = s.Ping(ctx)
	require.ErrorIs(t, err, adcount.ErrUnavailable, "readiness fails while writes fail")
	assert.ErrorIs(t, err, syscall.EIO)
	fs.OnSync(nil)
	_, err = s.RecordImpression(ctx, impression(2))
	require.ErrorIs(t, err, adcount.ErrUnavailable, "a later fsync that succeeds proves nothing")
	require.ErrorIs(t, s.Ping(ctx), adcount.ErrUnavailable)
	assert.Error(t, s.Close())
}

// TestStatsNeverShowACountAFailedFsyncTakesBack reproduces issue 11's
// item 8: an impression was counted in memory before its fsync failed, so
// stats showed it, answered 503, and total fell after a restart.
func TestStatsNeverShowACountAFailedFsyncTakesBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	fs := &faultfs.FS{}
	clock := storetest.NewClock(storetest.Epoch)
	s := openFaulty(t, dir, fs, clock)
	c2, err := adcount.NewCampaign("c2", "Untouched", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c2))
	for i := range 3 {
		require.True(t, record(t, s, impression(i)))
	}
	require.True(t, record(t, s, adcount.Impression{CampaignID: "c2", UserID: "u", AdID: "a"}))

	// The next fsync blocks until the test lets it fail.
	inSync, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.OnSync(segments(func(string) error {
		once.Do(func() { close(inSync); <-release })
		return syscall.EIO
	}))
	recorded := make(chan error, 1)
	go func() {
		_, err := s.RecordImpression(ctx, impression(3))
		recorded <- err
	}()
	<-inSync
	type answer struct {
		st  adcount.Stats
		err error
	}
	read := make(chan answer, 1)
	go func() {
		st, err := s.Stats(ctx, "c1")
		read <- answer{st, err}
	}()
	close(release)
	require.ErrorIs(t, <-recorded, adcount.ErrUnavailable)
	got := <-read
	if got.err == nil {
		assert.Equal(t, int64(3), got.st.Total, "stats read while the fsync ran show only durable impressions")
	} else {
		assert.ErrorIs(t, got.err, adcount.ErrUnavailable)
	}
	_, err = s.Stats(ctx, "c1")
	assert.ErrorIs(t, err, adcount.ErrUnavailable, "the undurable count is never shown")
	assert.Equal(t, [3]int64{1, 1, 1}, stats(t, s, "c2"), "a campaign whose counts are all durable still reads")
	require.Error(t, s.Close())

	s, err = openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)
	defer func() { assert.NoError(t, s.Close()) }()
	assert.Equal(t, int64(3), stats(t, s, "c1")[2], "the total after the restart is the one stats showed")
	assert.True(t, record(t, s, impression(3)), "the impression that got 503 counts when retried")
}

// TestAFailedFileOpenIsRetriedAndWritesGoOn reproduces issue 11's item 2:
// with the process out of file descriptors across a snapshot, opening the
// next file failed and every later impression got 503 until a restart.
func TestAFailedFileOpenIsRetriedAndWritesGoOn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// file is the base name prefix whose open fails.
		file string
	}{
		// The new log segment a snapshot starts.
		{"LogSegment", "wal-"},
		// The snapshot's temporary file.
		{"Snapshot", wal.SnapshotFile},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			fs := &faultfs.FS{}
			clock := storetest.NewClock(storetest.Epoch)
			s := openFaulty(t, dir, fs, clock)
			require.True(t, record(t, s, impression(0)))
			fs.OnOpen(func(path string) error {
				if strings.HasPrefix(filepath.Base(path), tc.file) {
					return syscall.EMFILE
				}
				return nil
			})
			require.ErrorIs(t, s.Snapshot(), syscall.EMFILE)
			assert.True(t, record(t, s, impression(1)), "writes go on")
			assert.NoError(t, s.Ping(ctx))

			fs.OnOpen(nil)
			require.NoError(t, s.Snapshot(), "the snapshot succeeds once the cause is gone")
			assert.True(t, record(t, s, impression(2)))
			require.NoError(t, s.Crash())
			s, err := openStore(t, dir, clock.Now, time.Hour)
			require.NoError(t, err)
			defer func() { assert.NoError(t, s.Close()) }()
			assert.Equal(t, int64(3), stats(t, s, "c1")[2])
		})
	}
}

// TestOpenRefusesLostAcknowledgedImpressions reproduces issue 11's item 6:
// damage at the end of the newest log file dropped acknowledged
// impressions with only a warning that called them unacknowledged.
func TestOpenRefusesLostAcknowledgedImpressions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		damage func(t *testing.T, seg string)
	}{
		{"EmptiedLog", func(t *testing.T, seg string) { require.NoError(t, os.Truncate(seg, 0)) }},
		{"HalfTruncatedLog", func(t *testing.T, seg string) {
			info, err := os.Stat(seg)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(seg, info.Size()/2))
		}},
		{"HalfZeroedLog", func(t *testing.T, seg string) {
			data, err := os.ReadFile(seg)
			require.NoError(t, err)
			clear(data[len(data)/2:])
			require.NoError(t, os.WriteFile(seg, data, 0o644))
		}},
		{"FlippedByteInTheLastRecord", func(t *testing.T, seg string) {
			data, err := os.ReadFile(seg)
			require.NoError(t, err)
			data[len(data)-6] ^= 0x20
			require.NoError(t, os.WriteFile(seg, data, 0o644))
		}},
		{"DeletedLog", func(t *testing.T, seg string) { require.NoError(t, os.Remove(seg)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clock := storetest.NewClock(storetest.Epoch)
			s, _ := openWithCampaign(t, dir, clock)
			for i := range 100 {
				require.True(t, record(t, s, impression(i)))
			}
			require.NoError(t, s.Crash())
			segs, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
			require.NoError(t, err)
			require.Len(t, segs, 1)
			tc.damage(t, segs[0])

			_, err = openStore(t, dir, clock.Now, time.Hour)
			require.Error(t, err)
			assert.ErrorContains(t, err, segs[0], "the message names the file")
			if !strings.Contains(err.Error(), "is corrupt at offset") {
				// Zeros that cut a record's header in two read as damage,
				// which is refused as damage is; all else is named loss.
				assert.ErrorContains(t, err, "acknowledged records are missing")
				assert.ErrorContains(t, err, "WithAcceptLoss")
			}

			s, err = memstore.Open(dir, memstore.WithClock(clock.Now), memstore.WithLogger(quiet), memstore.WithAcceptLoss(true))
			require.NoError(t, err, "the loss can be accepted")
			require.NoError(t, s.Close())
			s, err = openStore(t, dir, clock.Now, time.Hour)
			require.NoError(t, err, "once accepted, the next start is clean")
			require.NoError(t, s.Close())
		})
	}
}

// TestDuplicateWaitsOnlyForTheRecordThatMadeIt: a duplicate is answered
// only once the record that made it one is durable, but a repeat of a key
// whose record is long durable answers at once, even while another
// campaign's fsync is held.
func TestDuplicateWaitsOnlyForTheRecordThatMadeIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fs := &faultfs.FS{}
	s := openFaulty(t, t.TempDir(), fs, storetest.NewClock(storetest.Epoch))
	defer func() { assert.NoError(t, s.Close()) }()
	c2, err := adcount.NewCampaign("c2", "Quiet", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c2))
	durable := adcount.Impression{CampaignID: "c2", UserID: "u", AdID: "a"}
	require.True(t, record(t, s, durable))

	// The next fsync, for c1's new impression, is held until released.
	inSync, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	fs.OnSync(segments(func(string) error {
		once.Do(func() { close(inSync); <-release })
		return nil
	}))
	pending := make(chan error, 1)
	go func() {
		_, err := s.RecordImpression(ctx, impression(1))
		pending <- err
	}()
	<-inSync
	repeat := make(chan adcount.Outcome, 1)
	go func() {
		counted, err := s.RecordImpression(ctx, impression(1))
		assert.NoError(t, err)
		repeat <- counted
	}()

	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failure below must not leave the fsync held
	durableRepeat := make(chan error, 1)
	go func() {
		counted, err := s.RecordImpression(ctx, durable)
		assert.Equal(t, adcount.Duplicate, counted)
		durableRepeat <- err
	}()
	select {
	case err := <-durableRepeat:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("a repeat of a durable key waited for another campaign's fsync")
	}
	select {
	case <-repeat:
		t.Fatal("a repeat of a key whose record is not yet durable was answered")
	case <-time.After(50 * time.Millisecond):
	}
	releaseOnce()
	require.NoError(t, <-pending)
	assert.Equal(t, adcount.Duplicate, <-repeat, "the repeat is a duplicate once its record is durable")
}
