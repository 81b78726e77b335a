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
	[reachTens]slotSet | [reachHours]slotSet | [reachDays]slotSet
}

// slotSet is the users of one bucket, and their count once a series has
// taken it. A sketch's count costs about 55 µs (the library's estimate
// takes a power of two for each of its 4,096 registers), and a bucket's
// users stop changing once it is past, so a series counts each past
// bucket once and not on every read.
type slotSet struct {
	set     reach.Set
	count   int64
	counted bool // count is set's Count; any add clears it
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
				r.slots[i] = slotSet{}
			}
		} else {
			for x := r.head + 1; x <= b; x++ {
				r.slots[r.slot(x)] = slotSet{}
			}
		}
		r.head = b
	}
	if b <= r.head-size {
		return
	}
	s := &r.slots[r.slot(b)]
	s.set.Add(h)
	s.counted = false
}

// at returns the users of bucket b, nil if the ring no longer or not yet
// holds it.
func (r *setRing[S]) at(b int64) *slotSet {
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
		u.Merge(&r.slots[r.slot(b)].set)
	}
}

// window returns a new Set of the users of the buckets in [first, last]
// that the ring holds, last being the reader's current bucket. The union
// of the buckets before last is kept in c from one read to the next,
// until an impression counts in a bucket other than last (see
// campaignReach.add): so a read merges two sets, not up to 24, and the
// union is made again only when the current bucket changes.
func (r *setRing[S]) window(c *closedUnion, first, last int64) *reach.Set {
	if !c.valid || c.last != last {
		c.set.Reset()
		r.union(&c.set, first, last-1)
		c.last, c.valid = last, true
	}
	u := c.set.Clone()
	if s := r.at(last); s != nil {
		u.Merge(&s.set)
	}
	return u
}

// point returns the users of bucket b as a count to take, 0 if the ring
// does not hold it. A count already taken is reused; an exact count, or
// the estimate of a past bucket, is taken now and kept; the newest
// bucket's sketch, which every impression may change, is copied to be
// estimated outside the campaign's lock.
func (r *setRing[S]) point(b int64) pendingCount {
	s := r.at(b)
	switch {
	case s == nil:
		return pendingCount{}
	case s.counted:
	case s.set.Exact() || b < r.head:
		s.count, s.counted = s.set.Count(), true
	default:
		return pendingCount{set: s.set.Clone()}
	}
	return pendingCount{n: s.count}
}

// closedUnion is the union of a window's buckets before its current one,
// last, while valid.
type closedUnion struct {
	last  int64
	valid bool
	set   reach.Set
}

// pendingCount is a count of users to take once the campaign's lock is
// let go: a Set the reader owns, or a count already taken.
type pendingCount struct {
	set *reach.Set
	n   int64
}

// count returns the count, estimating the set if there is one.
func (p pendingCount) count() int64 {
	if p.set != nil {
		return p.set.Count()
	}
	return p.n
}

// campaignReach is a campaign's unique users: per ten-minute bucket for
// the last hour, per hour for the last day and the hour points, per day
// for the day points, and in all; and the unions of the past buckets of
// the two windows, which Stats reads. A campaign has it from its first
// counted impression on; its methods read a nil campaignReach as no
// users. It is not safe for concurrent use: the campaign's mutex guards
// it.
type campaignReach struct {
	tens  setRing[[reachTens]slotSet]
	hours setRing[[reachHours]slotSet]
	days  setRing[[reachDays]slotSet]
	total reach.Set

	lastHour, lastDay closedUnion // the past buckets of each window
	last              lastRead    // the last stats read's users
}

// lastRead is what a stats read counted, and what that was made of: the
// campaign's total, which every counted impression moves, and the
// current buckets of the two windows. While all three stand, the users
// stand too, and a read of a campaign without new impressions costs no
// estimate.
type lastRead struct {
	total, ten, hour int64
	users            adcount.UniqueUsers
	ok               bool
}

// lastUsers returns the users the last stats read counted, if the
// campaign's total is still total and now is in the same buckets; for a
// campaign without reach, none. The caller holds the campaign's mutex.
func (r *campaignReach) lastUsers(total int64, now time.Time) (adcount.UniqueUsers, bool) {
	if r == nil {
		return adcount.UniqueUsers{}, true // no users at all
	}
	l := &r.last
	if !l.ok || l.total != total || l.ten != adcount.ReachBucket(now) || l.hour != adcount.Hour.Index(now) {
		return adcount.UniqueUsers{}, false
	}
	return l.users, true
}

// keepUsers keeps what a stats read counted at now for lastUsers, the
// campaign's total having been total. The caller holds the campaign's
// mutex again, and has checked that the total is still total.
func (r *campaignReach) keepUsers(total int64, now time.Time, u adcount.UniqueUsers) {
	r.last = lastRead{total: total, ten: adcount.ReachBucket(now), hour: adcount.Hour.Index(now), users: u, ok: true}
}

// keepPoint keeps n as the count of point idx of interval i, counted from
// a copy outside the lock. The caller holds the campaign's mutex again,
// and has checked that no impression has counted since the copy: so the
// bucket holds what was counted.
func (r *campaignReach) keepPoint(i adcount.Interval, idx, n int64) {
	var s *slotSet
	switch i {
	case adcount.Hour:
		s = r.hours.at(idx)
	case adcount.Day:
		s = r.days.at(idx)
	}
	if s != nil {
		s.count, s.counted = n, true
	}
}

// add adds user h (reach.Hash) to the buckets of w. The caller holds the
// campaign's mutex.
//
// Every user of a ten-minute bucket is in its hour's set, its day's and
// the total, since each add goes to all four: so a user that the
// ten-minute set holds already, exactly, is in all of them, and adding it
// again would change nothing. A user's repeat impressions within ten
// minutes then cost one search instead of four (BenchmarkRecordImpressionReach).
func (r *campaignReach) add(w when, h uint64) {
	if s := r.tens.at(w.ten); s != nil && s.set.Holds(h) {
		return
	}
	r.tens.add(w.ten, h)
	r.hours.add(w.hour, h)
	r.days.add(w.day, h)
	r.total.Add(h)
	// A user in a bucket other than a window's current one may be in its
	// past buckets: a batch that read the clock before a boundary and
	// counts after it, or the first impression of a new bucket.
	if w.ten != r.lastHour.last {
		r.lastHour.valid = false
	}
	if w.hour != r.lastDay.last {
		r.lastDay.valid = false
	}
}

// users returns the unique users of each window at now, to be counted
// outside the campaign's lock and then bounded (adcount.UniqueUsers.Bound):
// the ten-minute buckets of adcount.ReachLastHour and the hours of
// adcount.ReachLastDay that the rings still hold, and the total. The
// caller holds the campaign's mutex.
func (r *campaignReach) users(now time.Time) [3]pendingCount {
	if r == nil {
		return [3]pendingCount{}
	}
	tens, hours := adcount.ReachLastHour(now), adcount.ReachLastDay(now)
	out := [3]pendingCount{
		{set: r.tens.window(&r.lastHour, tens.First, tens.Last)},
		{set: r.hours.window(&r.lastDay, hours.First, hours.Last)},
	}
	if r.total.Exact() {
		out[2].n = r.total.Count()
	} else {
		out[2].set = r.total.Clone()
	}
	return out
}

// point returns the unique users of point idx of interval i as a count to
// take outside the campaign's lock, 0 if the rings do not hold it. The
// caller holds the campaign's mutex.
func (r *campaignReach) point(i adcount.Interval, idx int64) pendingCount {
	if r == nil {
		return pendingCount{}
	}
	switch i {
	case adcount.Hour:
		return r.hours.point(idx)
	case adcount.Day:
		return r.days.point(idx)
	}
	return pendingCount{}
}
