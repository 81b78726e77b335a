package memstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/reach"
)

// reachMoments returns the moments, oldest first, at which traffic fills
// every set a campaign's reach keeps at end, the last ten-minute bucket of
// a day: one moment in each of the six days before end's, one at each
// hour of end's day before its last, and one in each ten-minute bucket of
// its last hour. So the 7 day sets, the 24 hour sets and the 6 ten-minute
// sets all hold the users of at least one moment when end is read.
func reachMoments(end time.Time) []time.Time {
	day := end.Truncate(24 * time.Hour)
	var at []time.Time
	for d := adcount.ReachDayPoints - 1; d >= 1; d-- {
		at = append(at, day.AddDate(0, 0, -d).Add(12*time.Hour))
	}
	for h := range adcount.ReachDayHours - 1 {
		at = append(at, day.Add(time.Duration(h)*time.Hour))
	}
	for k := range adcount.ReachHourBuckets {
		at = append(at, day.Add(23*time.Hour+time.Duration(k)*adcount.ReachBucketWidth))
	}
	return at
}

// reachBudget is what one campaign's reach may hold, whatever its traffic
// (docs/performance.md).
const reachBudget = 256 << 10

// TestReachMemoryStaysInBudget fills every set of a campaign's reach at its
// worst and holds what the heap gains per campaign to reachBudget: every
// set at ExactReach users, exact, the largest a set is; and every set a
// sketch. Users go in as impressions put them (campaignState.addUser), and
// the gain is live bytes after a collection (HeapAlloc), which counts each
// allocation at its size class; the allocator's partly used spans, which
// other allocations fill, are not the campaign's, and the test logs them
// apart. BenchmarkReachMemory measures the same through the store. It
// does not run in parallel, so that no other test moves the heap.
func TestReachMemoryStaysInBudget(t *testing.T) {
	const campaigns = 8
	end := epoch.Truncate(24*time.Hour).AddDate(0, 0, 7).Add(23*time.Hour + 50*time.Minute)
	moments := reachMoments(end)
	for _, tc := range []struct {
		name  string
		users int
		same  bool // the same users at every moment of a day
	}{
		// Every set exact at its fullest: 6,000 bytes each.
		{"Exact1000", adcount.ExactReach, true},
		// Every set a sketch of 4 KiB.
		{"Dense", 2 * adcount.ExactReach, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			states := make([]*campaignState, campaigns)
			for i := range states {
				states[i] = newCampaignState(adcount.Campaign{ID: fmt.Sprint("c", i)})
			}
			live, inUse := heapAlloc(), heapInUse()
			for _, cs := range states {
				cs.reach = new(campaignReach) // as add makes it
			}
			for i, m := range moments {
				w := at(m)
				for u := range tc.users {
					id := fmt.Sprint("m", i, "-", u)
					if tc.same {
						id = fmt.Sprint(m.Truncate(24*time.Hour).Unix(), "-", u)
					}
					h := reach.Hash(id)
					for _, cs := range states {
						cs.mu.Lock()
						cs.addUser(w, h)
						cs.mu.Unlock()
					}
				}
			}
			// Read, as Stats and Series do, so that the reads' unions of
			// past buckets and counts are in the figure too.
			for _, cs := range states {
				cs.mu.Lock()
				users := cs.reach.users(end)
				for back := range int64(reachHours) {
					cs.reach.point(adcount.Hour, adcount.Hour.Index(end)-back)
				}
				for back := range int64(reachDays) {
					cs.reach.point(adcount.Day, adcount.Day.Index(end)-back)
				}
				cs.mu.Unlock()
				assert.Positive(t, users[0].count())
			}
			perCampaign := int64(heapAlloc()-live) / campaigns
			spans := int64(heapInUse()-inUse) / campaigns
			var held int
			for _, set := range allSets(states[0].reach) {
				held += set.Bytes()
			}
			held += states[0].reach.lastHour.set.Bytes() + states[0].reach.lastDay.set.Bytes()
			t.Logf("%s: %d B live a campaign, %d B of spans in use, %d B of fingerprints and registers", tc.name, perCampaign, spans, held)
			assert.LessOrEqual(t, perCampaign, int64(reachBudget))
			assert.LessOrEqual(t, held+int(unsafe.Sizeof(campaignReach{})), reachBudget)
			runtime.KeepAlive(states)
		})
	}
}

// allSets returns every set of r.
func allSets(r *campaignReach) []*reach.Set {
	var sets []*reach.Set
	for i := range r.tens.slots {
		sets = append(sets, &r.tens.slots[i].set)
	}
	for i := range r.hours.slots {
		sets = append(sets, &r.hours.slots[i].set)
	}
	for i := range r.days.slots {
		sets = append(sets, &r.days.slots[i].set)
	}
	return append(sets, &r.total)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// coldUsers counts r's windows at now without any of the reads' caches:
// what users would give on a campaign never read before.
func coldUsers(r *campaignReach, now time.Time) adcount.UniqueUsers {
	if r == nil {
		return adcount.UniqueUsers{}
	}
	var hour, day reach.Set
	tens, hours := adcount.ReachLastHour(now), adcount.ReachLastDay(now)
	r.tens.union(&hour, tens.First, tens.Last)
	r.hours.union(&day, hours.First, hours.Last)
	return adcount.UniqueUsers{LastHour: hour.Count(), LastDay: day.Count(), Total: r.total.Count()}
}

// TestReachReadsNeverGoStale interleaves impressions, late ones among them
// (a batch that read the clock before a boundary and counts after another
// that read it after), clock moves and reads, on a fixed seed, and checks
// every stats and series read against the same sets counted afresh: the
// unions of past buckets, the last read's users and the points' counts
// that reads keep are never stale. Users pass ExactReach, so sketches are
// read too.
func TestReachReadsNeverGoStale(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	now := epoch
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(WithClock(clock), WithDedupTTL(adcount.MinDedupTTL))
	require.NoError(t, err)
	c, err := adcount.NewCampaign("c", "stale", epoch)
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c))
	v, _ := s.campaigns.Load("c")
	cs := v.(*campaignState)
	rng := rand.New(rand.NewPCG(15, 15))
	user := 0
	for step := range 1200 {
		switch op := rng.IntN(10); {
		case op < 5: // impressions now, of new users and of old ones
			var imps []adcount.Impression
			for range 1 + rng.IntN(20) {
				u := rng.IntN(user + 1)
				if rng.IntN(2) == 0 {
					user++
					u = user
				}
				imps = append(imps, adcount.Impression{CampaignID: "c", UserID: fmt.Sprint("u", u), AdID: fmt.Sprint("a", step)})
			}
			_, err := s.RecordImpressions(ctx, imps)
			require.NoError(t, err)
		case op < 6: // a late impression, counted at a moment up to an hour back
			user++
			w := at(clock().Add(-time.Duration(rng.IntN(60)) * time.Minute))
			cs.mu.Lock()
			cs.add(w, 1, 0, 0)
			cs.addUser(w, reach.Hash(fmt.Sprint("u", user)))
			cs.mu.Unlock()
		case op < 8: // the clock moves on, by up to a few ten-minute buckets
			mu.Lock()
			now = now.Add(time.Duration(rng.IntN(40)) * time.Minute)
			mu.Unlock()
		default: // a series read, whose points must count afresh
			iv := []adcount.Interval{adcount.Hour, adcount.Day}[rng.IntN(2)]
			n := clock()
			to := iv.Start(iv.Index(n) + 1)
			series, err := s.Series(ctx, "c", adcount.SeriesQuery{From: to.Add(-8 * iv.Duration()), To: to, Interval: iv})
			require.NoError(t, err)
			cs.mu.Lock()
			for _, p := range series.Points {
				if !p.HasUniqueUsers {
					continue
				}
				var want int64
				if iv == adcount.Hour {
					if set := cs.reach.hours.at(iv.Index(p.Start)); set != nil {
						want = set.set.Count()
					}
				} else if set := cs.reach.days.at(iv.Index(p.Start)); set != nil {
					want = set.set.Count()
				}
				require.Equal(t, min(want, p.Count), p.UniqueUsers, "step %d: %s point %s", step, iv, p.Start)
			}
			cs.mu.Unlock()
		}
		st, err := s.Stats(ctx, "c")
		require.NoError(t, err)
		cs.mu.Lock()
		want := coldUsers(cs.reach, clock()).Bound(st)
		cs.mu.Unlock()
		require.Equal(t, want, st.UniqueUsers, "step %d", step)
	}
	st, err := s.Stats(ctx, "c")
	require.NoError(t, err)
	require.Greater(t, st.UniqueUsers.Total, int64(adcount.ExactReach), "sketches were read")
}
