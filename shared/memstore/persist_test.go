package memstore_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/memstore/wal"
	"github.com/adcount/impression-counter/shared/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t testing.TB, dir string, now func() time.Time, ttl time.Duration) (*memstore.Store, error) {
	t.Helper()
	return memstore.Open(dir, memstore.WithClock(now), memstore.WithDedupTTL(ttl),
		memstore.WithLogger(quiet), memstore.WithSnapshotInterval(time.Hour))
}

func TestPersistentConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store {
		s, err := openStore(t, t.TempDir(), now, ttl)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		return s
	})
}

// history is what TestRestore records before the restart: impressions
// spread over two days of buckets, so that the hour, the day and the total
// all differ.
type history struct {
	clock    *storetest.Clock
	campaign adcount.Campaign
	recent   adcount.Impression // counted a minute before the restart
}

func record(t *testing.T, s adcount.Store, imp adcount.Impression) bool {
	t.Helper()
	out, err := s.RecordImpression(context.Background(), imp)
	require.NoError(t, err)
	return out == adcount.Counted
}

func stats(t *testing.T, s adcount.Store, id string) [3]int64 {
	t.Helper()
	st, err := s.Stats(context.Background(), id)
	require.NoError(t, err)
	return [3]int64{st.LastHour, st.LastDay, st.Total}
}

// openWithCampaign opens a store in dir and creates campaign "c1" in it.
func openWithCampaign(t *testing.T, dir string, clock *storetest.Clock) (*memstore.Store, adcount.Campaign) {
	t.Helper()
	s, err := openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)
	c, err := adcount.NewCampaign("c1", "Restore", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(context.Background(), c))
	return s, c
}

// makeHistory opens a store in dir and records the history into it.
func makeHistory(t *testing.T, dir string, clock *storetest.Clock, snapshotAt int) (*memstore.Store, history) {
	t.Helper()
	s, c := openWithCampaign(t, dir, clock)
	imp := func(i int) adcount.Impression {
		return adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("u", i), AdID: "a"}
	}
	// Two per step, one of them repeated at once, a step being 20 minutes
	// for 30 hours: buckets fall out of the day and the hour.
	for i := range 90 {
		if i == snapshotAt {
			require.NoError(t, s.Snapshot())
		}
		require.True(t, record(t, s, imp(2*i)))
		require.True(t, record(t, s, imp(2*i+1)))
		require.False(t, record(t, s, imp(2*i)), "a repeat at once is a duplicate")
		clock.Advance(20 * time.Minute)
	}
	h := history{clock: clock, campaign: c, recent: imp(1000)}
	require.True(t, record(t, s, h.recent))
	clock.Advance(time.Minute)
	return s, h
}

func TestRestore(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// snapshotAt is the step before which a snapshot is taken, -1 for none.
		snapshotAt int
		// crash leaves without Close's final snapshot.
		crash bool
	}{
		// Everything comes back from the log alone.
		{"LogOnly", -1, true},
		// A snapshot in the middle, then log records after it.
		{"SnapshotThenLog", 45, true},
		// A graceful close: everything comes back from the final snapshot.
		{"SnapshotOnly", -1, false},
	}
	for _, tc := range cases {
		// restored records the history, restarts, checks what came back
		// and returns the restored store. Each subtest restores its own,
		// so that none depends on what another did to the store or clock.
		restored := func(t *testing.T) (*memstore.Store, history, [3]int64) {
			t.Helper()
			dir := t.TempDir()
			clock := storetest.NewClock(storetest.Epoch)
			s, h := makeHistory(t, dir, clock, tc.snapshotAt)
			before := stats(t, s, h.campaign.ID)
			require.NotEqual(t, before[0], before[1])
			require.NotEqual(t, before[1], before[2])
			if tc.crash {
				require.NoError(t, s.Crash())
			} else {
				require.NoError(t, s.Close())
			}

			s, err := openStore(t, dir, clock.Now, time.Hour)
			require.NoError(t, err)
			t.Cleanup(func() { assert.NoError(t, s.Close()) })
			got, err := s.Campaign(context.Background(), h.campaign.ID)
			require.NoError(t, err)
			assert.Equal(t, h.campaign.Name, got.Name)
			assert.True(t, h.campaign.StartTime.Equal(got.StartTime))
			assert.Equal(t, before, stats(t, s, h.campaign.ID), "last_hour, last_day and total survive")
			return s, h, before
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Run("DuplicateInsideWindow", func(t *testing.T) {
				t.Parallel()
				s, h, _ := restored(t)
				assert.False(t, record(t, s, h.recent))
			})
			t.Run("WindowsKeepSliding", func(t *testing.T) {
				t.Parallel()
				s, h, before := restored(t)
				h.clock.Advance(time.Hour)
				after := stats(t, s, h.campaign.ID)
				assert.Less(t, after[0], before[0], "impressions leave the hour on time")
				assert.Equal(t, before[2], after[2])
			})
			t.Run("CountsAgainAfterTTL", func(t *testing.T) {
				t.Parallel()
				s, h, _ := restored(t)
				h.clock.Advance(time.Hour)
				assert.True(t, record(t, s, h.recent))
			})
		})
	}
}

func TestRestoreKeepsDedupExactToTheMillisecond(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := storetest.NewClock(storetest.Epoch)
	s, c := openWithCampaign(t, dir, clock)
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}
	require.True(t, record(t, s, imp))
	require.NoError(t, s.Crash())

	clock.Advance(time.Hour - storetest.Tick)
	s, err := openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)
	assert.False(t, record(t, s, imp), "one tick before the TTL ends")
	clock.Advance(storetest.Tick)
	assert.True(t, record(t, s, imp), "at the TTL's end")
	require.NoError(t, s.Close())
}

func TestExpiredKeysAreNotRestored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := storetest.NewClock(storetest.Epoch)
	s, c := openWithCampaign(t, dir, clock)
	for i := range 100 {
		require.True(t, record(t, s, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint(i), AdID: "a"}))
	}
	require.NoError(t, s.Crash())
	clock.Advance(time.Hour)
	s, err := openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, s.DedupEntries(), "memory holds only live keys")
	assert.Equal(t, int64(100), stats(t, s, c.ID)[2])
	require.NoError(t, s.Close())
}

func TestOpenRefusesDamagedFiles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		file string
		// damage changes the file's bytes.
		damage func([]byte) []byte
	}{
		// A snapshot is renamed into place whole: any damage is an error.
		{"FlippedBitInSnapshot", wal.SnapshotFile, func(d []byte) []byte { d[len(d)/2] ^= 1; return d }},
		{"TruncatedSnapshot", wal.SnapshotFile, func(d []byte) []byte { return d[:len(d)/2] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clock := storetest.NewClock(storetest.Epoch)
			s, _ := makeHistory(t, dir, clock, -1)
			require.NoError(t, s.Close())
			path := filepath.Join(dir, tc.file)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, tc.damage(data), 0o644))

			_, err = openStore(t, dir, clock.Now, time.Hour)
			require.Error(t, err, "a damaged file never starts from zero")
			assert.ErrorContains(t, err, path)
			assert.ErrorContains(t, err, "offset")
		})
	}
}

func TestOpenRefusesMidLogCorruptionAndDropsATornTail(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (string, string, *storetest.Clock) {
		dir := t.TempDir()
		clock := storetest.NewClock(storetest.Epoch)
		s, _ := makeHistory(t, dir, clock, -1)
		require.NoError(t, s.Crash())
		segs, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
		require.NoError(t, err)
		require.Len(t, segs, 1)
		return dir, segs[0], clock
	}
	t.Run("MidFileCorruptionIsAnError", func(t *testing.T) {
		t.Parallel()
		dir, seg, clock := setup(t)
		data, err := os.ReadFile(seg)
		require.NoError(t, err)
		data[len(data)/2] ^= 0x08
		require.NoError(t, os.WriteFile(seg, data, 0o644))
		_, err = openStore(t, dir, clock.Now, time.Hour)
		require.ErrorContains(t, err, seg)
		assert.ErrorContains(t, err, "offset")
	})
	t.Run("TornTailLosesOnlyTheUnacknowledgedRecord", func(t *testing.T) {
		t.Parallel()
		dir, _, clock := setup(t)
		s, err := openStore(t, dir, clock.Now, time.Hour)
		require.NoError(t, err)
		want := stats(t, s, "c1")
		require.NoError(t, s.Crash())
		// An impression whose write the crash cut short: half its frame,
		// at the end of the newest segment.
		segs, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
		require.NoError(t, err)
		f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.Write([]byte{40, 0, 0, 0, 7, 7})
		require.NoError(t, err)
		require.NoError(t, f.Close())

		s, err = openStore(t, dir, clock.Now, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, want, stats(t, s, "c1"))
		require.NoError(t, s.Close())
	})
}

func TestSecondOpenOfADirectoryFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := openStore(t, dir, time.Now, time.Hour)
	require.NoError(t, err)
	_, err = openStore(t, dir, time.Now, time.Hour)
	require.ErrorContains(t, err, "in use")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
}

func TestCloseOfAMemoryOnlyStoreIsANoOp(t *testing.T) {
	t.Parallel()
	s, err := memstore.New()
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Snapshot())
}

// BenchmarkPersistence measures what DATA_DIR costs: the same parallel
// load of distinct impressions on a store without and with a data
// directory. Each core runs Clients goroutines, as a server runs many
// requests at once: with persistence they wait for a shared fsync, so
// throughput grows with the number waiting together. Run with -cpu 1,2 and
// compare within the same run.
func BenchmarkPersistence(b *testing.B) {
	const pool = 1 << 20
	stores := []struct {
		name    string
		clients int
		open    func(b *testing.B, now func() time.Time) *memstore.Store
	}{
		{"Memory/Clients=16", 16, func(b *testing.B, now func() time.Time) *memstore.Store { return newStore(b, now, time.Hour) }},
		{"DataDir/Clients=16", 16, openBenchStore},
		{"DataDir/Clients=128", 128, openBenchStore},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			clock := storetest.NewClock(storetest.Epoch)
			s := st.open(b, clock.Now)
			c, err := adcount.NewCampaign("bench", "bench", storetest.Epoch)
			require.NoError(b, err)
			require.NoError(b, s.CreateCampaign(context.Background(), c))
			imps := benchImpressions(c.ID, pool)
			ctx := context.Background()
			var next atomic.Int64
			b.SetParallelism(st.clients)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if _, err := s.RecordImpression(ctx, imps[i%pool]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func openBenchStore(b *testing.B, now func() time.Time) *memstore.Store {
	s, err := openStore(b, b.TempDir(), now, time.Hour)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, s.Close()) })
	return s
}

// TestCampaignCountWithDataDir checks the campaigns gauge's source on the
// durable path: after creating, and after a restore from the log alone and
// from a snapshot.
func TestCampaignCountWithDataDir(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// crash leaves without Close's final snapshot, so the restore
		// reads the log; otherwise it reads the snapshot.
		crash bool
	}{
		{"RestoredFromTheLog", true},
		{"RestoredFromASnapshot", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clock := storetest.NewClock(storetest.Epoch)
			s, _ := openWithCampaign(t, dir, clock)
			c2, err := adcount.NewCampaign("c2", "Second", storetest.Epoch)
			require.NoError(t, err)
			require.NoError(t, s.CreateCampaign(context.Background(), c2))
			require.ErrorIs(t, s.CreateCampaign(context.Background(), c2), adcount.ErrConflict)
			assert.Equal(t, 2, s.CampaignCount(), "counted when created")
			if tc.crash {
				require.NoError(t, s.Crash())
			} else {
				require.NoError(t, s.Close())
			}
			s, err = openStore(t, dir, clock.Now, time.Hour)
			require.NoError(t, err)
			defer func() { assert.NoError(t, s.Close()) }()
			assert.Equal(t, 2, s.CampaignCount(), "counted when restored")
		})
	}
}
