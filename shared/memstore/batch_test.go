package memstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/memstore/wal/faultfs"
	"github.com/adcount/impression-counter/shared/storetest"
)

// fullStats returns every figure of the campaign's stats.
func fullStats(t *testing.T, s adcount.Store, id string) adcount.Stats {
	t.Helper()
	st, err := s.Stats(context.Background(), id)
	require.NoError(t, err)
	return st
}

// TestABatchIsOneRecordAndOneFsync counts what a batch costs the log: one
// record, whatever its size and however many campaigns it spans, made
// durable by one fsync; and nothing at all for a batch with nothing new.
func TestABatchIsOneRecordAndOneFsync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fsys := &faultfs.FS{}
	s := openFaulty(t, t.TempDir(), fsys, storetest.NewClock(storetest.Epoch))
	defer func() { assert.NoError(t, s.Close()) }()
	c2, err := adcount.NewCampaign("c2", "Second", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c2))
	var fsyncs atomic.Int64
	fsys.OnSync(segments(func(string) error { fsyncs.Add(1); return nil }))

	batch := func(from, n int) []adcount.Impression {
		imps := make([]adcount.Impression, n)
		for i := range imps {
			imps[i] = impression(from + i)
			if i%3 == 0 {
				imps[i].CampaignID = "c2"
			}
			if i%7 == 0 {
				imps[i].Filtered = true
			}
		}
		return imps
	}
	cases := []struct {
		name    string
		imps    []adcount.Impression
		records uint64
		fsyncs  int64
	}{
		// The largest batch, over two campaigns, with filtered impressions.
		{"MaxBatch", batch(0, adcount.MaxBatch), 1, 1},
		// Half of it new, half repeats: still one of each.
		{"HalfRepeats", batch(adcount.MaxBatch/2, adcount.MaxBatch), 1, 1},
		// Nothing new: nothing to log, and the repeats' records are durable
		// already, so no fsync either.
		{"AllRepeats", batch(0, 100), 0, 0},
		// A single impression takes the same path.
		{"Single", batch(5000, 1), 1, 1},
	}
	for _, tc := range cases {
		before, syncsBefore := s.DurableRecords(), fsyncs.Load()
		res, err := s.RecordImpressions(ctx, tc.imps)
		require.NoError(t, err, tc.name)
		require.Len(t, res, len(tc.imps), tc.name)
		assert.Equal(t, tc.records, s.DurableRecords()-before, "%s: log records", tc.name)
		assert.Equal(t, tc.fsyncs, fsyncs.Load()-syncsBefore, "%s: fsyncs", tc.name)
	}
}

// TestAFailedBatchForgetsItsKeys fails the log, then records a batch: the
// batch fails whole, and none of its keys is kept, so that nothing of it
// is a duplicate after the restart either.
func TestAFailedBatchForgetsItsKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	fsys := &faultfs.FS{}
	clock := storetest.NewClock(storetest.Epoch)
	s := openFaulty(t, dir, fsys, clock)
	require.True(t, record(t, s, impression(0)))
	fsys.OnSync(segments(func(string) error { return syscall.EIO }))
	_, err := s.RecordImpression(ctx, impression(1))
	require.ErrorIs(t, err, adcount.ErrUnavailable, "the log fails")
	keys := s.DedupEntries()

	imps := []adcount.Impression{impression(2), impression(3), impression(2), impression(0)}
	res, err := s.RecordImpressions(ctx, imps)
	require.ErrorIs(t, err, adcount.ErrUnavailable)
	assert.Nil(t, res)
	assert.Equal(t, keys, s.DedupEntries(), "the batch's new keys are forgotten")
	require.Error(t, s.Close())

	fsys.OnSync(nil)
	s, err = openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)
	defer func() { assert.NoError(t, s.Close()) }()
	res, err = s.RecordImpressions(ctx, imps)
	require.NoError(t, err)
	want := []adcount.Outcome{adcount.Counted, adcount.Counted, adcount.Duplicate, adcount.Duplicate}
	for i, r := range res {
		assert.Equal(t, want[i], r.Outcome, "item %d after the restart", i)
	}
}

// TestBatchesRestore records batches over two campaigns, filtered
// impressions among them, and checks that a restart restores every count,
// the filtered ones included, and every key: from the log alone, from a
// snapshot taken between batches, and from the final snapshot.
func TestBatchesRestore(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// snapshotAfter is the batch after which a snapshot is taken, -1
		// for none.
		snapshotAfter int
		// crash leaves without Close's final snapshot.
		crash bool
	}{
		{"LogOnly", -1, true},
		{"SnapshotThenLog", 1, true},
		{"SnapshotOnly", -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dir := t.TempDir()
			clock := storetest.NewClock(storetest.Epoch)
			// Keys outlive the hour in which the first batches leave
			// last_hour.
			const ttl = 2 * time.Hour
			s, err := openStore(t, dir, clock.Now, ttl)
			require.NoError(t, err)
			for _, id := range []string{"c1", "c2"} {
				c, err := adcount.NewCampaign(id, id, storetest.Epoch)
				require.NoError(t, err)
				require.NoError(t, s.CreateCampaign(ctx, c))
			}
			var all []adcount.Impression
			for b := range 4 {
				var imps []adcount.Impression
				for i := range 20 {
					imp := adcount.Impression{CampaignID: fmt.Sprint("c", 1+i%2), UserID: fmt.Sprint("u", b*10+i%10), AdID: "a", Filtered: i%5 == 0}
					imps = append(imps, imp)
				}
				_, err := s.RecordImpressions(ctx, imps)
				require.NoError(t, err)
				all = append(all, imps...)
				if b == tc.snapshotAfter {
					require.NoError(t, s.Snapshot())
				}
				clock.Advance(20 * time.Minute)
			}
			before := map[string]adcount.Stats{"c1": fullStats(t, s, "c1"), "c2": fullStats(t, s, "c2")}
			require.NotZero(t, before["c1"].Filtered)
			require.NotEqual(t, before["c1"].LastHour, before["c1"].Total)
			if tc.crash {
				require.NoError(t, s.Crash())
			} else {
				require.NoError(t, s.Close())
			}

			s, err = openStore(t, dir, clock.Now, ttl)
			require.NoError(t, err)
			defer func() { assert.NoError(t, s.Close()) }()
			for id, st := range before {
				assert.Equal(t, st, fullStats(t, s, id), "%s survives", id)
			}
			res, err := s.RecordImpressions(ctx, all)
			require.NoError(t, err)
			for i, r := range res {
				want := adcount.Duplicate
				if all[i].Filtered {
					want = adcount.Filtered
				}
				assert.Equal(t, want, r.Outcome, "%+v: its key survives", all[i])
			}
			for id, st := range before {
				assert.Equal(t, st, fullStats(t, s, id), "%s: the repeats changed nothing", id)
			}
		})
	}
}

// TestOpensADataDirectoryOfTheFormerFormat opens a copy of a directory that
// the store wrote before filtered impressions and batch records existed
// (testdata/v1-datadir, whose README says how it was made), and checks
// that every count and key comes back, that it then takes filtered
// impressions and batches, and that what it writes in the new format
// comes back too.
func TestOpensADataDirectoryOfTheFormerFormat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/v1-datadir")))
	require.NoError(t, os.Remove(filepath.Join(dir, "README.md")))
	clock := storetest.NewClock(storetest.Epoch.Add(20 * time.Minute))
	s, err := openStore(t, dir, clock.Now, time.Hour)
	require.NoError(t, err)

	now := clock.Now()
	c1 := adcount.Stats{CampaignID: "c1", LastHour: 5, LastDay: 5, Total: 5, AsOf: now}
	c2 := adcount.Stats{CampaignID: "c2", LastHour: 1, LastDay: 1, Total: 1, AsOf: now}
	assert.Equal(t, c1, fullStats(t, s, "c1"), "from the former snapshot and log records, which give no reach")
	assert.Equal(t, c2, fullStats(t, s, "c2"), "from the former log records")
	former := func(id string) adcount.Campaign {
		c, err := adcount.NewCampaign(id, map[string]string{"c1": "Before filtering", "c2": "After the snapshot"}[id], storetest.Epoch)
		require.NoError(t, err)
		return c
	}
	page, err := s.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 10, Now: now})
	require.NoError(t, err)
	assert.Equal(t, []adcount.Campaign{former("c2"), former("c1")}, page.Campaigns,
		"no end, not paused, no creation time: listed by ID")
	// Each impression keeps its minute; the snapshot's minutes make its
	// hours and days.
	series := func(id string, iv adcount.Interval) []int64 {
		t.Helper()
		from := iv.Start(iv.Index(storetest.Epoch))
		got, err := s.Series(ctx, id, adcount.SeriesQuery{From: from, To: from.Add(2 * iv.Duration()), Interval: iv})
		require.NoError(t, err)
		var counts []int64
		for _, p := range got.Points {
			counts = append(counts, p.Count)
		}
		return counts
	}
	assert.Equal(t, []int64{3, 0}, series("c1", adcount.Minute), "u0-u2 at Epoch, from the snapshot")
	assert.Equal(t, []int64{5, 0}, series("c1", adcount.Hour))
	assert.Equal(t, []int64{5, 0}, series("c1", adcount.Day))
	assert.Equal(t, []int64{1, 0}, series("c2", adcount.Day))
	ads, err := s.AdStats(ctx, "c1", adcount.AdQuery{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, ads.Ads, "the former records name no ad")
	imp := func(c, u string, filtered bool) adcount.Impression {
		return adcount.Impression{CampaignID: c, UserID: u, AdID: "a", Filtered: filtered}
	}
	res, err := s.RecordImpressions(ctx, []adcount.Impression{
		imp("c1", "u0", false), // a key from the snapshot
		imp("c1", "u4", false), // a key from a log record
		imp("c2", "u0", false), // a campaign from a log record
		imp("c1", "u0", true),  // filtered: its own key
		imp("c1", "u5", false), // new
	})
	require.NoError(t, err)
	want := []adcount.Outcome{adcount.Duplicate, adcount.Duplicate, adcount.Duplicate, adcount.Filtered, adcount.Counted}
	for i, r := range res {
		require.NoError(t, r.Err)
		assert.Equal(t, want[i], r.Outcome, "item %d", i)
	}
	c1.LastHour, c1.LastDay, c1.Total, c1.Filtered = 6, 6, 6, 1
	// u5 alone: the former records name no user, so the impressions they
	// hold add no reach (codec.go).
	c1.UniqueUsers = adcount.UniqueUsers{LastHour: 1, LastDay: 1, Total: 1}
	assert.Equal(t, c1, fullStats(t, s, "c1"))
	ads, err = s.AdStats(ctx, "c1", adcount.AdQuery{Limit: 10})
	require.NoError(t, err)
	assert.Equal(t, []adcount.AdStats{{AdID: "a", LastHour: 1, LastDay: 1, Total: 1, Filtered: 1}}, ads.Ads,
		"what the new format records names its ad")
	before := readEverything(t, s, now, []string{"c1", "c2"}, []string{"a"})

	// Once from the log in the new format, once from a new snapshot.
	require.NoError(t, s.Crash())
	for _, how := range []string{"log", "snapshot"} {
		s, err = openStore(t, dir, clock.Now, time.Hour)
		require.NoError(t, err, how)
		assert.Equal(t, c1, fullStats(t, s, "c1"), how)
		assert.Equal(t, c2, fullStats(t, s, "c2"), how)
		assert.Equal(t, before, readEverything(t, s, now, []string{"c1", "c2"}, []string{"a"}), how)
		require.NoError(t, s.Close(), how)
	}
}

// TestConcurrentBatchesOverManyCampaigns sends batches that span several
// campaigns in different orders, with single impressions and snapshots
// among them, with and without a data directory. A batch locks every
// campaign it touches at once with a journal, so a lock order that two
// batches disagreed on would deadlock here; every key must count exactly
// once.
func TestConcurrentBatchesOverManyCampaigns(t *testing.T) {
	t.Parallel()
	const (
		campaigns = 5
		workers   = 8
		batches   = 20 // per worker
		size      = 50
		users     = 40 // per campaign
	)
	cases := []struct {
		name    string
		dataDir bool
	}{
		{"Memory", false},
		{"DataDir", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := storetest.NewClock(storetest.Epoch)
			var s *memstore.Store
			if tc.dataDir {
				var err error
				s, err = openStore(t, t.TempDir(), clock.Now, time.Hour)
				require.NoError(t, err)
				defer func() { assert.NoError(t, s.Close()) }()
			} else {
				s = newStore(t, clock.Now, time.Hour)
			}
			for c := range campaigns {
				camp, err := adcount.NewCampaign(fmt.Sprint("c", c), "many", storetest.Epoch)
				require.NoError(t, err)
				require.NoError(t, s.CreateCampaign(ctx, camp))
			}
			// Every batch is made up front, so that the distinct keys are
			// known exactly.
			sent := make([][][]adcount.Impression, workers)
			distinct := map[adcount.Impression]bool{}
			for w := range workers {
				for b := range batches {
					imps := make([]adcount.Impression, size)
					for i := range imps {
						// Each worker walks the campaigns in its own
						// order, and the keys overlap across workers.
						n := w*7 + b*13 + i*i
						imps[i] = adcount.Impression{
							CampaignID: fmt.Sprint("c", (n+w*i)%campaigns),
							UserID:     fmt.Sprint("u", n%users),
							AdID:       "a",
							Filtered:   n%users >= users*3/4,
						}
						distinct[imps[i]] = true
					}
					sent[w] = append(sent[w], imps)
				}
			}
			var counted sync.Map
			check := func(imp adcount.Impression, out adcount.Outcome) error {
				if out == adcount.Counted {
					if _, dup := counted.LoadOrStore(imp, true); dup {
						return fmt.Errorf("%+v counted twice", imp)
					}
				}
				return nil
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers+1)
			for w := range workers {
				wg.Go(func() {
					for b, imps := range sent[w] {
						res, err := s.RecordImpressions(ctx, imps)
						if err != nil {
							errs <- err
							return
						}
						for i, r := range res {
							if err := check(imps[i], r.Outcome); err != nil {
								errs <- err
								return
							}
						}
						if w == 0 {
							// A single impression among the batches.
							imp := sent[workers-1][b][b%size]
							out, err := s.RecordImpression(ctx, imp)
							if err == nil {
								err = check(imp, out)
							}
							if err != nil {
								errs <- err
								return
							}
						}
					}
				})
			}
			wg.Go(func() {
				for range 5 {
					if err := s.Snapshot(); err != nil {
						errs <- err
						return
					}
				}
			})
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			var wantTotal, wantFiltered, total, filtered, n int64
			for imp := range distinct {
				if imp.Filtered {
					wantFiltered++
				} else {
					wantTotal++
				}
			}
			for c := range campaigns {
				st := fullStats(t, s, fmt.Sprint("c", c))
				total += st.Total
				filtered += st.Filtered
			}
			counted.Range(func(any, any) bool { n++; return true })
			assert.Equal(t, wantTotal, n, "one reply per real key says it counted")
			assert.Equal(t, wantTotal, total)
			assert.Equal(t, wantFiltered, filtered)
		})
	}
}

// benchBatches prebuilds batches of adcount.MaxBatch impressions of one
// campaign, a fifth of them repeats: half of earlier items of the same
// batch, half of the batch before. The batches cycle through a pool of
// distinct keys; gen says how often it has been cycled through.
func benchBatches(campaignID string) [][]adcount.Impression {
	const pool = 1 << 18
	keys := benchImpressions(campaignID, pool)
	const fresh = adcount.MaxBatch * 4 / 5
	batches := make([][]adcount.Impression, pool/fresh)
	next := 0
	for k := range batches {
		b := make([]adcount.Impression, adcount.MaxBatch)
		for i := range b {
			switch {
			case i%5 != 4:
				b[i] = keys[next]
				next++
			case i%10 == 4 || k == 0:
				b[i] = b[i-3]
			default:
				b[i] = batches[k-1][i-1]
			}
		}
		batches[k] = b
	}
	return batches
}

// BenchmarkRecordImpressions measures the batch path: batches of
// adcount.MaxBatch impressions, a fifth of them repeats, without and with
// a data directory, from one goroutine and from several. It reports
// impressions a second; ns/op is per batch. Once every key of the pool has
// been sent, the store's clock moves two dedup windows on, so that the
// next round counts as the first did.
func BenchmarkRecordImpressions(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B, now func() time.Time) *memstore.Store
	}{
		{"Memory", func(b *testing.B, now func() time.Time) *memstore.Store { return newStore(b, now, time.Hour) }},
		{"DataDir", openBenchStore},
	}
	for _, st := range stores {
		for _, parallel := range []bool{false, true} {
			name := st.name + "/Serial"
			if parallel {
				name = st.name + "/Parallel"
			}
			b.Run(name, func(b *testing.B) {
				var round atomic.Int64
				now := func() time.Time { return storetest.Epoch.Add(time.Duration(round.Load()) * 2 * time.Hour) }
				s := st.open(b, now)
				c, err := adcount.NewCampaign("bench", "bench", storetest.Epoch)
				require.NoError(b, err)
				require.NoError(b, s.CreateCampaign(context.Background(), c))
				batches := benchBatches(c.ID)
				ctx := context.Background()
				var next atomic.Int64
				send := func() error {
					k := next.Add(1) - 1
					round.Store(k / int64(len(batches)))
					_, err := s.RecordImpressions(ctx, batches[k%int64(len(batches))])
					return err
				}
				b.ReportAllocs()
				b.ResetTimer()
				if parallel {
					// Several clients per core, as a server has requests
					// in flight: with a data directory they share fsyncs.
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := send(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					for b.Loop() {
						if err := send(); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)*adcount.MaxBatch/b.Elapsed().Seconds(), "impressions/s")
			})
		}
	}
}
