package memstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/storetest"
)

// createCampaign creates a campaign that started at Epoch, created at
// created.
func createCampaign(t testing.TB, s adcount.Store, id string, created time.Time) adcount.Campaign {
	t.Helper()
	c, err := adcount.NewCampaign(id, "Campaign "+id, storetest.Epoch)
	require.NoError(t, err)
	c.CreatedAt = created
	require.NoError(t, s.CreateCampaign(context.Background(), c))
	return c
}

func ptr[T any](v T) *T { return &v }

// TestRefusedImpressionsChangeNothing checks each reason a live campaign's
// check refuses an impression, alone and in a batch, and that a refused
// impression claims no dedup key: once the campaign is live again, the
// same impression counts.
func TestRefusedImpressionsChangeNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		patch adcount.CampaignPatch
		// start is the campaign's start, after Epoch.
		start time.Duration
		want  error
		// live makes the campaign live again.
		live adcount.CampaignPatch
		at   time.Duration // when it is live again, after Epoch
	}{
		// Paused, then resumed.
		{"Paused", adcount.CampaignPatch{Paused: ptr(true)}, 0, adcount.ErrPaused, adcount.CampaignPatch{Paused: ptr(false)}, 0},
		// Ended at Epoch exactly, then the end removed.
		{"Ended", adcount.CampaignPatch{EndTime: ptr(storetest.Epoch)}, -time.Hour, adcount.ErrEnded, adcount.CampaignPatch{EndTime: ptr(time.Time{})}, 0},
		// Not started until a minute after Epoch.
		{"NotStarted", adcount.CampaignPatch{}, time.Minute, adcount.ErrNotStarted, adcount.CampaignPatch{}, time.Minute},
		// Paused and ended: the end wins.
		{"PausedAndEnded", adcount.CampaignPatch{Paused: ptr(true), EndTime: ptr(storetest.Epoch)}, -time.Hour, adcount.ErrEnded,
			adcount.CampaignPatch{Paused: ptr(false), EndTime: ptr(time.Time{})}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := storetest.NewClock(storetest.Epoch)
			s := newStore(t, clock.Now, time.Hour)
			c, err := adcount.NewCampaign("c", "c", storetest.Epoch.Add(tc.start))
			require.NoError(t, err)
			require.NoError(t, s.CreateCampaign(ctx, c))
			if !tc.patch.Empty() {
				_, err := s.UpdateCampaign(ctx, c.ID, tc.patch)
				require.NoError(t, err)
			}
			imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}
			_, err = s.RecordImpression(ctx, imp)
			require.ErrorIs(t, err, tc.want)
			filtered := imp
			filtered.Filtered = true
			res, err := s.RecordImpressions(ctx, []adcount.Impression{imp, filtered})
			require.NoError(t, err)
			for _, r := range res {
				assert.ErrorIs(t, r.Err, tc.want)
				assert.Zero(t, r.Outcome)
			}
			assert.Zero(t, s.DedupEntries(), "no key claimed")
			assert.Equal(t, adcount.Stats{CampaignID: c.ID, AsOf: clock.Now()}, fullStats(t, s, c.ID))
			page, err := s.AdStats(ctx, c.ID, adcount.AdQuery{Limit: 10})
			require.NoError(t, err)
			assert.Empty(t, page.Ads, "no ad appears")

			if !tc.live.Empty() {
				_, err := s.UpdateCampaign(ctx, c.ID, tc.live)
				require.NoError(t, err)
			}
			clock.Set(storetest.Epoch.Add(tc.at))
			res, err = s.RecordImpressions(ctx, []adcount.Impression{imp, filtered, imp})
			require.NoError(t, err)
			want := []adcount.Outcome{adcount.Counted, adcount.Filtered, adcount.Duplicate}
			for i, r := range res {
				require.NoError(t, r.Err)
				assert.Equal(t, want[i], r.Outcome, "item %d", i)
			}
		})
	}
}

// TestUpdateCampaign checks what a patch changes, that a bad one changes
// nothing, and the errors.
func TestUpdateCampaign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, storetest.NewClock(storetest.Epoch).Now, time.Hour)
	c := createCampaign(t, s, "c", storetest.Epoch)
	end := storetest.Epoch.Add(48 * time.Hour)

	got, err := s.UpdateCampaign(ctx, c.ID, adcount.CampaignPatch{Name: ptr("  Renamed "), EndTime: &end, Paused: ptr(true)})
	require.NoError(t, err)
	want := c
	want.Name, want.EndTime, want.Paused = "Renamed", end, true
	assert.Equal(t, want, got)
	stored, err := s.Campaign(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored)

	// A bad name after a good end: the whole patch is refused.
	_, err = s.UpdateCampaign(ctx, c.ID, adcount.CampaignPatch{EndTime: ptr(end.Add(time.Hour)), Name: ptr(" ")})
	require.ErrorIs(t, err, adcount.ErrInvalid)
	// An end before the start.
	_, err = s.UpdateCampaign(ctx, c.ID, adcount.CampaignPatch{EndTime: ptr(storetest.Epoch.Add(-time.Hour))})
	require.ErrorIs(t, err, adcount.ErrInvalid)
	stored, err = s.Campaign(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, want, stored, "bad patches change nothing")

	_, err = s.UpdateCampaign(ctx, "nope", adcount.CampaignPatch{Paused: ptr(true)})
	require.ErrorIs(t, err, adcount.ErrNotFound)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.UpdateCampaign(cancelled, c.ID, adcount.CampaignPatch{Paused: ptr(false)})
	require.ErrorIs(t, err, context.Canceled)
}

// listAll reads every page of the list and returns the campaigns' IDs.
func listAll(t *testing.T, s adcount.Store, q adcount.CampaignQuery) []string {
	t.Helper()
	var ids []string
	for {
		page, err := s.ListCampaigns(context.Background(), q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Campaigns), q.Limit)
		for _, c := range page.Campaigns {
			ids = append(ids, c.ID)
		}
		if page.Next == nil {
			return ids
		}
		require.Len(t, page.Campaigns, q.Limit, "only the last page is short")
		q.After = page.Next
	}
}

// TestListCampaigns checks the order, the pages and the status filter of
// the list against a sort of every campaign.
func TestListCampaigns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	var all []adcount.Campaign
	for i := range 300 {
		// Out of order, with ties on the creation time, and some from
		// before creation times existed.
		created := storetest.Epoch.Add(time.Duration(rng.IntN(50)) * time.Second)
		if i%17 == 0 {
			created = time.Time{}
		}
		c := createCampaign(t, s, fmt.Sprintf("c%03d", rng.IntN(1000)*1000+i), created)
		switch i % 4 {
		case 1:
			c, _ = s.UpdateCampaign(ctx, c.ID, adcount.CampaignPatch{Paused: ptr(true)})
		case 2:
			c, _ = s.UpdateCampaign(ctx, c.ID, adcount.CampaignPatch{EndTime: ptr(storetest.Epoch.Add(time.Minute))})
		}
		all = append(all, c)
	}
	slices.SortFunc(all, adcount.NewerFirst)
	now := storetest.Epoch.Add(2 * time.Minute)
	for _, status := range append([]adcount.Status{""}, adcount.Statuses...) {
		var want []string
		for _, c := range all {
			if status == "" || c.Status(now) == status {
				want = append(want, c.ID)
			}
		}
		for _, limit := range []int{1, 7, 50, adcount.MaxPageLimit} {
			got := listAll(t, s, adcount.CampaignQuery{Limit: limit, Status: status, Now: now})
			assert.Equal(t, want, got, "status %q, limit %d", status, limit)
		}
	}
	page, err := s.ListCampaigns(ctx, adcount.CampaignQuery{Limit: 5, Now: now})
	require.NoError(t, err)
	assert.True(t, page.Campaigns[len(page.Campaigns)-1].CreatedAt.After(time.Time{}))

	for _, q := range []adcount.CampaignQuery{
		{Limit: 0},                        // below the range
		{Limit: adcount.MaxPageLimit + 1}, // above it
		{Limit: 10, Status: "running"},    // no such status
	} {
		_, err := s.ListCampaigns(ctx, q)
		assert.ErrorIs(t, err, adcount.ErrInvalid, "%+v", q)
	}
}

// TestListIsStableUnderCreates reads the list page by page while other
// goroutines create campaigns: every campaign that existed before the
// first page is listed exactly once, in order, and no page shifts.
func TestListIsStableUnderCreates(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Hour)
	var before []string
	for i := range 500 {
		c := createCampaign(t, s, fmt.Sprintf("old-%04d", i), storetest.Epoch.Add(time.Duration(i)*time.Millisecond))
		before = append(before, c.ID)
	}
	slices.Reverse(before)

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				c, err := adcount.NewCampaign(fmt.Sprintf("new-%d-%03d", g, i), "new", storetest.Epoch)
				if !assert.NoError(t, err) {
					return
				}
				c.CreatedAt = storetest.Epoch.Add(time.Hour + time.Duration(i)*time.Millisecond)
				if !assert.NoError(t, s.CreateCampaign(context.Background(), c)) {
					return
				}
			}
		})
	}
	var got []string
	q := adcount.CampaignQuery{Limit: 7, Now: storetest.Epoch}
	first := true
	for {
		page, err := s.ListCampaigns(context.Background(), q)
		require.NoError(t, err)
		for _, c := range page.Campaigns {
			if !first || c.CreatedAt.Before(storetest.Epoch.Add(time.Hour)) {
				got = append(got, c.ID)
			}
		}
		first = false
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	wg.Wait()
	// The first page may hold new campaigns; every later one holds only
	// campaigns older than its cursor.
	assert.Equal(t, before, got)
}

// TestSeriesAndAdStats records over two days into three ads and checks
// the series, at every interval, for the campaign and for one ad, and the
// breakdown, against what was sent; and that the series agree with Stats.
func TestSeriesAndAdStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Minute)
	c := createCampaign(t, s, "c", storetest.Epoch)
	perMinute := map[string]map[int64]int64{}
	user := 0
	// Every 37 minutes for 50 hours: ad i%3 gets i%4+1 impressions and one
	// filtered one.
	for i := range 50 * 60 / 37 {
		ad := fmt.Sprint("ad-", i%3)
		var imps []adcount.Impression
		for range i%4 + 1 {
			user++
			imps = append(imps, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("u", user), AdID: ad})
		}
		imps = append(imps, adcount.Impression{CampaignID: c.ID, UserID: "bot", AdID: ad, Filtered: true})
		for _, r := range recordAll(t, s, imps) {
			require.NoError(t, r.Err)
		}
		if perMinute[ad] == nil {
			perMinute[ad] = map[int64]int64{}
		}
		perMinute[ad][adcount.Bucket(clock.Now())] += int64(i%4 + 1)
		clock.Advance(37 * time.Minute)
	}
	now := clock.Now()
	sum := func(ad string, first, last int64, width int64) int64 {
		var n int64
		for a, m := range perMinute {
			if ad != "" && a != ad {
				continue
			}
			for b, v := range m {
				if floor(b, width) >= first && floor(b, width) <= last {
					n += v
				}
			}
		}
		return n
	}
	width := map[adcount.Interval]int64{adcount.Minute: 1, adcount.Hour: 60, adcount.Day: 1440}
	for _, ad := range []string{"", "ad-0", "ad-1", "ad-2", "ad-9"} {
		for _, iv := range []adcount.Interval{adcount.Minute, adcount.Hour, adcount.Day} {
			span := time.Duration(adcount.Retention(iv, ad != "")) * iv.Duration()
			if span == 0 {
				span = 3 * 24 * time.Hour
			}
			q := adcount.SeriesQuery{From: now.Add(-span).Add(iv.Duration()), To: now.Add(time.Nanosecond), Interval: iv, AdID: ad}
			if n := int64(span / iv.Duration()); n > adcount.MaxSeriesPoints {
				q.From = now.Add(-adcount.MaxSeriesPoints * iv.Duration()).Add(iv.Duration())
			}
			require.NoError(t, q.Check(now), "%s %s", ad, iv)
			series, err := s.Series(ctx, c.ID, q)
			require.NoError(t, err)
			assert.Equal(t, now, series.AsOf)
			require.Equal(t, adcount.NewSeries(q).Points[0].Start, series.Points[0].Start)
			for _, p := range series.Points {
				idx := iv.Index(p.Start)
				require.Equal(t, sum(ad, idx, idx, width[iv]), p.Count, "%s %s at %s", ad, iv, p.Start)
			}
		}
	}

	st := fullStats(t, s, c.ID)
	hour := adcount.LastHour(now)
	day := adcount.LastDay(now)
	assert.Equal(t, sum("", hour.First, hour.Last, 1), st.LastHour)
	assert.Equal(t, sum("", day.First, day.Last, 1), st.LastDay)
	days, err := s.Series(ctx, c.ID, adcount.SeriesQuery{From: storetest.Epoch, To: now.Add(time.Nanosecond), Interval: adcount.Day})
	require.NoError(t, err)
	var total int64
	for _, p := range days.Points {
		total += p.Count
	}
	assert.Equal(t, st.Total, total, "day points sum to the total")

	page, err := s.AdStats(ctx, c.ID, adcount.AdQuery{Limit: 10})
	require.NoError(t, err)
	assert.Nil(t, page.Next)
	assert.Equal(t, now, page.AsOf)
	require.Len(t, page.Ads, 3)
	var adTotal int64
	h := adcount.Hour.Index(now)
	for i, a := range page.Ads {
		if i > 0 {
			assert.Equal(t, -1, adcount.MoreFirst(page.Ads[i-1], a), "in MoreFirst order")
		}
		assert.Equal(t, sum(a.AdID, hour.First, hour.Last, 1), a.LastHour, a.AdID)
		assert.Equal(t, sum(a.AdID, h-23, h, 60), a.LastDay, a.AdID)
		assert.Equal(t, sum(a.AdID, -1<<40, 1<<40, 1), a.Total, a.AdID)
		assert.Positive(t, a.Filtered, a.AdID)
		adTotal += a.Total
	}
	assert.Equal(t, st.Total, adTotal)
}

func floor(b, width int64) int64 {
	q := b / width
	if b%width < 0 {
		q--
	}
	return q
}

func recordAll(t *testing.T, s adcount.Store, imps []adcount.Impression) []adcount.Result {
	t.Helper()
	res, err := s.RecordImpressions(context.Background(), imps)
	require.NoError(t, err)
	return res
}

// TestAdStatsPages checks the breakdown of a campaign with many ads, whose
// totals tie often, page by page at several limits, against a sort of
// every ad.
func TestAdStatsPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Hour)
	c := createCampaign(t, s, "c", storetest.Epoch)
	rng := rand.New(rand.NewPCG(3, 4))
	totals := map[string]int64{}
	var imps []adcount.Impression
	for i := range 3000 {
		ad := fmt.Sprint("ad-", rng.IntN(400))
		totals[ad]++
		imps = append(imps, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("u", i), AdID: ad})
		if len(imps) == adcount.MaxBatch {
			recordAll(t, s, imps)
			imps = imps[:0]
		}
	}
	recordAll(t, s, imps)
	// One ad with only filtered impressions lists with a total of zero.
	recordAll(t, s, []adcount.Impression{{CampaignID: c.ID, UserID: "bot", AdID: "bot-ad", Filtered: true}})
	totals["bot-ad"] = 0
	var want []adcount.AdStats
	for ad, n := range totals {
		want = append(want, adcount.AdStats{AdID: ad, Total: n})
	}
	slices.SortFunc(want, adcount.MoreFirst)

	for _, limit := range []int{1, 3, 50, adcount.MaxPageLimit} {
		var got []adcount.AdStats
		q := adcount.AdQuery{Limit: limit}
		for {
			page, err := s.AdStats(ctx, c.ID, q)
			require.NoError(t, err)
			for _, a := range page.Ads {
				got = append(got, adcount.AdStats{AdID: a.AdID, Total: a.Total})
			}
			if page.Next == nil {
				break
			}
			require.Len(t, page.Ads, limit)
			q.After = page.Next
		}
		require.Equal(t, want, got, "limit %d", limit)
	}

	for _, q := range []adcount.AdQuery{{Limit: 0}, {Limit: adcount.MaxPageLimit + 1}} {
		_, err := s.AdStats(ctx, c.ID, q)
		assert.ErrorIs(t, err, adcount.ErrInvalid, "%+v", q)
	}
	_, err := s.AdStats(ctx, "nope", adcount.AdQuery{Limit: 1})
	assert.ErrorIs(t, err, adcount.ErrNotFound)
	_, err = s.Series(ctx, "nope", adcount.SeriesQuery{From: storetest.Epoch, To: storetest.Epoch.Add(time.Hour), Interval: adcount.Hour})
	assert.ErrorIs(t, err, adcount.ErrNotFound)
}

// TestSeriesRefusesWhatItCannotAnswer checks the queries a caller should
// have refused with SeriesQuery.Check, and which would cost what they ask
// for: the store refuses them too, rather than allocate or panic.
func TestSeriesRefusesWhatItCannotAnswer(t *testing.T) {
	t.Parallel()
	s := newStore(t, storetest.NewClock(storetest.Epoch).Now, time.Hour)
	c := createCampaign(t, s, "c", storetest.Epoch)
	cases := []struct {
		name string
		q    adcount.SeriesQuery
	}{
		// To before From would make a negative number of points.
		{"Backwards", adcount.SeriesQuery{From: storetest.Epoch, To: storetest.Epoch.Add(-time.Hour), Interval: adcount.Hour}},
		// Empty: From equals To.
		{"Empty", adcount.SeriesQuery{From: storetest.Epoch, To: storetest.Epoch, Interval: adcount.Hour}},
		// Ten years of minutes.
		{"TooMany", adcount.SeriesQuery{From: storetest.Epoch.AddDate(-10, 0, 0), To: storetest.Epoch, Interval: adcount.Minute}},
		// No such interval.
		{"Interval", adcount.SeriesQuery{From: storetest.Epoch, To: storetest.Epoch.Add(time.Hour), Interval: "week"}},
	}
	for _, tc := range cases {
		_, err := s.Series(context.Background(), c.ID, tc.q)
		assert.ErrorIs(t, err, adcount.ErrInvalid, tc.name)
	}
}
