package adcount

import (
	"math"
	"time"
)

// Reach is how many distinct users saw a campaign. Stores keep it in
// sketches (package reach), one per reach bucket, and answer a window by
// merging the buckets it covers. Buckets are coarser than the count
// buckets because a sketch costs up to 6 KB where a count costs 8 bytes,
// and a campaign's reach must fit in 256 KiB whatever its traffic
// (docs/performance.md):
//
//   - last_hour merges the ReachHourBuckets ten-minute buckets that end
//     with the current one: it covers the last 50 to 60 minutes, never a
//     user seen an hour ago or more;
//   - last_day merges the ReachDayHours hour buckets that end with the
//     current hour: it covers the last 23 to 24 hours, as an ad's
//     last_day does;
//   - total has a sketch of its own.
//
// The hour points of a series carry unique users for the ReachHourPoints
// hours that end with the current one, and day points for the
// ReachDayPoints days that end with today; older points and minute points
// leave it out, and so does the per-ad breakdown.
const (
	ReachBucketWidth = 10 * time.Minute
	ReachHourBuckets = int64(time.Hour / ReachBucketWidth)
	ReachDayHours    = 24
	ReachHourPoints  = ReachDayHours
	ReachDayPoints   = 7
)

// ExactReach is the largest population that every store counts exactly: a
// window, or a point, with at most this many distinct users reports
// exactly that many. Above it the count is a HyperLogLog estimate whose
// relative standard error is at most 2%.
const ExactReach = 1000

// ReachBucket returns the number of the ten-minute reach bucket holding t:
// whole ReachBucketWidths since the Unix epoch, rounded down.
func ReachBucket(t time.Time) int64 {
	w := int64(ReachBucketWidth / time.Second)
	sec := t.Unix()
	b := sec / w
	if sec%w < 0 {
		b--
	}
	return b
}

// ReachLastHour is the range of ten-minute reach buckets that
// UniqueUsers.LastHour merges at now.
func ReachLastHour(now time.Time) BucketRange {
	last := ReachBucket(now)
	return BucketRange{First: last - ReachHourBuckets + 1, Last: last}
}

// ReachLastDay is the range of hours (Hour.Index) that UniqueUsers.LastDay
// merges at now.
func ReachLastDay(now time.Time) BucketRange {
	last := Hour.Index(now)
	return BucketRange{First: last - ReachDayHours + 1, Last: last}
}

// ReachKept reports whether a store keeps the unique users of point idx of
// interval i at now: hours for ReachHourPoints, days for ReachDayPoints,
// counting back from the current one, and never minutes.
func ReachKept(i Interval, idx int64, now time.Time) bool {
	cur := i.Index(now)
	switch i {
	case Hour:
		return idx <= cur && idx > cur-ReachHourPoints
	case Day:
		return idx <= cur && idx > cur-ReachDayPoints
	}
	return false
}

// UniqueUsers are the distinct users whose impressions counted in each of
// a campaign's windows (see Reach). A user counts when one of their
// impressions counts: duplicates and filtered impressions never add
// reach.
type UniqueUsers struct {
	LastHour int64
	LastDay  int64
	Total    int64
}

// Frequency is the mean number of counted impressions per unique user in
// each window: the window's count over its unique users, rounded to two
// decimals, and 0 for a window without users.
type Frequency struct {
	LastHour float64
	LastDay  float64
	Total    float64
}

// Frequency returns the stats' frequency per window. Each window's reach
// covers at most its count's span (see Reach): just after a ten-minute
// boundary the last hour's count spans 60 minutes and its users 50, so
// its frequency can read up to a fifth high; the last day's, a 23rd.
func (s Stats) Frequency() Frequency {
	return Frequency{
		LastHour: frequency(s.LastHour, s.UniqueUsers.LastHour),
		LastDay:  frequency(s.LastDay, s.UniqueUsers.LastDay),
		Total:    frequency(s.Total, s.UniqueUsers.Total),
	}
}

func frequency(count, users int64) float64 {
	if users <= 0 {
		return 0
	}
	return math.Round(float64(count)/float64(users)*100) / 100
}

// Bound returns u made consistent with the counts of s: no window has
// more users than counted impressions, since each user counts by one of
// them, and no window has more than a wider one that covers it. An
// estimate can break either by its error; a store applies Bound to what
// its sketches estimate before it answers.
func (u UniqueUsers) Bound(s Stats) UniqueUsers {
	u.Total = min(u.Total, s.Total)
	u.LastDay = min(u.LastDay, s.LastDay, u.Total)
	u.LastHour = min(u.LastHour, s.LastHour, u.LastDay)
	return u
}
