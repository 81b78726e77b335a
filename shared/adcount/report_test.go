package adcount_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

func TestCampaignStatus(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	cases := []struct {
		name   string
		c      adcount.Campaign
		now    time.Time
		want   adcount.Status
		refuse error
	}{
		{"BeforeTheStart", adcount.Campaign{StartTime: start}, start.Add(-1), adcount.StatusScheduled, adcount.ErrNotStarted},
		{"AtTheStart", adcount.Campaign{StartTime: start}, start, adcount.StatusActive, nil},
		{"NoEndNeverEnds", adcount.Campaign{StartTime: start}, adcount.MaxStartTime, adcount.StatusActive, nil},
		{"JustBeforeTheEnd", adcount.Campaign{StartTime: start, EndTime: end}, end.Add(-1), adcount.StatusActive, nil},
		{"AtTheEnd", adcount.Campaign{StartTime: start, EndTime: end}, end, adcount.StatusEnded, adcount.ErrEnded},
		{"Paused", adcount.Campaign{StartTime: start, Paused: true}, start, adcount.StatusPaused, adcount.ErrPaused},
		// A pause before the start shows as paused: the campaign will not
		// count at its start until it is resumed.
		{"PausedBeforeTheStart", adcount.Campaign{StartTime: start, Paused: true}, start.Add(-1), adcount.StatusPaused, adcount.ErrPaused},
		// An end wins over a pause: nothing can make the campaign count
		// again but a later end.
		{"PausedAndEnded", adcount.Campaign{StartTime: start, EndTime: end, Paused: true}, end, adcount.StatusEnded, adcount.ErrEnded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, tc.c.Status(tc.now))
			err := tc.c.Live(tc.now)
			if tc.refuse == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.refuse)
		})
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	for _, s := range adcount.Statuses {
		got, err := adcount.ParseStatus(string(s))
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	for _, bad := range []string{"", "Active", "running"} {
		_, err := adcount.ParseStatus(bad)
		var fe *adcount.FieldError
		require.ErrorAs(t, err, &fe, bad)
		assert.Equal(t, "status", fe.Field)
	}
}

func TestCampaignApply(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := adcount.Campaign{ID: "c", Name: "Sale", StartTime: start}
	str := func(s string) *string { return &s }
	at := func(t time.Time) *time.Time { return &t }
	yes := true
	cases := []struct {
		name      string
		c         adcount.Campaign
		p         adcount.CampaignPatch
		want      adcount.Campaign
		wantField string
	}{
		{"Nothing", base, adcount.CampaignPatch{}, base, ""},
		{"RenameTrims", base, adcount.CampaignPatch{Name: str(" Summer ")}, adcount.Campaign{ID: "c", Name: "Summer", StartTime: start}, ""},
		{"EndInUTC", base, adcount.CampaignPatch{EndTime: at(start.Add(time.Hour).In(time.FixedZone("X", 3600)))}, adcount.Campaign{ID: "c", Name: "Sale", StartTime: start, EndTime: start.Add(time.Hour)}, ""},
		{"ZeroEndRemovesIt", adcount.Campaign{ID: "c", Name: "Sale", StartTime: start, EndTime: start.Add(time.Hour)}, adcount.CampaignPatch{EndTime: at(time.Time{})}, base, ""},
		{"Pause", base, adcount.CampaignPatch{Paused: &yes}, adcount.Campaign{ID: "c", Name: "Sale", StartTime: start, Paused: true}, ""},
		// The end must leave the campaign some time to run.
		{"EndAtStart", base, adcount.CampaignPatch{EndTime: at(start)}, adcount.Campaign{}, "end_time"},
		{"EndBeforeStart", base, adcount.CampaignPatch{EndTime: at(start.Add(-time.Hour))}, adcount.Campaign{}, "end_time"},
		{"EndAfter9999", base, adcount.CampaignPatch{EndTime: at(adcount.MaxStartTime.Add(1))}, adcount.Campaign{}, "end_time"},
		{"BlankName", base, adcount.CampaignPatch{Name: str(" "), Paused: &yes}, adcount.Campaign{}, "name"},
		{"LongName", base, adcount.CampaignPatch{Name: str(strings.Repeat("x", adcount.MaxNameRunes+1))}, adcount.Campaign{}, "name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := tc.c
			got, err := tc.c.Apply(tc.p)
			assert.Equal(t, before, tc.c, "the campaign itself never changes")
			if tc.wantField != "" {
				var fe *adcount.FieldError
				require.ErrorAs(t, err, &fe)
				assert.Equal(t, tc.wantField, fe.Field)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	assert.True(t, adcount.CampaignPatch{}.Empty())
	assert.False(t, adcount.CampaignPatch{Paused: &yes}.Empty())
}

func TestCursorsRoundTrip(t *testing.T) {
	t.Parallel()
	cc := adcount.CampaignCursor{CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 123_000_000, time.UTC), ID: "a/b?c"}
	got, err := adcount.DecodeCursor[adcount.CampaignCursor](adcount.EncodeCursor(cc))
	require.NoError(t, err)
	assert.True(t, cc.CreatedAt.Equal(got.CreatedAt))
	assert.Equal(t, cc.ID, got.ID)
	assert.NotContains(t, adcount.EncodeCursor(cc), "a/b", "opaque and URL-safe")

	_, err = adcount.DecodeCursor[adcount.CampaignCursor](adcount.EncodeCursor(adcount.AdCursor{Total: 1, AdID: "a"}))
	assert.ErrorIs(t, err, adcount.ErrInvalid, "an ad cursor is no campaign cursor")

	ac := adcount.AdCursor{Total: 1 << 60, AdID: "ad é"}
	gotAd, err := adcount.DecodeCursor[adcount.AdCursor](adcount.EncodeCursor(ac))
	require.NoError(t, err)
	assert.Equal(t, ac, gotAd)

	for _, bad := range []string{
		"", "!!", "bm90IGpzb24", strings.Repeat("A", 2000),
		adcount.EncodeCursor(cc), // a campaign cursor is no ad cursor
		"e30",                    // {}
	} {
		_, err := adcount.DecodeCursor[adcount.AdCursor](bad)
		var fe *adcount.FieldError
		require.ErrorAs(t, err, &fe, bad)
		assert.Equal(t, "cursor", fe.Field)
	}
}

func TestListOrders(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cs := []adcount.Campaign{
		{ID: "b", CreatedAt: t0},
		{ID: "old"},
		{ID: "z", CreatedAt: t0.Add(time.Millisecond)},
		{ID: "a", CreatedAt: t0},
	}
	slices.SortFunc(cs, adcount.NewerFirst)
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	assert.Equal(t, []string{"z", "b", "a", "old"}, ids, "newest first, ties by ID descending, undated last")
	k := adcount.CursorAfter(cs[1])
	assert.Equal(t, []bool{true, true, false, false}, []bool{k.Covers(cs[0]), k.Covers(cs[1]), k.Covers(cs[2]), k.Covers(cs[3])})

	ads := []adcount.AdStats{{AdID: "c", Total: 1}, {AdID: "b", Total: 5}, {AdID: "a", Total: 1}}
	slices.SortFunc(ads, adcount.MoreFirst)
	assert.Equal(t, []string{"b", "a", "c"}, []string{ads[0].AdID, ads[1].AdID, ads[2].AdID})
	ak := adcount.AdCursor{Total: 1, AdID: "a"}
	assert.Equal(t, []bool{true, true, false}, []bool{ak.Covers(ads[0]), ak.Covers(ads[1]), ak.Covers(ads[2])})

	for _, n := range []int{1, adcount.DefaultPageLimit, adcount.MaxPageLimit} {
		assert.NoError(t, adcount.CheckPageLimit(n))
	}
	for _, n := range []int{0, -1, adcount.MaxPageLimit + 1} {
		assert.ErrorIs(t, adcount.CheckPageLimit(n), adcount.ErrInvalid)
	}
}

func TestSeriesQueryCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 10, 12, 30, 0, 0, time.UTC)
	cases := []struct {
		name    string
		q       adcount.SeriesQuery
		points  int
		wantErr string // part of the message; empty when valid
	}{
		{"DefaultDayOfHours", adcount.SeriesQuery{From: now.Add(-24 * time.Hour), To: now, Interval: adcount.Hour}, 25, ""},
		{"AlignedDayOfHours", adcount.SeriesQuery{From: now.Add(-24 * time.Hour).Truncate(time.Hour), To: now.Truncate(time.Hour), Interval: adcount.Hour}, 24, ""},
		{"OldestMinute", adcount.SeriesQuery{From: now.Add(-1439 * time.Minute), To: now, Interval: adcount.Minute}, 1439, ""},
		{"MinuteTooOld", adcount.SeriesQuery{From: now.Add(-1440 * time.Minute), To: now.Add(-1380 * time.Minute), Interval: adcount.Minute}, 0, "kept for 24 hours"},
		{"HoursFor90Days", adcount.SeriesQuery{From: now.Add(-2159 * time.Hour), To: now.Add(-2000 * time.Hour), Interval: adcount.Hour}, 160, ""},
		{"HourTooOld", adcount.SeriesQuery{From: now.Add(-2160 * time.Hour), To: now.Add(-2000 * time.Hour), Interval: adcount.Hour}, 0, "kept for 90 days"},
		{"DaysForEver", adcount.SeriesQuery{From: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), To: now, Interval: adcount.Day}, 1257, ""},
		{"TooManyPoints", adcount.SeriesQuery{From: now.Add(-1501 * 24 * time.Hour), To: now, Interval: adcount.Day}, 0, "at most 1500 points"},
		{"AtTheCap", adcount.SeriesQuery{From: now.Add(-1499 * 24 * time.Hour), To: now, Interval: adcount.Day}, 1500, ""},
		{"Backwards", adcount.SeriesQuery{From: now, To: now.Add(-time.Hour), Interval: adcount.Hour}, 0, "before to"},
		{"Empty", adcount.SeriesQuery{From: now, To: now, Interval: adcount.Hour}, 0, "before to"},
		{"AdMinutesForAnHour", adcount.SeriesQuery{From: now.Add(-59 * time.Minute), To: now, Interval: adcount.Minute, AdID: "a"}, 59, ""},
		{"AdMinuteTooOld", adcount.SeriesQuery{From: now.Add(-60 * time.Minute), To: now, Interval: adcount.Minute, AdID: "a"}, 0, "one ad are kept for 1 hour"},
		{"AdHourTooOld", adcount.SeriesQuery{From: now.Add(-24 * time.Hour), To: now, Interval: adcount.Hour, AdID: "a"}, 0, "one ad are kept for 24 hours"},
		{"AdDayTooOld", adcount.SeriesQuery{From: now.Add(-90 * 24 * time.Hour), To: now, Interval: adcount.Day, AdID: "a"}, 0, "kept for 90 days"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.q.Check(now)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, adcount.ErrInvalid)
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Len(t, adcount.NewSeries(tc.q).Points, tc.points)
		})
	}
}

func TestIntervals(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 6, 10, 12, 30, 45, 0, time.FixedZone("X", -7*3600))
	for _, i := range []adcount.Interval{adcount.Minute, adcount.Hour, adcount.Day} {
		n := i.Index(at)
		start := i.Start(n)
		assert.Equal(t, time.UTC, start.Location())
		assert.False(t, start.After(at), i)
		assert.True(t, at.Before(start.Add(i.Duration())), i)
		assert.Equal(t, n-1, i.Index(start.Add(-time.Nanosecond)), i)
		got, err := adcount.ParseInterval(string(i))
		require.NoError(t, err)
		assert.Equal(t, i, got)
	}
	assert.Equal(t, adcount.Bucket(at), adcount.Minute.Index(at), "minute points are the stats' buckets")
	assert.Equal(t, int64(-1), adcount.Day.Index(time.Unix(-1, 0)), "before the epoch rounds down")
	_, err := adcount.ParseInterval("week")
	assert.ErrorIs(t, err, adcount.ErrInvalid)

	q := adcount.SeriesQuery{From: time.Unix(0, 0), To: time.Unix(3*3600, 0), Interval: adcount.Hour}
	s := adcount.NewSeries(q)
	s.Add(adcount.Hour, 1, 5)
	s.Add(adcount.Hour, 3, 7)  // outside: dropped
	s.Add(adcount.Hour, -1, 7) // outside: dropped
	assert.Equal(t, []int64{0, 5, 0}, []int64{s.Points[0].Count, s.Points[1].Count, s.Points[2].Count})
}

func TestDefaultFromIsAlwaysKept(t *testing.T) {
	t.Parallel()
	for _, now := range []time.Time{
		time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC),           // on the hour
		time.Date(2026, 6, 10, 12, 30, 15, 500, time.UTC),       // mid-hour
		time.Date(2026, 6, 10, 23, 59, 59, 999999999, time.UTC), // a day's last instant
	} {
		for _, i := range []adcount.Interval{adcount.Minute, adcount.Hour, adcount.Day} {
			for _, perAd := range []bool{false, true} {
				ad := ""
				if perAd {
					ad = "a"
				}
				q := adcount.SeriesQuery{From: adcount.DefaultFrom(now, now, i, perAd), To: now, Interval: i, AdID: ad}
				require.NoError(t, q.Check(now), "%v %s ad=%v", now, i, perAd)
				assert.False(t, q.From.Before(now.Add(-adcount.DefaultSeriesSpan)), "never more than the default span")
			}
		}
	}
	now := time.Date(2026, 6, 10, 12, 30, 0, 0, time.UTC)
	assert.Equal(t, now.Add(-24*time.Hour), adcount.DefaultFrom(now, now, adcount.Hour, false), "24 hours when they are kept")
	assert.Equal(t, time.Date(2026, 6, 9, 13, 0, 0, 0, time.UTC), adcount.DefaultFrom(now, now, adcount.Hour, true), "one ad's oldest kept hour")
	assert.Equal(t, time.Date(2026, 6, 10, 11, 31, 0, 0, time.UTC), adcount.DefaultFrom(now, now, adcount.Minute, true), "one ad's oldest kept minute")
}
