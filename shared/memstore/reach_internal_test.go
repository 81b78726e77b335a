package memstore

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"

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
			perCampaign := int64(heapAlloc()-live) / campaigns
			spans := int64(heapInUse()-inUse) / campaigns
			var held int
			for _, set := range allSets(states[0].reach) {
				held += set.Bytes()
			}
			t.Logf("%s: %d B live a campaign, %d B of spans in use, %d B of fingerprints and registers", tc.name, perCampaign, spans, held)
			assert.LessOrEqual(t, perCampaign, int64(reachBudget))
			assert.LessOrEqual(t, held+int(unsafe.Sizeof(campaignReach{})), reachBudget)
			for _, cs := range states {
				cs.mu.Lock()
				users := cs.reach.users(end)
				cs.mu.Unlock()
				assert.Positive(t, users.LastHour)
			}
			runtime.KeepAlive(states)
		})
	}
}

// allSets returns every set of r.
func allSets(r *campaignReach) []*reach.Set {
	var sets []*reach.Set
	for i := range r.tens.slots {
		sets = append(sets, &r.tens.slots[i])
	}
	for i := range r.hours.slots {
		sets = append(sets, &r.hours.slots[i])
	}
	for i := range r.days.slots {
		sets = append(sets, &r.days.slots[i])
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
