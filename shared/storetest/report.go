package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

// The reporting and lifecycle cases. Stores backed by a shared service
// list every campaign the suite's parallel cases made, so the list cases
// look only at their own campaigns among whatever else a page holds.

func ptr[T any](v T) *T { return &v }

// settle waits until a store that aggregates behind its writes
// (adcount.Settler) includes everything acknowledged so far: after its
// watermark has passed the call, never after a sleep.
func (f *fixture) settle(t *testing.T) {
	t.Helper()
	if s, ok := f.store.(adcount.Settler); ok {
		ctx, cancel := context.WithTimeout(context.Background(), SettleBound)
		defer cancel()
		require.NoError(t, s.Settle(ctx), "the store's counts must catch up within %v", SettleBound)
	}
}

// patch applies p and returns the campaign as changed, checking that a
// read gives the same.
func (f *fixture) patch(t *testing.T, id string, p adcount.CampaignPatch) adcount.Campaign {
	t.Helper()
	c, err := f.store.UpdateCampaign(context.Background(), id, p)
	require.NoError(t, err)
	got, err := f.store.Campaign(context.Background(), id)
	require.NoError(t, err)
	assertSameCampaign(t, c, got)
	return c
}

func assertSameCampaign(t *testing.T, want, got adcount.Campaign) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Name, got.Name)
	assert.True(t, want.StartTime.Equal(got.StartTime), "start %v, want %v", got.StartTime, want.StartTime)
	assert.True(t, want.EndTime.Equal(got.EndTime), "end %v, want %v", got.EndTime, want.EndTime)
	assert.Equal(t, want.Paused, got.Paused, "paused")
	assert.True(t, want.CreatedAt.Equal(got.CreatedAt), "created %v, want %v", got.CreatedAt, want.CreatedAt)
}

func testLifecycleRoundTrips(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	assert.False(t, c.CreatedAt.IsZero(), "a new campaign says when it was created")
	got, err := f.store.Campaign(context.Background(), c.ID)
	require.NoError(t, err)
	assertSameCampaign(t, c, got)
	assert.True(t, got.EndTime.IsZero(), "no end unless one is set")
	assert.False(t, got.Paused)

	end := Epoch.Add(48*time.Hour + 123*time.Millisecond)
	want := c
	want.Name, want.EndTime, want.Paused = "Summer sale", end, true
	assertSameCampaign(t, want, f.patch(t, c.ID, adcount.CampaignPatch{Name: ptr("  Summer sale "), EndTime: ptr(end), Paused: ptr(true)}))

	want.Paused = false
	assertSameCampaign(t, want, f.patch(t, c.ID, adcount.CampaignPatch{Paused: ptr(false)}))
	want.EndTime = time.Time{}
	assertSameCampaign(t, want, f.patch(t, c.ID, adcount.CampaignPatch{EndTime: ptr(time.Time{})}))

	bad := []struct {
		name string
		p    adcount.CampaignPatch
	}{
		// An end must come after the start, and a name must not be blank;
		// the rest of a bad patch must not be applied either.
		{"EndAtStart", adcount.CampaignPatch{Name: ptr("Other"), EndTime: ptr(c.StartTime), Paused: ptr(true)}},
		{"EndBeforeStart", adcount.CampaignPatch{EndTime: ptr(c.StartTime.Add(-time.Hour))}},
		{"BlankName", adcount.CampaignPatch{Name: ptr(" "), Paused: ptr(true)}},
	}
	for _, tc := range bad {
		_, err := f.store.UpdateCampaign(context.Background(), c.ID, tc.p)
		require.ErrorIs(t, err, adcount.ErrInvalid, tc.name)
		got, err := f.store.Campaign(context.Background(), c.ID)
		require.NoError(t, err)
		assertSameCampaign(t, want, got)
	}
	_, err = f.store.UpdateCampaign(context.Background(), c.ID+"-missing", adcount.CampaignPatch{Paused: ptr(true)})
	require.ErrorIs(t, err, adcount.ErrNotFound)
}

func testPauseAndEndRefuseImpressions(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	imp := func(user string) adcount.Impression {
		return adcount.Impression{CampaignID: c.ID, UserID: user, AdID: "a"}
	}
	require.True(t, f.record(t, imp("u1")))

	f.patch(t, c.ID, adcount.CampaignPatch{Paused: ptr(true)})
	_, err := f.store.RecordImpression(context.Background(), imp("u2"))
	require.ErrorIs(t, err, adcount.ErrPaused, "a paused campaign refuses impressions")
	res := f.batch(t, []adcount.Impression{imp("u2"), imp("u3"), {CampaignID: c.ID, UserID: "u4", AdID: "a", Filtered: true}})
	for _, r := range res {
		require.ErrorIs(t, r.Err, adcount.ErrPaused, "each of a batch's items is refused on its own")
	}
	st := f.allStats(t, c.ID)
	assert.Equal(t, [4]int64{1, 1, 1, 0}, [4]int64{st.LastHour, st.LastDay, st.Total, st.Filtered}, "refused impressions change nothing")

	f.clock.Advance(time.Minute)
	f.patch(t, c.ID, adcount.CampaignPatch{Paused: ptr(false), EndTime: ptr(f.now().Add(time.Minute))})
	assert.True(t, f.record(t, imp("u2")), "resumed, it counts, and the refused try kept no dedup key")

	f.clock.Advance(time.Minute - Tick)
	assert.True(t, f.record(t, imp("u3")), "one tick before the end it counts")
	f.clock.Advance(Tick)
	_, err = f.store.RecordImpression(context.Background(), imp("u5"))
	require.ErrorIs(t, err, adcount.ErrEnded, "at the end time it is refused")
	res = f.batch(t, []adcount.Impression{imp("u5"), imp("u1")})
	for _, r := range res {
		require.ErrorIs(t, r.Err, adcount.ErrEnded)
	}
	// An end wins over a pause: the campaign can never count again.
	f.patch(t, c.ID, adcount.CampaignPatch{Paused: ptr(true)})
	_, err = f.store.RecordImpression(context.Background(), imp("u5"))
	require.ErrorIs(t, err, adcount.ErrEnded)
	assert.Equal(t, [3]int64{3, 3, 3}, f.stats(t, c.ID))

	// Moving the end later makes it live again.
	f.patch(t, c.ID, adcount.CampaignPatch{Paused: ptr(false), EndTime: ptr(f.now().Add(time.Hour))})
	assert.True(t, f.record(t, imp("u5")))
	assert.Equal(t, [3]int64{4, 4, 4}, f.stats(t, c.ID))
}

// listAll walks every page of the list that q asks for, limit and
// filters, and returns the campaigns among ids in the order the pages
// gave them. Between pages it calls between, if set, with the page
// number.
func (f *fixture) listAll(t *testing.T, q adcount.CampaignQuery, ids map[string]bool, between func(page int)) []adcount.Campaign {
	t.Helper()
	var (
		mine []adcount.Campaign
		seen = map[string]bool{}
	)
	for page := 0; ; page++ {
		require.Less(t, page, 100_000, "the list must end")
		q.Now = f.now()
		p, err := f.store.ListCampaigns(context.Background(), q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Campaigns), q.Limit)
		for i, c := range p.Campaigns {
			require.False(t, seen[c.ID], "campaign %s listed twice", c.ID)
			seen[c.ID] = true
			if i > 0 {
				require.Negative(t, adcount.NewerFirst(p.Campaigns[i-1], c), "newest first")
			}
			if q.After != nil {
				require.False(t, q.After.Covers(c), "a page starts after its cursor")
			}
			if q.Status != "" {
				require.Equal(t, q.Status, c.Status(f.now()), "the status filter")
			}
			if q.Name != "" {
				require.True(t, adcount.NameMatches(c.Name, q.Name), "the name search: %q in %q", q.Name, c.Name)
			}
			if ids[c.ID] {
				mine = append(mine, c)
			}
		}
		if p.Next == nil {
			return mine
		}
		if !q.Filtered() {
			require.NotEmpty(t, p.Campaigns, "an unfiltered page with a next cursor has campaigns")
			require.Equal(t, adcount.CursorAfter(p.Campaigns[len(p.Campaigns)-1]), *p.Next)
		} else if len(p.Campaigns) > 0 {
			require.True(t, p.Next.Covers(p.Campaigns[len(p.Campaigns)-1]), "a filtered page's cursor is at or past its last campaign")
		}
		q.After = p.Next
		if between != nil {
			between(page)
		}
	}
}

func testListNewestFirst(t *testing.T, f *fixture) {
	ids := map[string]bool{}
	var made []adcount.Campaign
	for range 7 {
		c := f.campaign(t, Epoch)
		ids[c.ID] = true
		made = append(made, c)
		f.clock.Advance(Tick)
	}
	slices.Reverse(made)

	var during []string
	got := f.listAll(t, adcount.CampaignQuery{Limit: 3}, ids, func(page int) {
		if page < 2 { // campaigns created while the list is read
			c := f.campaign(t, Epoch)
			ids[c.ID] = true
			during = append(during, c.ID)
			f.clock.Advance(Tick)
		}
	})
	var gotIDs, wantIDs []string
	for _, c := range got {
		gotIDs = append(gotIDs, c.ID)
	}
	for _, c := range made {
		wantIDs = append(wantIDs, c.ID)
	}
	assert.Equal(t, wantIDs, gotIDs, "every campaign once, newest first; those created while paging sort before the cursor and do not shift later pages")
	for i, c := range got {
		assertSameCampaign(t, made[i], c)
	}

	all := f.listAll(t, adcount.CampaignQuery{Limit: adcount.MaxPageLimit}, ids, nil)
	require.Len(t, all, len(made)+len(during), "a new walk sees the campaigns created during the last one")
	assert.Equal(t, during[1], all[0].ID)
	assert.Equal(t, during[0], all[1].ID)

	for _, limit := range []int{0, -1, adcount.MaxPageLimit + 1} {
		_, err := f.store.ListCampaigns(context.Background(), adcount.CampaignQuery{Limit: limit, Now: f.now()})
		require.ErrorIs(t, err, adcount.ErrInvalid, "limit %d", limit)
	}
}

func testListFiltersByStatus(t *testing.T, f *fixture) {
	scheduled := f.campaign(t, Epoch.Add(24*time.Hour))
	active := f.campaign(t, Epoch)
	paused := f.campaign(t, Epoch)
	f.patch(t, paused.ID, adcount.CampaignPatch{Paused: ptr(true)})
	ended := f.campaign(t, Epoch)
	f.patch(t, ended.ID, adcount.CampaignPatch{EndTime: ptr(Epoch.Add(time.Minute))})
	f.clock.Advance(time.Minute)

	ids := map[string]bool{scheduled.ID: true, active.ID: true, paused.ID: true, ended.ID: true}
	want := map[adcount.Status]string{
		adcount.StatusScheduled: scheduled.ID,
		adcount.StatusActive:    active.ID,
		adcount.StatusPaused:    paused.ID,
		adcount.StatusEnded:     ended.ID,
	}
	for status, id := range want {
		got := f.listAll(t, adcount.CampaignQuery{Limit: 3, Status: status}, ids, nil)
		require.Len(t, got, 1, status)
		assert.Equal(t, id, got[0].ID, status)
	}
	assert.Len(t, f.listAll(t, adcount.CampaignQuery{Limit: 3}, ids, nil), 4, "no filter lists all")
}

// named creates a campaign as campaign does and renames it, so that it
// works for stores that choose their own IDs and names.
func (f *fixture) named(t *testing.T, name string) adcount.Campaign {
	t.Helper()
	c := f.campaign(t, Epoch)
	return f.patch(t, c.ID, adcount.CampaignPatch{Name: &name})
}

func testListSearchesByName(t *testing.T, f *fixture) {
	// A token of this case's own, since a shared store lists the other
	// cases' campaigns too; letters, so that its case can be changed.
	tok := strings.Map(func(r rune) rune { return 'a' + r%26 }, uuid.NewString()[:12])
	upper := strings.ToUpper(tok)
	var sales []adcount.Campaign // newest first, as the list gives them
	ids := map[string]bool{}
	for i, name := range []string{
		tok + " Summer Sale 1",
		tok + " summer sale 2",
		upper + " SUMMER SALE 3",
		tok + " Summer Sale 4",
		tok + " sUmMeR sAlE 5",
	} {
		c := f.named(t, name)
		if i == 1 {
			c = f.patch(t, c.ID, adcount.CampaignPatch{Paused: ptr(true)})
		}
		sales = append([]adcount.Campaign{c}, sales...)
		ids[c.ID] = true
		f.clock.Advance(Tick)
	}
	winter := f.named(t, "Winter "+tok)
	ids[winter.ID] = true
	idsOf := func(cs []adcount.Campaign) []string {
		out := make([]string, len(cs))
		for i, c := range cs {
			out[i] = c.ID
		}
		return out
	}
	paused := sales[3] // the second made

	cases := []struct {
		name string
		q    adcount.CampaignQuery
		want []adcount.Campaign
	}{
		// Every match, whatever the case of the name or the search,
		// across pages of 2.
		{"UpperSearch", adcount.CampaignQuery{Limit: 2, Name: upper + " summer SALE"}, sales},
		{"LowerSearch", adcount.CampaignQuery{Limit: 2, Name: tok + " summer sale"}, sales},
		// A substring anywhere in the name.
		{"InTheMiddle", adcount.CampaignQuery{Limit: 2, Name: "ER " + upper}, []adcount.Campaign{winter}},
		{"OnePage", adcount.CampaignQuery{Limit: adcount.MaxPageLimit, Name: tok}, append([]adcount.Campaign{winter}, sales...)},
		// The search and the status filter both apply.
		{"WithStatus", adcount.CampaignQuery{Limit: 1, Name: "SUMMER SALE " + "2", Status: adcount.StatusPaused}, []adcount.Campaign{paused}},
		{"WithStatusNoneMatch", adcount.CampaignQuery{Limit: 1, Name: upper + " winter", Status: adcount.StatusPaused}, nil},
		// No match is an empty list, and the walk ends.
		{"NoMatch", adcount.CampaignQuery{Limit: 3, Name: tok + " autumn"}, nil},
	}
	for _, tc := range cases {
		got := f.listAll(t, tc.q, ids, nil)
		assert.Equal(t, idsOf(tc.want), idsOf(got), tc.name)
	}

	for _, bad := range []string{strings.Repeat("a", adcount.MaxNameRunes+1), "sale\xff"} {
		_, err := f.store.ListCampaigns(context.Background(), adcount.CampaignQuery{Limit: 1, Name: bad, Now: f.now()})
		var fe *adcount.FieldError
		require.ErrorAs(t, err, &fe, "search %q", bad)
		assert.Equal(t, "name", fe.Field)
	}
}

// at records one impression per ad at the clock's current time, with a
// fresh user each, and returns how many it recorded.
func (f *fixture) at(t *testing.T, campaign string, ads ...string) int64 {
	t.Helper()
	imps := make([]adcount.Impression, len(ads))
	for i, ad := range ads {
		imps[i] = adcount.Impression{CampaignID: campaign, UserID: fmt.Sprintf("u-%d-%d", f.now().UnixNano(), i), AdID: ad}
	}
	for i, r := range f.batch(t, imps) {
		require.NoError(t, r.Err, i)
		require.Equal(t, adcount.Counted, r.Outcome, i)
	}
	return int64(len(ads))
}

func (f *fixture) series(t *testing.T, id string, q adcount.SeriesQuery) adcount.Series {
	t.Helper()
	require.NoError(t, q.Check(f.now()), "the suite asks only what the API lets through")
	f.settle(t)
	s, err := f.store.Series(context.Background(), id, q)
	require.NoError(t, err)
	first, last := q.Range()
	require.Len(t, s.Points, int(last-first+1), "one point per interval, zeros included")
	for i, p := range s.Points {
		require.Equal(t, q.Interval.Start(first+int64(i)), p.Start, "point %d starts on its interval, in UTC", i)
		require.Equal(t, time.UTC, p.Start.Location())
	}
	assert.False(t, s.AsOf.IsZero(), "a series says how fresh it is")
	return s
}

func sum(pts []adcount.Point) int64 {
	var n int64
	for _, p := range pts {
		n += p.Count
	}
	return n
}

// lastN returns the series of the n intervals that end with the current
// one, which is what a stats window sums for minutes.
func lastN(now time.Time, i adcount.Interval, n int64, ad string) adcount.SeriesQuery {
	last := i.Index(now)
	return adcount.SeriesQuery{From: i.Start(last - n + 1), To: i.Start(last + 1), Interval: i, AdID: ad}
}

func testSeriesAgreeWithStats(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	// Traffic every 37 minutes for 50 hours, across two day boundaries
	// and every hour boundary, with the number of impressions varying.
	var total int64
	for i := 0; i < 50*60/37; i++ {
		total += f.at(t, c.ID, slices.Repeat([]string{"a", "b"}, 1+i%3)...)
		f.clock.Advance(37 * time.Minute)
	}
	// Read at several moments: on an hour boundary, just after a day
	// boundary and mid-hour.
	for _, step := range []time.Duration{0, 13 * time.Minute, 47*time.Minute + 30*time.Second, time.Hour} {
		f.clock.Advance(step)
		now := f.now()
		st := f.allStats(t, c.ID)
		require.Equal(t, total, st.Total)
		hour := f.series(t, c.ID, lastN(now, adcount.Minute, adcount.HourBuckets, ""))
		assert.Equal(t, st.LastHour, sum(hour.Points), "minute points over the last hour at %v", now)
		day := f.series(t, c.ID, lastN(now, adcount.Minute, adcount.DayBuckets, ""))
		assert.Equal(t, st.LastDay, sum(day.Points), "minute points over the last day at %v", now)
		days := f.series(t, c.ID, adcount.SeriesQuery{From: c.StartTime, To: now.Add(time.Nanosecond), Interval: adcount.Day})
		assert.Equal(t, st.Total, sum(days.Points), "day points since the start at %v", now)
		hours := f.series(t, c.ID, adcount.SeriesQuery{From: c.StartTime, To: now.Add(time.Nanosecond), Interval: adcount.Hour})
		assert.Equal(t, st.Total, sum(hours.Points), "hour points since the start at %v", now)
		// Each hour point is the sum of its minutes.
		last := f.series(t, c.ID, lastN(now, adcount.Hour, 20, ""))
		for _, p := range last.Points {
			mins := f.series(t, c.ID, adcount.SeriesQuery{From: p.Start, To: p.Start.Add(time.Hour), Interval: adcount.Minute})
			require.Equal(t, p.Count, sum(mins.Points), "hour %v", p.Start)
		}
	}
}

func testSeriesPointsAreExact(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	f.clock.Advance(90 * time.Second) // 10:01:30
	f.at(t, c.ID, "a", "a", "b")
	q := adcount.SeriesQuery{From: Epoch.Add(30 * time.Second), To: Epoch.Add(4*time.Minute + time.Second), Interval: adcount.Minute}
	assert.Equal(t, []int64{0, 3, 0, 0, 0}, counts(f.series(t, c.ID, q)), "from and to are rounded out to whole minutes")

	f.clock.Advance(time.Hour) // 11:01:30
	f.at(t, c.ID, "b")
	f.clock.Advance(23 * time.Hour) // the next day, 10:01:30
	f.at(t, c.ID, "a", "c")

	s := f.series(t, c.ID, adcount.SeriesQuery{From: Epoch.Add(-time.Hour), To: f.now(), Interval: adcount.Hour})
	want := make([]int64, 26)
	want[1], want[2], want[25] = 3, 1, 2
	assert.Equal(t, want, counts(s), "hour points, zeros before the start included")

	s = f.series(t, c.ID, adcount.SeriesQuery{From: Epoch.Add(-48 * time.Hour), To: f.now(), Interval: adcount.Day})
	assert.Equal(t, []int64{0, 0, 4, 2}, counts(s), "day points, UTC days")

	// Each ad's impressions at 10:01 and 11:01 on the first day and at
	// 10:01 on the second.
	perAd := map[string][3]int64{"a": {2, 0, 1}, "b": {1, 1, 0}, "c": {0, 0, 1}, "never": {0, 0, 0}}
	for ad, n := range perAd {
		s := f.series(t, c.ID, adcount.SeriesQuery{From: Epoch.Add(-48 * time.Hour), To: f.now(), Interval: adcount.Day, AdID: ad})
		assert.Equal(t, []int64{0, 0, n[0] + n[1], n[2]}, counts(s), "day points of ad %s", ad)
		s = f.series(t, c.ID, lastN(f.now(), adcount.Hour, 24, ad))
		assert.Equal(t, n[1]+n[2], sum(s.Points), "hour points of ad %s over its last 24 hours", ad)
		assert.Equal(t, n[1], s.Points[0].Count, "ad %s at 11:00 the day before", ad)
		assert.Equal(t, n[2], s.Points[len(s.Points)-1].Count)
		s = f.series(t, c.ID, lastN(f.now(), adcount.Minute, 60, ad))
		assert.Equal(t, n[2], sum(s.Points), "minute points of ad %s over its last hour", ad)
		assert.Equal(t, n[2], s.Points[len(s.Points)-1].Count)
	}

	f.clock.Advance(time.Minute)
	_, err := f.store.Series(context.Background(), c.ID+"-missing", lastN(f.now(), adcount.Minute, 5, ""))
	require.ErrorIs(t, err, adcount.ErrNotFound)
}

func counts(s adcount.Series) []int64 {
	out := make([]int64, len(s.Points))
	for i, p := range s.Points {
		out[i] = p.Count
	}
	return out
}

// adPages walks every page of the breakdown with limit.
func (f *fixture) adPages(t *testing.T, id string, limit int) []adcount.AdStats {
	t.Helper()
	f.settle(t)
	var (
		all   []adcount.AdStats
		after *adcount.AdCursor
	)
	for page := 0; ; page++ {
		require.Less(t, page, 10_000, "the breakdown must end")
		p, err := f.store.AdStats(context.Background(), id, adcount.AdQuery{Limit: limit, After: after})
		require.NoError(t, err)
		require.LessOrEqual(t, len(p.Ads), limit)
		assert.False(t, p.AsOf.IsZero(), "a breakdown says how fresh it is")
		all = append(all, p.Ads...)
		if p.Next == nil {
			return all
		}
		require.NotEmpty(t, p.Ads)
		last := p.Ads[len(p.Ads)-1]
		require.Equal(t, adcount.AdCursor{Total: last.Total, AdID: last.AdID}, *p.Next)
		after = p.Next
	}
}

func testAdBreakdown(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	// Ad "d" has only filtered traffic; "b" and "c" tie on total and
	// order by ID; duplicates count nothing.
	f.at(t, c.ID, "a", "a", "a", "b", "c", "c")
	f.clock.Advance(30 * time.Minute)
	f.at(t, c.ID, "a", "b")
	dup := adcount.Impression{CampaignID: c.ID, UserID: "same", AdID: "e"}
	bot := adcount.Impression{CampaignID: c.ID, UserID: "same", AdID: "d", Filtered: true}
	res := f.batch(t, []adcount.Impression{dup, dup, bot, bot})
	// A filtered repeat answers Filtered, as BatchOfFiltered says, and
	// counts once.
	assert.Equal(t, []adcount.Outcome{adcount.Counted, adcount.Duplicate, adcount.Filtered, adcount.Filtered},
		[]adcount.Outcome{res[0].Outcome, res[1].Outcome, res[2].Outcome, res[3].Outcome})

	want := []adcount.AdStats{
		{AdID: "a", LastHour: 4, LastDay: 4, Total: 4},
		{AdID: "b", LastHour: 2, LastDay: 2, Total: 2},
		{AdID: "c", LastHour: 2, LastDay: 2, Total: 2},
		{AdID: "e", LastHour: 1, LastDay: 1, Total: 1},
		{AdID: "d", Filtered: 1},
	}
	for _, limit := range []int{1, 2, 3, adcount.MaxPageLimit} {
		assert.Equal(t, want, f.adPages(t, c.ID, limit), "limit %d", limit)
	}
	var sumTotal int64
	for _, a := range want {
		sumTotal += a.Total
	}
	st := f.allStats(t, c.ID)
	assert.Equal(t, st.Total, sumTotal, "the ads' totals add up to the campaign's")
	assert.Equal(t, st.Filtered, int64(1))

	// The windows slide: at 11:15, the first traffic (10:00) has left the
	// hour but "b"'s 10:30 impression has not; LastDay holds both.
	f.clock.Advance(45 * time.Minute)
	got := f.adPages(t, c.ID, adcount.MaxPageLimit)
	require.Len(t, got, 5)
	assert.Equal(t, adcount.AdStats{AdID: "a", LastHour: 1, LastDay: 4, Total: 4}, got[0])
	assert.Equal(t, adcount.AdStats{AdID: "b", LastHour: 1, LastDay: 2, Total: 2}, got[1])
	assert.Equal(t, adcount.AdStats{AdID: "c", LastHour: 0, LastDay: 2, Total: 2}, got[2])

	_, err := f.store.AdStats(context.Background(), c.ID+"-missing", adcount.AdQuery{Limit: 10})
	require.ErrorIs(t, err, adcount.ErrNotFound)
	empty := f.campaign(t, Epoch)
	assert.Empty(t, f.adPages(t, empty.ID, 10), "a campaign without traffic has no ads")
}

func testAdLastDayCountsWholeHours(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	f.clock.Advance(30 * time.Minute) // 10:30
	f.at(t, c.ID, "a")
	cases := []struct {
		name        string
		at          time.Duration // after 10:30 on the first day
		campaignDay int64
		adDay       int64
	}{
		// At 09:59 the next day both windows hold it.
		{"WithinBoth", 23*time.Hour + 29*time.Minute, 1, 1},
		// At 10:15 the campaign's minute window (from 10:16 the day
		// before) still holds it; the ad's whole hours (from 11:00) do
		// not: an ad's last day never reaches back more than 24 hours.
		{"OnlyTheCampaignsMinutes", 23*time.Hour + 45*time.Minute, 1, 0},
		// From 10:31 the next day neither does.
		{"Neither", 24*time.Hour + time.Minute, 0, 0},
	}
	base := f.now()
	for _, tc := range cases {
		f.clock.Set(base.Add(tc.at))
		st := f.allStats(t, c.ID)
		assert.Equal(t, tc.campaignDay, st.LastDay, tc.name)
		ads := f.adPages(t, c.ID, 10)
		require.Len(t, ads, 1, tc.name)
		assert.Equal(t, tc.adDay, ads[0].LastDay, tc.name)
		assert.Equal(t, int64(1), ads[0].Total, tc.name)
	}
}

func testReopenKeepsReports(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	f.at(t, c.ID, "a", "b", "b")
	f.clock.Advance(25 * time.Hour)
	f.at(t, c.ID, "a", "c")
	end := f.now().Add(time.Hour)
	c = f.patch(t, c.ID, adcount.CampaignPatch{Name: ptr("Renamed"), EndTime: ptr(end), Paused: ptr(true)})
	qs := []adcount.SeriesQuery{
		lastN(f.now(), adcount.Minute, adcount.DayBuckets, ""),
		lastN(f.now(), adcount.Hour, 48, ""),
		lastN(f.now(), adcount.Day, 3, ""),
		lastN(f.now(), adcount.Minute, 60, "a"),
		lastN(f.now(), adcount.Hour, 24, "b"),
		lastN(f.now(), adcount.Day, 3, "b"),
	}
	var before []adcount.Series
	for _, q := range qs {
		before = append(before, f.series(t, c.ID, q))
	}
	ads := f.adPages(t, c.ID, 2)
	list := f.listAll(t, adcount.CampaignQuery{Limit: adcount.MaxPageLimit}, map[string]bool{c.ID: true}, nil)
	require.Len(t, list, 1)

	f.store = f.opts.reopen(t, f.store)

	got, err := f.store.Campaign(context.Background(), c.ID)
	require.NoError(t, err)
	assertSameCampaign(t, c, got)
	for i, q := range qs {
		assert.Equal(t, counts(before[i]), counts(f.series(t, c.ID, q)), "series %+v", q)
	}
	assert.Equal(t, ads, f.adPages(t, c.ID, 2))
	after := f.listAll(t, adcount.CampaignQuery{Limit: adcount.MaxPageLimit}, map[string]bool{c.ID: true}, nil)
	require.Len(t, after, 1)
	assertSameCampaign(t, list[0], after[0])
	_, err = f.store.RecordImpression(context.Background(), adcount.Impression{CampaignID: c.ID, UserID: "late", AdID: "a"})
	require.ErrorIs(t, err, adcount.ErrPaused, "the pause survives")
}

func testConcurrentPatches(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	end := Epoch.Add(72 * time.Hour)
	patches := []adcount.CampaignPatch{
		{Paused: ptr(true)},
		{EndTime: ptr(end)},
	}
	for i := range 6 {
		patches = append(patches, adcount.CampaignPatch{Name: ptr(fmt.Sprint("Name ", i))})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(patches))
	for i, p := range patches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.store.UpdateCampaign(context.Background(), c.ID, p)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "patch %d", i)
	}
	got, err := f.store.Campaign(context.Background(), c.ID)
	require.NoError(t, err)
	assert.True(t, got.Paused, "the pause was not lost to a racing rename")
	assert.True(t, end.Equal(got.EndTime), "the end was not lost to a racing rename")
	assert.Regexp(t, `^Name [0-5]$`, got.Name)
	assert.True(t, c.StartTime.Equal(got.StartTime))
	assert.True(t, c.CreatedAt.Equal(got.CreatedAt))
}
