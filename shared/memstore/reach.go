package memstore

import (
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/reach"
)

// Reach rings: the buckets adcount.Reach merges and the points
// adcount.ReachKept keeps, and no more. A campaign's reach is then 38
// reach.Sets, each at most about 6 KB (exact, near ExactReach users) or
// 4 KiB (a sketch), whatever its traffic: under the 256 KiB budget of
// docs/performance.md, which BenchmarkReachMemory measures.
const (
	reachTens  = adcount.ReachHourBuckets
	reachHours = adcount.ReachDayHours
	reachDays  = adcount.ReachDayPoints

	// minutesPerReach is how many minute buckets make one reach bucket.
	minutesPerReach = int64(adcount.ReachBucketWidth / adcount.BucketWidth)
)

// A reach bucket is whole minute buckets, and the hour ring holds every
// hour point that keeps reach as well as the last day.
var (
	_ [0 - int64(adcount.ReachBucketWidth%adcount.BucketWidth)]struct{}
	_ [reachHours - adcount.ReachHourPoints]struct{}
)

// setSlots are the sizes of set ring there are.
type setSlots interface {
	[reachTens]reach.Set | [reachHours]reach.Set | [reachDays]reach.Set
}

// setRing holds the users of the last len(S) buckets of one width, as
// ring holds counts: bucket b at slot b mod len, head the newest written.
// Moving head forward empties the slots of the buckets that fell out, so
// a stale bucket never leaks into a newer one, and frees their memory.
// The campaign's mutex guards it.
type setRing[S setSlots] struct {
	head  int64
	slots S
}

func (r *setRing[S]) size() int64 { return int64(len(r.slots)) }

func (r *setRing[S]) slot(b int64) int64 {
	n := r.size()
	i := b % n
	if i < 0 {
		i += n
	}
	return i
}

// add adds user h to bucket b. A bucket older than the ring holds, which
// only a clock stepping back by the ring's span could produce, is in no
// window and is dropped.
func (r *setRing[S]) add(b int64, h uint64) {
	size := r.size()
	if b > r.head {
		if b-r.head >= size {
			for i := range size {
				r.slots[i].Reset()
			}
		} else {
			for x := r.head + 1; x <= b; x++ {
				r.slots[r.slot(x)].Reset()
			}
		}
		r.head = b
	}
	if b <= r.head-size {
		return
	}
	r.slots[r.slot(b)].Add(h)
}

// at returns the users of bucket b, nil if the ring no longer or not yet
// holds it.
func (r *setRing[S]) at(b int64) *reach.Set {
	if b > r.head || b <= r.head-r.size() {
		return nil
	}
	return &r.slots[r.slot(b)]
}

// union merges the users of the buckets in [first, last] that the ring
// still holds into u.
func (r *setRing[S]) union(u *reach.Set, first, last int64) {
	first = max(first, r.head-r.size()+1)
	last = min(last, r.head)
	for b := first; b <= last; b++ {
		u.Merge(&r.slots[r.slot(b)])
	}
}

// campaignReach is a campaign's unique users: per ten-minute bucket for
// the last hour, per hour for the last day and the hour points, per day
// for the day points, and in all. A campaign has it from its first
// counted impression on; its methods read a nil campaignReach as no
// users. It is not safe for concurrent use: the campaign's mutex guards
// it.
type campaignReach struct {
	tens  setRing[[reachTens]reach.Set]
	hours setRing[[reachHours]reach.Set]
	days  setRing[[reachDays]reach.Set]
	total reach.Set
}

// add adds user h (reach.Hash) to the buckets of w. The caller holds the
// campaign's mutex.
func (r *campaignReach) add(w when, h uint64) {
	r.tens.add(w.ten, h)
	r.hours.add(w.hour, h)
	r.days.add(w.day, h)
	r.total.Add(h)
}

// users returns the unique users of each window at now, before
// adcount.UniqueUsers.Bound: the ten-minute buckets of
// adcount.ReachLastHour and the hours of adcount.ReachLastDay that the
// rings still hold, and the total.
func (r *campaignReach) users(now time.Time) adcount.UniqueUsers {
	if r == nil {
		return adcount.UniqueUsers{}
	}
	var hour, day reach.Set
	tens, hours := adcount.ReachLastHour(now), adcount.ReachLastDay(now)
	r.tens.union(&hour, tens.First, tens.Last)
	r.hours.union(&day, hours.First, hours.Last)
	return adcount.UniqueUsers{LastHour: hour.Count(), LastDay: day.Count(), Total: r.total.Count()}
}

// point returns the unique users of point idx of interval i, 0 if the
// rings do not hold it.
func (r *campaignReach) point(i adcount.Interval, idx int64) int64 {
	if r == nil {
		return 0
	}
	var s *reach.Set
	switch i {
	case adcount.Hour:
		s = r.hours.at(idx)
	case adcount.Day:
		s = r.days.at(idx)
	}
	if s == nil {
		return 0
	}
	return s.Count()
}
