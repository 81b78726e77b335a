package adcount

import (
	"fmt"
	"time"
)

// Interval is the width of one point of a time series.
type Interval string

// The intervals, in the API's spelling. Every point starts on a whole
// interval in UTC: a minute, an hour or a day since the Unix epoch.
const (
	Minute Interval = "minute"
	Hour   Interval = "hour"
	Day    Interval = "day"
)

// MaxSeriesPoints is the most points one time series answer holds.
const MaxSeriesPoints = 1500

// ParseInterval returns the interval s names, or an ErrInvalid FieldError
// on "interval".
func ParseInterval(s string) (Interval, error) {
	switch i := Interval(s); i {
	case Minute, Hour, Day:
		return i, nil
	}
	return "", fieldError("interval", "must be minute, hour or day, got %q", s)
}

// Duration returns the interval's width.
func (i Interval) Duration() time.Duration {
	switch i {
	case Minute:
		return time.Minute
	case Hour:
		return time.Hour
	}
	return 24 * time.Hour
}

// Retention is how many of an interval's points a store keeps, counting
// back from the current one; 0 means all of them. The campaign's series
// keep minutes for a day, hours for 90 days and days for ever. One ad's
// series keep less, to fit the memory budget of a campaign with many ads
// (docs/performance.md): minutes for an hour, hours for a day, days for
// 90 days.
func Retention(i Interval, perAd bool) int64 {
	switch {
	case i == Minute && perAd:
		return 60
	case i == Minute:
		return 24 * 60
	case i == Hour && perAd:
		return 24
	case i == Hour:
		return 90 * 24
	case i == Day && perAd:
		return 90
	}
	return 0
}

// Index returns the number of the interval holding t: whole intervals
// since the Unix epoch, rounded down.
func (i Interval) Index(t time.Time) int64 {
	w := int64(i.Duration() / time.Second)
	sec := t.Unix()
	n := sec / w
	if sec%w < 0 {
		n--
	}
	return n
}

// Start returns the start of interval n.
func (i Interval) Start(n int64) time.Time {
	return time.Unix(n*int64(i.Duration()/time.Second), 0).UTC()
}

// SeriesQuery asks for a campaign's counted impressions per interval.
type SeriesQuery struct {
	// From and To bound the series: its points are the intervals that
	// hold a moment in [From, To).
	From, To time.Time
	Interval Interval
	// AdID, if set, restricts the series to one ad.
	AdID string
}

// DefaultSeriesSpan is how far back a series reaches when From is not
// given, unless the store keeps less of the interval; see DefaultFrom.
const DefaultSeriesSpan = 24 * time.Hour

// DefaultFrom returns the From of a series that does not give one, at
// now: DefaultSeriesSpan before to, or the start of the oldest point kept
// of the interval (see Retention), whichever is later. So a series asked
// for without from is always one Check lets through, whatever the moment:
// 24 hours of minutes, or of one ad's hours, would otherwise reach one
// point past what is kept.
func DefaultFrom(to, now time.Time, i Interval, perAd bool) time.Time {
	from := to.Add(-DefaultSeriesSpan)
	if keep := Retention(i, perAd); keep > 0 {
		if oldest := i.Start(i.Index(now) - keep + 1); from.Before(oldest) {
			return oldest
		}
	}
	return from
}

// Range returns the first and last interval numbers of the series.
func (q SeriesQuery) Range() (first, last int64) {
	return q.Interval.Index(q.From), q.Interval.Index(q.To.Add(-time.Nanosecond))
}

// Check returns an ErrInvalid FieldError unless the query can be
// answered at now: From before To, at most MaxSeriesPoints points, and
// none finer than the store keeps (see Retention). The message names the
// limit and what to ask instead.
func (q SeriesQuery) Check(now time.Time) error {
	if !q.From.Before(q.To) {
		return fieldError("from", "must be before to")
	}
	first, last := q.Range()
	if n := last - first + 1; n > MaxSeriesPoints {
		return fieldError("to", "a series holds at most %d points; this one would hold %d: narrow from and to, or use a wider interval", MaxSeriesPoints, n)
	}
	if keep := Retention(q.Interval, q.AdID != ""); keep > 0 {
		oldest := q.Interval.Index(now) - keep + 1
		if first < oldest {
			what := "a campaign"
			if q.AdID != "" {
				what = "one ad"
			}
			return fieldError("from", "%s points of %s are kept for %s: from must be at or after %s; use a wider interval for older points",
				q.Interval, what, span(q.Interval, keep), q.Interval.Start(oldest).Format(time.RFC3339))
		}
	}
	return nil
}

// span says how long n points of interval i cover, in words: "1 hour",
// "24 hours", "90 days".
func span(i Interval, n int64) string {
	d := time.Duration(n) * i.Duration()
	switch {
	case d == time.Hour:
		return "1 hour"
	case d <= 48*time.Hour:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return fmt.Sprintf("%d days", d/(24*time.Hour))
}

// Point is one interval of a time series.
type Point struct {
	// Start is the interval's start, in UTC.
	Start time.Time
	// Count is the impressions counted in the interval.
	Count int64
	// UniqueUsers are the distinct users behind Count, at most Count.
	// HasUniqueUsers says whether the store keeps them for this point
	// (see ReachKept); when it is false, UniqueUsers is 0 and means
	// nothing.
	UniqueUsers    int64
	HasUniqueUsers bool
}

// Series is a time series answer: one point per interval of the query,
// zeros included, oldest first.
type Series struct {
	Points []Point
	// AsOf is as in Stats.
	AsOf time.Time
}

// NewSeries returns the zero-filled points of q, for a store to add its
// counts to with Add.
func NewSeries(q SeriesQuery) Series {
	first, last := q.Range()
	pts := make([]Point, 0, last-first+1)
	for n := first; n <= last; n++ {
		pts = append(pts, Point{Start: q.Interval.Start(n)})
	}
	return Series{Points: pts}
}

// SetUniqueUsers gives the point at interval number idx of interval i
// its unique users, bounded by its count, if the series holds it. Call it
// after the counts are added, for the points ReachKept.
func (s Series) SetUniqueUsers(i Interval, idx, users int64) {
	if len(s.Points) == 0 {
		return
	}
	k := idx - i.Index(s.Points[0].Start)
	if k >= 0 && k < int64(len(s.Points)) {
		p := &s.Points[k]
		p.UniqueUsers = min(users, p.Count)
		p.HasUniqueUsers = true
	}
}

// Add counts n impressions at interval number idx of interval i, if the
// series holds it.
func (s Series) Add(i Interval, idx, n int64) {
	if len(s.Points) == 0 {
		return
	}
	k := idx - i.Index(s.Points[0].Start)
	if k >= 0 && k < int64(len(s.Points)) {
		s.Points[k].Count += n
	}
}
