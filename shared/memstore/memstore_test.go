package memstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

func newStore(t testing.TB, now func() time.Time, ttl time.Duration) *memstore.Store {
	t.Helper()
	s, err := memstore.New(memstore.WithClock(now), memstore.WithDedupTTL(ttl))
	require.NoError(t, err)
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store {
		return newStore(t, now, ttl)
	})
}

func TestNewRejectsNonPositiveTTL(t *testing.T) {
	t.Parallel()
	for _, ttl := range []time.Duration{0, -time.Second, time.Microsecond, adcount.MaxDedupTTL + time.Millisecond} {
		_, err := memstore.New(memstore.WithDedupTTL(ttl))
		assert.Error(t, err, "ttl %v", ttl)
	}
}

func TestExpiredDedupEntriesAreReclaimed(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Hour)
	ctx := context.Background()
	c, err := adcount.NewCampaign("c1", "reclaim", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c))

	record := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			counted, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint(prefix, i), AdID: "a"})
			require.NoError(t, err)
			require.Equal(t, adcount.Counted, counted)
		}
	}
	const n = 10_000
	record("old-", n)
	assert.Equal(t, n, s.DedupEntries())

	// Two TTLs later every old key has expired. New traffic on other keys
	// drops them: memory does not wait for the same keys to come back.
	clock.Advance(2 * time.Hour)
	record("new-", n)
	assert.Equal(t, n, s.DedupEntries(), "only the new keys are held")

	stats, err := s.Stats(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(2*n), stats.Total, "reclaiming keys never touches counts")
}

// TestHighVolumeConcurrentImpressions sends 100,000 impressions from 100
// goroutines over several campaigns, a third of them repeats of keys other
// goroutines send too, and checks that every distinct key counted once.
func TestHighVolumeConcurrentImpressions(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 100
		perWorker  = 1_000
		campaigns  = 8
		keySpace   = 20_000 // distinct (user, ad) pairs per campaign pool
	)
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Hour)
	ctx := context.Background()
	ids := make([]string, campaigns)
	for i := range ids {
		ids[i] = fmt.Sprint("campaign-", i)
		c, err := adcount.NewCampaign(ids[i], "load", storetest.Epoch)
		require.NoError(t, err)
		require.NoError(t, s.CreateCampaign(ctx, c))
	}

	var counted atomic.Int64
	var sent sync.Map // impression -> struct{}, the distinct keys sent
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perWorker {
				n := g*perWorker + i
				if i%3 == 2 {
					n = (n * 7919) % (goroutines * perWorker) // a key some goroutine also sends
				}
				n %= keySpace * campaigns
				imp := adcount.Impression{
					CampaignID: ids[n%campaigns],
					UserID:     fmt.Sprint("user-", n/campaigns),
					AdID:       fmt.Sprint("ad-", n%5),
				}
				sent.Store(imp, struct{}{})
				ok, err := s.RecordImpression(ctx, imp)
				if !assert.NoError(t, err) {
					return
				}
				if ok == adcount.Counted {
					counted.Add(1)
				}
			}
		})
	}
	wg.Wait()

	want := make(map[string]int64)
	var distinct int64
	sent.Range(func(k, _ any) bool {
		want[k.(adcount.Impression).CampaignID]++
		distinct++
		return true
	})
	assert.Equal(t, distinct, counted.Load(), "every distinct key counted exactly once")
	var total int64
	for _, id := range ids {
		st, err := s.Stats(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, want[id], st.Total, id)
		assert.Equal(t, st.Total, st.LastHour, id)
		total += st.Total
	}
	assert.Equal(t, distinct, total)
	assert.Greater(t, int64(goroutines*perWorker), distinct, "the load must include duplicates")
}

// newBenchStore returns a store with one started campaign.
func newBenchStore(b *testing.B) (*memstore.Store, string, *storetest.Clock) {
	b.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	s, id := newBenchStoreWithClock(b, clock.Now)
	return s, id, clock
}

// fixedClock is a clock for the record benchmarks: the test clock's mutex,
// shared by every goroutine, would otherwise be what RunParallel measures.
func fixedClock() time.Time { return storetest.Epoch }

func newBenchStoreWithClock(b *testing.B, now func() time.Time) (*memstore.Store, string) {
	b.Helper()
	s := newStore(b, now, time.Hour)
	c, err := adcount.NewCampaign("bench", "bench", storetest.Epoch)
	require.NoError(b, err)
	require.NoError(b, s.CreateCampaign(context.Background(), c))
	return s, c.ID
}

// benchImpressions prebuilds distinct impressions so that the benchmark
// measures the store, not string formatting.
func benchImpressions(campaignID string, n int) []adcount.Impression {
	imps := make([]adcount.Impression, n)
	for i := range imps {
		imps[i] = adcount.Impression{CampaignID: campaignID, UserID: fmt.Sprintf("user-%09d", i), AdID: fmt.Sprint("ad-", i%16)}
	}
	return imps
}

// BenchmarkRecordImpression measures the record path for distinct keys,
// serially and from every core (run with -cpu 1,2).
func BenchmarkRecordImpression(b *testing.B) {
	const pool = 1 << 20
	b.Run("Serial", func(b *testing.B) {
		s, id := newBenchStoreWithClock(b, fixedClock)
		imps := benchImpressions(id, pool)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := s.RecordImpression(ctx, imps[i%pool]); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Parallel sends every impression to one campaign, the worst case:
	// its counters have one lock. ParallelCampaigns spreads them over 64
	// campaigns, as real traffic does.
	for _, campaigns := range []int{1, 64} {
		name := "Parallel"
		if campaigns > 1 {
			name = fmt.Sprintf("ParallelCampaigns=%d", campaigns)
		}
		b.Run(name, func(b *testing.B) {
			s, id := newBenchStoreWithClock(b, fixedClock)
			imps := benchImpressions(id, pool)
			for c := 1; c < campaigns; c++ {
				cid := fmt.Sprint("bench-", c)
				camp, err := adcount.NewCampaign(cid, "bench", storetest.Epoch)
				require.NoError(b, err)
				require.NoError(b, s.CreateCampaign(context.Background(), camp))
				for i := c; i < pool; i += campaigns {
					imps[i].CampaignID = cid
				}
			}
			ctx := context.Background()
			var worker atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine walks its own part of the pool, so no
				// shared counter is measured either.
				i := worker.Add(1) * (pool / 16)
				for pb.Next() {
					i++
					if _, err := s.RecordImpression(ctx, imps[i%pool]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkStats reads a campaign whose whole day of buckets is filled, at
// two traffic volumes, to show that a read costs the same however many
// impressions the campaign has.
func BenchmarkStats(b *testing.B) {
	for _, perBucket := range []int{1, 100} {
		b.Run(fmt.Sprintf("Impressions=%d", perBucket*int(adcount.DayBuckets)), func(b *testing.B) {
			s, id, clock := newBenchStore(b)
			ctx := context.Background()
			for m := range adcount.DayBuckets {
				for u := range perBucket {
					imp := adcount.Impression{CampaignID: id, UserID: fmt.Sprint(m, "-", u), AdID: "a"}
					if _, err := s.RecordImpression(ctx, imp); err != nil {
						b.Fatal(err)
					}
				}
				clock.Advance(adcount.BucketWidth)
			}
			clock.Advance(-adcount.BucketWidth)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				st, err := s.Stats(ctx, id)
				if err != nil || st.LastDay != int64(perBucket)*adcount.DayBuckets {
					b.Fatalf("stats %+v, %v", st, err)
				}
			}
		})
	}
}

// BenchmarkDedupMemory reports the heap bytes each live dedup key costs,
// measured across a million keys.
func BenchmarkDedupMemory(b *testing.B) {
	const keys = 1_000_000
	for b.Loop() {
		s, id, _ := newBenchStore(b)
		imps := benchImpressions(id, keys)
		ctx := context.Background()
		before := heapInUse()
		for _, imp := range imps {
			if _, err := s.RecordImpression(ctx, imp); err != nil {
				b.Fatal(err)
			}
		}
		after := heapInUse()
		runtime.KeepAlive(imps)
		require.Equal(b, keys, s.DedupEntries())
		b.ReportMetric(float64(after-before)/keys, "B/key")
		runtime.KeepAlive(s)
	}
}

// heapInUse returns the heap in use after two collections: the second
// drops what sync.Pools kept through the first, such as a batch's working
// memory, so that it is in no measurement.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestNewRefusesOptionsItWouldIgnore checks that a setting for the data
// directory, given to a store that keeps none, is an error naming it.
func TestNewRefusesOptionsItWouldIgnore(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opt  memstore.Option
	}{
		{"WithFsyncInterval", memstore.WithFsyncInterval(time.Second)},
		{"WithFsyncBatch", memstore.WithFsyncBatch(8)},
		{"WithSnapshotInterval", memstore.WithSnapshotInterval(time.Minute)},
		{"WithLogger", memstore.WithLogger(slog.Default())},
		{"WithAcceptLoss", memstore.WithAcceptLoss(true)},
	}
	for _, tc := range cases {
		t.Run(tc.name+"IsAnError", func(t *testing.T) {
			t.Parallel()
			_, err := memstore.New(tc.opt)
			require.ErrorContains(t, err, tc.name)
		})
	}
}

// TestMaxCampaigns checks that a full store refuses a create without
// creating anything, and still takes impressions for what it holds.
func TestMaxCampaigns(t *testing.T) {
	t.Parallel()
	s, err := memstore.New(memstore.WithMaxCampaigns(2))
	require.NoError(t, err)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		c, err := adcount.NewCampaign(id, id, storetest.Epoch)
		require.NoError(t, err)
		require.NoError(t, s.CreateCampaign(ctx, c))
	}
	c, err := adcount.NewCampaign("c", "c", storetest.Epoch)
	require.NoError(t, err)
	require.ErrorIs(t, s.CreateCampaign(ctx, c), adcount.ErrLimit)
	_, err = s.Campaign(ctx, "c")
	require.ErrorIs(t, err, adcount.ErrNotFound, "a refused create creates nothing")
	assert.Equal(t, 2, s.CampaignCount())
	counted, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: "a", UserID: "u", AdID: "x"})
	require.NoError(t, err)
	assert.Equal(t, adcount.Counted, counted)

	_, err = memstore.New(memstore.WithMaxCampaigns(0))
	assert.ErrorContains(t, err, "campaign limit")
}
