package adcount

import "time"

// Window resolution. Counts are kept in buckets of BucketWidth, and a window
// is the whole buckets that end with the current one. Its edge is therefore
// exact to within one bucket: an impression less than a minute short of an
// hour old may already have left last_hour, and none an hour old or older is
// ever in it. The same holds for last_day.
const (
	BucketWidth = time.Minute
	HourBuckets = int64(time.Hour / BucketWidth)
	DayBuckets  = int64(24 * time.Hour / BucketWidth)
)

// Bucket returns the index of the bucket holding t: whole BucketWidths since
// the Unix epoch, rounded down so that times before 1970 work too.
func Bucket(t time.Time) int64 {
	sec := t.Unix()
	width := int64(BucketWidth / time.Second)
	b := sec / width
	if sec%width < 0 {
		b--
	}
	return b
}

// BucketRange is the closed range of bucket indexes [First, Last].
type BucketRange struct {
	First, Last int64
}

// Contains reports whether bucket b lies in the range.
func (r BucketRange) Contains(b int64) bool {
	return b >= r.First && b <= r.Last
}

// WindowEndingAt returns the n buckets of a sliding window that ends with the
// bucket holding now, the current, partly elapsed bucket included.
func WindowEndingAt(now time.Time, n int64) BucketRange {
	last := Bucket(now)
	return BucketRange{First: last - n + 1, Last: last}
}

// LastHour is the bucket range that the last_hour figure sums at now.
func LastHour(now time.Time) BucketRange { return WindowEndingAt(now, HourBuckets) }

// LastDay is the bucket range that the last_day figure sums at now.
func LastDay(now time.Time) BucketRange { return WindowEndingAt(now, DayBuckets) }
