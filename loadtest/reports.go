package main

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The reporting routes' limits the harness keeps to, as the API states
// them: a page holds at most maxPageLimit entries, and a series at most
// maxSeriesPoints points.
const (
	maxPageLimit    = 500
	maxSeriesPoints = 1500
)

// Point is one interval of a time series, as
// GET /api/v1/campaigns/{id}/timeseries answers it.
type Point struct {
	Start time.Time `json:"start"`
	Count int64     `json:"count"`
}

// Series is what GET /api/v1/campaigns/{id}/timeseries answers: the
// service echoes the interval and the bounds it used, so that the harness
// can check the points against them even where it left one to the
// service's default (to, which is the service's now).
type Series struct {
	Interval string    `json:"interval"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	AdID     string    `json:"ad_id"`
	Points   []Point   `json:"points"`
	AsOf     time.Time `json:"as_of"`
}

// sum is the series' count, all points together.
func (s Series) sum() int64 {
	var n int64
	for _, p := range s.Points {
		n += p.Count
	}
	return n
}

// AdStats is one ad of GET /api/v1/campaigns/{id}/ads.
type AdStats struct {
	AdID     string `json:"ad_id"`
	LastHour int64  `json:"last_hour"`
	LastDay  int64  `json:"last_day"`
	Total    int64  `json:"total"`
	Filtered int64  `json:"filtered"`
}

// adPage is one page of GET /api/v1/campaigns/{id}/ads.
type adPage struct {
	Ads        []AdStats `json:"ads"`
	NextCursor *string   `json:"next_cursor"`
	AsOf       time.Time `json:"as_of"`
}

// campaign is what GET /api/v1/campaigns/{id} answers, as far as the
// harness needs it.
type campaign struct {
	ID        string    `json:"id"`
	StartTime time.Time `json:"start_time"`
}

// campaignReports is what the harness reads of one campaign's reports
// once the attack is over and the stats are settled.
type campaignReports struct {
	// Days is the day series from the campaign's start to the service's
	// now: every impression the campaign ever counted.
	Days Series
	// Minutes is the minute series over the run, from a minute before it
	// began (for clock skew) to the service's now; nil when the run began
	// longer ago than the service keeps minute points.
	Minutes *Series
	// Ads is every page of the per-ad breakdown, in the order read, and
	// PageSizes the length of each page, asked for Limit at a time.
	Ads       []AdStats
	PageSizes []int
	Limit     int
	// Unfinished is set when the breakdown still had a next page after
	// more pages than the run's ads could fill; Ads is then partial.
	Unfinished bool
	// AdDays is the day series of Ads[0] alone (ad_id); nil when no ad is
	// listed.
	AdDays *Series
}

// reportSummary is what a campaign's reports said, for the verdict's
// table.
type reportSummary struct {
	DayPoints, MinutePoints int // MinutePoints is -1 when not read
	DaySum, MinuteSum       int64
	AdsListed, Pages        int
	AdsTotal, AdsFiltered   int64
	TopAd                   string
	TopAdDaySum             int64
}

// Retention the harness keeps within, with a margin for clock skew: the
// service keeps a campaign's minute points for 24 hours and one ad's day
// points for 90 days.
const (
	minuteReach = 23 * time.Hour
	adDayReach  = 88 * 24 * time.Hour
)

// pageLimit is the per-ad breakdown's page size for a run of ads ads: the
// one given, or else one that reads the breakdown in three pages, so that
// the cursor is always exercised, within the API's limit of 500.
func pageLimit(given, ads int) int {
	if given > 0 {
		return given
	}
	return min(max((ads+2)/3, 1), maxPageLimit)
}

// seriesFrom returns the earliest from a series of interval width may ask
// for to reach start, within at most reach before now and at most
// maxSeriesPoints points: every impression of the run is inside it, since
// the run is shorter than either bound.
func seriesFrom(start, now time.Time, width, reach time.Duration) time.Time {
	earliest := now.Add(-min(reach, time.Duration(maxSeriesPoints-2)*width))
	if start.Before(earliest) {
		return earliest
	}
	return start
}

// verifyReports checks each campaign's time series and per-ad breakdown
// against its stats, already in v, and against the replies, per ad:
//   - the day points sum to the stats' total, and so do the minute points
//     over the run, when read; every series' points are whole intervals in
//     UTC, one after the other, from the interval holding from to the one
//     holding the moment before to;
//   - the breakdown lists each ad once, in order of total (descending),
//     then ad ID, in pages no longer than asked, and only ads the run
//     sent;
//   - each ad's total lies in the range its keys' replies allow, and its
//     filtered likewise; an ad it leaves out must allow zero;
//   - the ads' totals sum to the stats' total, and their filtered counts
//     to the stats' filtered;
//   - each ad's last_hour and last_day equal its total while the run is
//     shorter than those windows, as the campaign's do;
//   - the first ad's own day series sums to its total.
//
// reports holds one entry per plan campaign; elapsed is as in verify.
func (l *ledger) verifyReports(v *Verdict, reports []campaignReports, elapsed time.Duration) {
	for c, r := range reports {
		cc := &v.Campaigns[c]
		sum := &reportSummary{MinutePoints: -1, AdsListed: len(r.Ads), Pages: len(r.PageSizes)}
		cc.Reports = sum
		problem := func(format string, args ...any) {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: ", c)+fmt.Sprintf(format, args...))
		}
		acknowledged := expectRange(int64(cc.Counted), int64(cc.Counted+cc.Uncertain))

		sum.DayPoints, sum.DaySum = len(r.Days.Points), r.Days.sum()
		for _, p := range seriesProblems(r.Days, "day", 24*time.Hour) {
			problem("day series: %s", p)
		}
		if sum.DaySum != cc.Stats.Total {
			problem("its day points sum to %d, but stats total is %d (the replies acknowledged %s)", sum.DaySum, cc.Stats.Total, acknowledged)
		}
		if r.Minutes != nil {
			sum.MinutePoints, sum.MinuteSum = len(r.Minutes.Points), r.Minutes.sum()
			for _, p := range seriesProblems(*r.Minutes, "minute", time.Minute) {
				problem("minute series: %s", p)
			}
			if sum.MinuteSum != cc.Stats.Total {
				problem("its minute points over the run sum to %d, but stats total is %d (the replies acknowledged %s)", sum.MinuteSum, cc.Stats.Total, acknowledged)
			}
		}

		for i, n := range r.PageSizes {
			if n > r.Limit {
				problem("page %d of the per-ad breakdown holds %d ads, more than the limit of %d asked for", i+1, n, r.Limit)
			}
		}
		if r.Unfinished {
			problem("the per-ad breakdown still had a next_cursor after %d pages of %d, more than the run's %d ads fill", len(r.PageSizes), r.Limit, l.plan.Ads())
		}
		listed := map[uint64]bool{}
		for i, a := range r.Ads {
			sum.AdsTotal += a.Total
			sum.AdsFiltered += a.Filtered
			// An ad listed twice in a row is reported as a repeat below.
			if i > 0 && moreFirst(r.Ads[i-1], a) > 0 {
				problem("the per-ad breakdown lists %s (total %d) after %s (total %d): not in order of total, then ad ID",
					a.AdID, a.Total, r.Ads[i-1].AdID, r.Ads[i-1].Total)
			}
			n, ok := l.adNumber(a.AdID)
			if !ok {
				problem("the per-ad breakdown lists ad %q, which the run never sent", a.AdID)
				continue
			}
			if listed[n] {
				problem("the per-ad breakdown lists %s twice", a.AdID)
				continue
			}
			listed[n] = true
			want := cc.Ads[n]
			if want == nil {
				want = &adCheck{}
			}
			if lo, hi := int64(want.Counted), int64(want.Counted+want.Uncertain); a.Total < lo || a.Total > hi {
				problem("%s's total is %d, but the replies acknowledged %s of it", a.AdID, a.Total, expectRange(lo, hi))
			}
			if lo, hi := int64(want.Filtered), int64(want.Filtered+want.BotUnsure); a.Filtered < lo || a.Filtered > hi {
				problem("%s's filtered is %d, but the replies filtered %s of bots for it", a.AdID, a.Filtered, expectRange(lo, hi))
			}
			if elapsed < 55*time.Minute && a.LastHour != a.Total {
				problem("%s's last_hour is %d but its total is %d, though every impression was sent within the hour", a.AdID, a.LastHour, a.Total)
			}
			if elapsed < 23*time.Hour && a.LastDay != a.Total {
				problem("%s's last_day is %d but its total is %d, though every impression was sent within the day", a.AdID, a.LastDay, a.Total)
			}
		}
		if !r.Unfinished {
			for n, want := range cc.Ads {
				if !listed[n] && (want.Counted > 0 || want.Filtered > 0) {
					problem("the per-ad breakdown leaves out ad-%d, but the replies acknowledged %d of its keys and filtered %d", n, want.Counted, want.Filtered)
				}
			}
			if sum.AdsTotal != cc.Stats.Total {
				problem("its ads' totals sum to %d, but stats total is %d", sum.AdsTotal, cc.Stats.Total)
			}
			if sum.AdsFiltered != cc.Stats.Filtered {
				problem("its ads' filtered counts sum to %d, but stats filtered is %d", sum.AdsFiltered, cc.Stats.Filtered)
			}
		}

		if r.AdDays != nil && len(r.Ads) > 0 {
			top := r.Ads[0]
			sum.TopAd, sum.TopAdDaySum = top.AdID, r.AdDays.sum()
			for _, p := range seriesProblems(*r.AdDays, "day", 24*time.Hour) {
				problem("%s's day series: %s", top.AdID, p)
			}
			if r.AdDays.AdID != top.AdID {
				problem("the day series asked for ad_id %s answers for ad_id %q", top.AdID, r.AdDays.AdID)
			}
			if sum.TopAdDaySum != top.Total {
				problem("%s's day points sum to %d, but the per-ad breakdown says its total is %d", top.AdID, sum.TopAdDaySum, top.Total)
			}
		}
	}
}

// adNumber parses an ad ID the plan sends, "ad-<n>" with n below the
// plan's ads.
func (l *ledger) adNumber(id string) (uint64, bool) {
	digits, ok := strings.CutPrefix(id, "ad-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n >= uint64(l.plan.Ads()) || strconv.FormatUint(n, 10) != digits {
		return 0, false
	}
	return n, true
}

// moreFirst orders ads as the breakdown must: by total, descending, then
// by ad ID.
func moreFirst(a, b AdStats) int {
	return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.AdID, b.AdID))
}

// seriesProblems checks the shape of a series of the named interval,
// width wide: the interval echoed, every point whole and in order, and
// the points exactly those of [From, To), zeros included.
func seriesProblems(s Series, name string, width time.Duration) []string {
	var out []string
	if s.Interval != name {
		out = append(out, fmt.Sprintf("asked for interval %s, answered %q", name, s.Interval))
	}
	if len(s.Points) == 0 {
		return append(out, "no points")
	}
	for i, p := range s.Points {
		if !p.Start.Equal(p.Start.Truncate(width)) {
			out = append(out, fmt.Sprintf("point %d starts at %s, not on a whole %s in UTC", i, p.Start.Format(time.RFC3339Nano), name))
			break
		}
		if i > 0 && !p.Start.Equal(s.Points[i-1].Start.Add(width)) {
			out = append(out, fmt.Sprintf("point %d starts at %s, not one %s after point %d (%s): a point is missing or out of order",
				i, p.Start.Format(time.RFC3339), name, i-1, s.Points[i-1].Start.Format(time.RFC3339)))
			break
		}
		if p.Count < 0 {
			out = append(out, fmt.Sprintf("point %d (%s) has count %d", i, p.Start.Format(time.RFC3339), p.Count))
		}
	}
	if s.From.IsZero() || s.To.IsZero() {
		return append(out, "the answer does not say its from and to")
	}
	first, last := s.From.Truncate(width), s.To.Add(-time.Nanosecond).Truncate(width)
	if got := s.Points[0].Start; !got.Equal(first) {
		out = append(out, fmt.Sprintf("the first point starts at %s, but from (%s) is in the %s starting %s",
			got.Format(time.RFC3339), s.From.Format(time.RFC3339Nano), name, first.Format(time.RFC3339)))
	}
	// The service echoes to to the millisecond, cut: a to just after an
	// interval's start reads as that start, and the point it begins is
	// then the series' last, as it should be.
	if got := s.Points[len(s.Points)-1].Start; !got.Equal(last) && !(got.Equal(s.To) && s.To.Equal(s.To.Truncate(width))) {
		out = append(out, fmt.Sprintf("the last point starts at %s, but the moment before to (%s) is in the %s starting %s",
			got.Format(time.RFC3339), s.To.Format(time.RFC3339Nano), name, last.Format(time.RFC3339)))
	}
	return out
}
