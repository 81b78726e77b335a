package main

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// honestReports is what a correct service reports after the attempts that
// v was verified from: its day series from two days before now, with the
// campaign's whole total in today's point; its minute series over the last
// two minutes; its ads, every one the ledger counted or filtered, in
// pages of limit; and the first ad's day series.
func honestReports(v Verdict, now time.Time, limit int) []campaignReports {
	out := make([]campaignReports, len(v.Campaigns))
	for c, cc := range v.Campaigns {
		days := Series{Interval: "day", From: now.Add(-48 * time.Hour), To: now}
		for at := days.From.Truncate(24 * time.Hour); at.Before(now); at = at.Add(24 * time.Hour) {
			days.Points = append(days.Points, Point{Start: at})
		}
		days.Points[len(days.Points)-1].Count = cc.Stats.Total
		minutes := Series{Interval: "minute", From: now.Add(-90 * time.Second), To: now,
			Points: []Point{{Start: now.Add(-90 * time.Second).Truncate(time.Minute)}, {Start: now.Truncate(time.Minute), Count: cc.Stats.Total}}}
		r := campaignReports{Days: days, Minutes: &minutes, Limit: limit}
		for n, a := range cc.Ads {
			if a.Counted > 0 || a.Filtered > 0 {
				total := int64(a.Counted)
				r.Ads = append(r.Ads, AdStats{AdID: fmt.Sprintf("ad-%d", n), LastHour: total, LastDay: total, Total: total, Filtered: int64(a.Filtered)})
			}
		}
		slices.SortFunc(r.Ads, moreFirst)
		for i := 0; i < len(r.Ads) || i == 0; i += limit {
			r.PageSizes = append(r.PageSizes, min(limit, len(r.Ads)-i))
		}
		if len(r.Ads) > 0 {
			top := days
			top.AdID = r.Ads[0].AdID
			top.Points = slices.Clone(days.Points)
			top.Points[len(top.Points)-1].Count = r.Ads[0].Total
			r.AdDays = &top
		}
		out[c] = r
	}
	return out
}

// findAd returns the index of the ad listed as id.
func findAd(r campaignReports, id string) int {
	return slices.IndexFunc(r.Ads, func(a AdStats) bool { return a.AdID == id })
}

func TestVerifyReports(t *testing.T) {
	t.Parallel()
	// Two campaigns of 4 ads; keys 0 to 7 go to campaign key%2. Campaign 0
	// has four keys counted, one uncertain and a bot's filtered; campaign
	// 1 one key counted.
	p := mustPlan(t, PlanConfig{Campaigns: 2, Users: 3, Ads: 4, Seed: 5})
	atts := []sent{at(0, 0, 1, counted), at(2, 0, 1, counted), at(4, 0, 1, counted), at(6, 0, 1, counted),
		at(8, 0, 5, uncertain), at(1, 0, 1, counted), botAt(10, 0, 1, filtered)}
	stats := []Stats{{LastHour: 4, LastDay: 4, Total: 4, Filtered: 1}, {LastHour: 1, LastDay: 1, Total: 1}}
	now := time.Date(2026, 11, 26, 12, 34, 56, 0, time.UTC)
	adOf := func(key uint64) string { return fmt.Sprintf("ad-%d", p.adOf(key)) }

	cases := []struct {
		name string
		// change turns the honest reports into the ones checked.
		change  func(r []campaignReports)
		elapsed time.Duration
		// problems are substrings, one per expected problem.
		problems []string
	}{
		// The control: an honest service passes.
		{"Honest", func([]campaignReports) {}, time.Minute, nil},
		// A run that began too long ago to read minutes checks days alone.
		{"NoMinutes", func(r []campaignReports) { r[0].Minutes = nil }, time.Minute, nil},
		// The uncertain key may have counted on its ad; here the stats say
		// it did not, so only the sum disagrees.
		{"UncertainCountedOnItsAd", func(r []campaignReports) {
			i := findAd(r[0], adOf(8))
			if i < 0 {
				r[0].Ads = append(r[0].Ads, AdStats{AdID: adOf(8)})
				i = len(r[0].Ads) - 1
				r[0].PageSizes[len(r[0].PageSizes)-1]++
			}
			r[0].Ads[i].Total++
			r[0].Ads[i].LastHour++
			r[0].Ads[i].LastDay++
			slices.SortFunc(r[0].Ads, moreFirst)
			r[0].AdDays.AdID = r[0].Ads[0].AdID
			r[0].AdDays.Points[len(r[0].AdDays.Points)-1].Count = r[0].Ads[0].Total
		}, time.Minute, []string{"ads' totals sum to 5, but stats total is 4"}},
		// A point lost from the middle of the day series, and its count.
		{"DayPointMissing", func(r []campaignReports) {
			r[0].Days.Points = slices.Delete(r[0].Days.Points, 1, 2)
		}, time.Minute, []string{"a point is missing or out of order"}},
		// Points must start on whole intervals.
		{"MinuteNotWhole", func(r []campaignReports) {
			r[1].Minutes.Points[1].Start = r[1].Minutes.Points[1].Start.Add(time.Second)
		}, time.Minute, []string{"not on a whole minute", "the last point starts at"}},
		// The series must start with the interval holding from...
		{"FirstPointLate", func(r []campaignReports) {
			r[1].Days.Points = r[1].Days.Points[1:]
		}, time.Minute, []string{"the first point starts at"}},
		// ...and end with the one holding the moment before to.
		{"LastPointMissing", func(r []campaignReports) {
			r[1].Days.To = r[1].Days.To.Add(24 * time.Hour)
		}, time.Minute, []string{"the last point starts at"}},
		// A to echoed to the millisecond, cut to an interval's start, was
		// a moment after it: that interval is the series' last.
		{"ToCutToTheMillisecond", func(r []campaignReports) {
			r[1].Minutes.To = r[1].Minutes.Points[1].Start
		}, time.Minute, nil},
		// The interval asked for is the one answered.
		{"WrongInterval", func(r []campaignReports) { r[1].Minutes.Interval = "hour" }, time.Minute, []string{"answered \"hour\""}},
		// A series without points says nothing.
		{"NoPoints", func(r []campaignReports) { r[1].Days.Points = nil }, time.Minute,
			[]string{"no points", "day points sum to 0, but stats total is 1"}},
		// A count on the wrong ad: the sum is right, the ads are not.
		{"CountOnTheWrongAd", func(r []campaignReports) {
			r[0].Ads[0].Total--
			r[0].Ads[0].LastHour--
			r[0].Ads[0].LastDay--
			r[0].Ads[0].AdID, r[0].Ads[1].AdID = r[0].Ads[1].AdID, r[0].Ads[0].AdID
			r[0].Ads[1].Total++
			r[0].Ads[1].LastHour++
			r[0].Ads[1].LastDay++
			slices.SortFunc(r[0].Ads, moreFirst)
			r[0].AdDays.AdID = r[0].Ads[0].AdID
			r[0].AdDays.Points[len(r[0].AdDays.Points)-1].Count = r[0].Ads[0].Total
		}, time.Minute, []string{"'s total is", "'s total is"}},
		// An ad the run never sent.
		{"UnknownAd", func(r []campaignReports) {
			r[1].Ads = append(r[1].Ads, AdStats{AdID: "ad-9"}, AdStats{AdID: "banner"})
			r[1].PageSizes = append(r[1].PageSizes, 2)
		}, time.Minute, []string{"lists ad \"ad-9\", which the run never sent", "lists ad \"banner\""}},
		// An ad listed twice, as a cursor that steps back would.
		{"AdTwice", func(r []campaignReports) {
			r[1].Ads = append(r[1].Ads, r[1].Ads[0])
			r[1].PageSizes = append(r[1].PageSizes, 1)
		}, time.Minute, []string{"lists " + adOf(1) + " twice", "ads' totals sum to 2, but stats total is 1"}},
		// An ad that counted, left out.
		{"AdLeftOut", func(r []campaignReports) {
			r[1].Ads, r[1].PageSizes, r[1].AdDays = nil, []int{0}, nil
		}, time.Minute, []string{"leaves out " + adOf(1), "ads' totals sum to 0, but stats total is 1"}},
		// Ads in the wrong order: the first two swapped.
		{"OutOfOrder", func(r []campaignReports) {
			r[0].Ads[0], r[0].Ads[1] = r[0].Ads[1], r[0].Ads[0]
			r[0].AdDays.AdID = r[0].Ads[0].AdID
			r[0].AdDays.Points[len(r[0].AdDays.Points)-1].Count = r[0].Ads[0].Total
		}, time.Minute, []string{"not in order of total"}},
		// A page longer than the limit asked for.
		{"PageTooLong", func(r []campaignReports) { r[0].Limit = 1 }, time.Minute, []string{"more than the limit of 1"}},
		// Pages without end.
		{"Unfinished", func(r []campaignReports) { r[1].Unfinished = true }, time.Minute, []string{"still had a next_cursor"}},
		// The filtered count belongs to the bot's ad.
		{"FilteredOnNoAd", func(r []campaignReports) {
			for i := range r[0].Ads {
				r[0].Ads[i].Filtered = 0
			}
		}, time.Minute, []string{"'s filtered is 0", "filtered counts sum to 0, but stats filtered is 1"}},
		// Within the hour an ad's last_hour is its total...
		{"AdLastHourShort", func(r []campaignReports) { r[1].Ads[0].LastHour = 0 }, time.Minute, []string{"'s last_hour is 0"}},
		// ...but not after it.
		{"AdLastHourAfterAnHour", func(r []campaignReports) { r[1].Ads[0].LastHour = 0 }, 2 * time.Hour, nil},
		// The first ad's own series agrees with its total.
		{"AdSeriesDisagrees", func(r []campaignReports) { r[1].AdDays.Points[0].Count++ }, time.Minute, []string{"'s day points sum to 2, but the per-ad breakdown says its total is 1"}},
		// And is the ad asked for.
		{"AdSeriesOfAnotherAd", func(r []campaignReports) { r[1].AdDays.AdID = "ad-x" }, time.Minute, []string{"answers for ad_id \"ad-x\""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(p, modeSingle, now)
			v := verifySent(l, atts, stats, tc.elapsed)
			require.True(t, v.OK(), "the stats alone pass: %q", v.Problems)
			reports := honestReports(v, now, 2)
			tc.change(reports)
			l.verifyReports(&v, reports, tc.elapsed)
			require.Len(t, v.Problems, len(tc.problems), "problems: %q", v.Problems)
			for i, want := range tc.problems {
				assert.Contains(t, v.Problems[i], want)
			}
			var out bytes.Buffer
			_, err := v.WriteTo(&out)
			require.NoError(t, err)
			assert.Contains(t, out.String(), "day sum", "the reports' table")
			if v.OK() {
				assert.Contains(t, out.String(), "and so do its time series and its per-ad breakdown")
			}
		})
	}
}

// botAt is at for a bot's key.
func botAt(key uint64, start, end int, o outcome) sent {
	s := at(key, start, end, o)
	s.bot = true
	return s
}

func TestPageLimit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		given, ads int
		want       int
	}{
		// A page size given is used as it is.
		{"Given", 7, 10, 7},
		// Otherwise three pages, so that the cursor is followed twice.
		{"ThreePages", 0, 10, 4},
		{"ThreeExactly", 0, 9, 3},
		// One ad is one page of one.
		{"OneAd", 0, 1, 1},
		// Many ads: the API's most a page.
		{"ManyAds", 0, 100_000, maxPageLimit},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, pageLimit(tc.given, tc.ads), tc.name)
	}
}

func TestSeriesFrom(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	cases := []struct {
		name  string
		start time.Time
		reach time.Duration
		want  time.Time
	}{
		// A campaign that started recently: from its start.
		{"FromTheStart", now.Add(-time.Hour), 1 << 62, now.Add(-time.Hour)},
		// One ad's days are kept 88 days back, with a margin.
		{"WithinReach", now.Add(-400 * day), 88 * day, now.Add(-88 * day)},
		// No series holds more than 1,500 points.
		{"WithinPoints", now.Add(-4000 * day), 1 << 62, now.Add(-1498 * day)},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, seriesFrom(tc.start, now, day, tc.reach), tc.name)
	}
}
