package memstore

import (
	"math"
	"slices"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Ring sizes: adcount.Retention's figures, which
// TestRingsKeepWhatRetentionSays holds them to. A campaign keeps its
// minutes for a day (the widest stats window, so its minute ring is the one
// the stats have always read) and its hours for 90 days; one ad keeps
// minutes for an hour, hours for a day and days for 90 days.
const (
	campaignMinutes = adcount.DayBuckets
	campaignHours   = 90 * 24
	adMinutes       = adcount.HourBuckets
	adHours         = 24
	adDays          = 90

	minutesPerHour = 60
	minutesPerDay  = 24 * 60
)

// Minute buckets must be minutes for hours and days to be made of them.
var (
	_ [minutesPerDay - adcount.DayBuckets]struct{}
	_ [adcount.DayBuckets - minutesPerDay]struct{}
)

// slots are the sizes of ring there are.
type slots interface {
	[adHours]int64 | [adMinutes]int64 | [adDays]int64 | [campaignMinutes]int64 | [campaignHours]int64
}

// ring holds the counts of the last len(S) buckets of one width (minutes,
// hours or days, numbered since the Unix epoch). Its size is fixed:
// traffic only changes the numbers in it. It is not safe for concurrent
// use; the campaign's mutex guards it.
//
// Each size is its own instantiation, so the index arithmetic divides by
// a constant, as it did when the ring was one type.
type ring[S slots] struct {
	// head is the newest bucket written; slots hold buckets
	// (head-len, head], each at index bucket mod len.
	head  int64
	slots S
}

// minuteRing is a campaign's day of minute buckets, the most a stats
// window reads.
type minuteRing = ring[[campaignMinutes]int64]

func (r *ring[S]) size() int64 { return int64(len(r.slots)) }

func (r *ring[S]) slot(b int64) int64 {
	n := r.size()
	i := b % n
	if i < 0 {
		i += n
	}
	return i
}

// add counts n in bucket b. Moving head forward first clears the slots of
// buckets that fell out of the ring, so a slot never mixes two buckets. A
// bucket older than the ring holds, which only a clock stepping back by
// the ring's span could produce, is in no window and is dropped.
func (r *ring[S]) add(b, n int64) {
	size := r.size()
	if b > r.head {
		if b-r.head >= size {
			var zero S
			r.slots = zero
		} else {
			for x := r.head + 1; x <= b; x++ {
				r.slots[r.slot(x)] = 0
			}
		}
		r.head = b
	}
	if b <= r.head-size {
		return
	}
	r.slots[r.slot(b)] += n
}

// at returns the count of bucket b, zero if the ring no longer or not yet
// holds it.
func (r *ring[S]) at(b int64) int64 {
	if b > r.head || b <= r.head-r.size() {
		return 0
	}
	return r.slots[r.slot(b)]
}

// sum returns the count of the buckets in [first, last] that the ring
// still holds. Buckets after head have no impressions yet.
func (r *ring[S]) sum(first, last int64) int64 {
	first = max(first, r.head-r.size()+1)
	last = min(last, r.head)
	var total int64
	for b := first; b <= last; b++ {
		total += r.slots[r.slot(b)]
	}
	return total
}

// setBack sets the bucket back places before head to n, for a restore.
func (r *ring[S]) setBack(back, n int64) {
	r.slots[r.slot(r.head-back)] = n
}

// campaignSeries is a campaign's minute and hour rings, 29 KiB, which it
// has from its first counted impression on: a campaign that has counted
// nothing costs far less, and a flood of creates far less with it. Its
// methods read a nil campaignSeries as all zeros.
type campaignSeries struct {
	minutes minuteRing
	hours   ring[[campaignHours]int64]
}

func (s *campaignSeries) minuteSum(first, last int64) int64 {
	if s == nil {
		return 0
	}
	return s.minutes.sum(first, last)
}

func (s *campaignSeries) minuteAt(b int64) int64 {
	if s == nil {
		return 0
	}
	return s.minutes.at(b)
}

func (s *campaignSeries) hourAt(h int64) int64 {
	if s == nil {
		return 0
	}
	return s.hours.at(h)
}

// floorDiv divides rounding down, so that minutes before 1970 fall in the
// hour and day that hold them.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// when is the minute bucket an impression counts in, and the reach
// bucket, hour and day that hold it, worked out once for all the
// impressions of a call.
type when struct {
	minute, ten, hour, day int64
}

// at returns the when of an impression counted at t.
func at(t time.Time) when {
	return inBucket(adcount.Bucket(t))
}

// inBucket returns the when of minute bucket b.
func inBucket(b int64) when {
	return when{minute: b, ten: floorDiv(b, minutesPerReach), hour: floorDiv(b, minutesPerHour), day: floorDiv(b, minutesPerDay)}
}

// dayCounts holds a campaign's counts per day for as long as the campaign
// exists: 12 bytes for each day that counted something, in day order. It
// keeps only days with counts, so that a clock that jumps years ahead for
// a moment costs one entry, not a year of them.
type dayCounts struct {
	days   []int32 // day numbers since the Unix epoch, ascending
	counts []int64
}

// dayNumber returns day as a dayCounts holds it, clamped to what an int32
// holds: days beyond the year 5,000,000 share the last one.
func dayNumber(day int64) int32 {
	return int32(min(max(day, math.MinInt32), math.MaxInt32))
}

// add counts n on day d. Days come in order but for the rare batch that
// read the clock just before midnight and was counted just after another
// that read it after.
func (d *dayCounts) add(day int32, n int64) {
	k := len(d.days)
	if k == 0 || day > d.days[k-1] {
		d.days = append(d.days, day)
		d.counts = append(d.counts, n)
		return
	}
	i, found := slices.BinarySearch(d.days, day)
	if !found {
		d.days = slices.Insert(d.days, i, day)
		d.counts = slices.Insert(d.counts, i, 0)
	}
	d.counts[i] += n
}

// adState is one ad's counts within its campaign: 1.4 KiB whatever its
// traffic (docs/performance.md, "Memory budgets").
type adState struct {
	id       string
	lsn      uint64 // the last log record counted here; 0 without a log
	total    int64
	filtered int64
	minutes  ring[[adMinutes]int64]
	hours    ring[[adHours]int64]
	days     ring[[adDays]int64]
}

// add applies counted impressions and filtered ones, all at w, logged in
// record lsn. The caller holds the campaign's mutex.
func (a *adState) add(w when, counted, filtered int64, lsn uint64) {
	if counted > 0 {
		a.total += counted
		a.minutes.add(w.minute, counted)
		a.hours.add(w.hour, counted)
		a.days.add(w.day, counted)
	}
	a.filtered += filtered
	a.lsn = lsn
}
