package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/storetest"
)

// users returns the unique users of a campaign's stats.
func users(t *testing.T, s adcount.Store, id string) adcount.UniqueUsers {
	t.Helper()
	return fullStats(t, s, id).UniqueUsers
}

// TestOnlyCountedImpressionsAddReach sends, through the single path and
// the batch path, each kind of impression that does not count after one
// that did, and checks that none of them adds a user: the counting rule
// of adcount.Reach.
func TestOnlyCountedImpressionsAddReach(t *testing.T) {
	t.Parallel()
	imp := func(user, ad string, filtered bool) adcount.Impression {
		return adcount.Impression{CampaignID: "c", UserID: user, AdID: ad, Filtered: filtered}
	}
	cases := []struct {
		name string
		imp  adcount.Impression
		// before changes the campaign before imp is sent.
		before *adcount.CampaignPatch
		want   adcount.Outcome
		err    error
	}{
		// The same key again: a duplicate.
		{"Duplicate", imp("u0", "a", false), nil, adcount.Duplicate, nil},
		// A new user, filtered as invalid traffic.
		{"Filtered", imp("u1", "a", true), nil, adcount.Filtered, nil},
		// A new user of a paused campaign: refused.
		{"Paused", imp("u1", "a", false), &adcount.CampaignPatch{Paused: ptr(true)}, 0, adcount.ErrPaused},
		// A new user without an ad: invalid, refused.
		{"Invalid", imp("u1", "", false), nil, 0, adcount.ErrInvalid},
	}
	for _, batch := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprint(tc.name, "/batch=", batch), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				clock := storetest.NewClock(storetest.Epoch)
				s := newStore(t, clock.Now, time.Hour)
				createCampaign(t, s, "c", storetest.Epoch)
				recordAll(t, s, []adcount.Impression{imp("u0", "a", false)})
				if tc.before != nil {
					_, err := s.UpdateCampaign(ctx, "c", *tc.before)
					require.NoError(t, err)
				}
				var (
					got adcount.Outcome
					err error
				)
				if batch {
					res := recordAll(t, s, []adcount.Impression{tc.imp})
					got, err = res[0].Outcome, res[0].Err
				} else {
					got, err = s.RecordImpression(ctx, tc.imp)
				}
				if tc.err != nil {
					require.ErrorIs(t, err, tc.err)
				} else {
					require.NoError(t, err)
					require.Equal(t, tc.want, got)
				}
				assert.Equal(t, adcount.UniqueUsers{LastHour: 1, LastDay: 1, Total: 1}, users(t, s, "c"), "u0 alone")
			})
		}
	}
}

// TestReachWindows moves the clock through the reach buckets and checks
// each window against what adcount.Reach says it covers: the ten-minute
// buckets of the last hour, the hours of the last day, and every user in
// the total, with repeat users counted once. A ring slot that a newer
// bucket reuses never keeps the users of the older one.
func TestReachWindows(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Minute)
	createCampaign(t, s, "c", storetest.Epoch)
	send := func(users ...string) {
		t.Helper()
		var imps []adcount.Impression
		for _, u := range users {
			imps = append(imps, adcount.Impression{CampaignID: "c", UserID: u, AdID: "a"})
		}
		recordAll(t, s, imps)
	}
	uu := func(hour, day, total int64) adcount.UniqueUsers {
		return adcount.UniqueUsers{LastHour: hour, LastDay: day, Total: total}
	}

	send("a", "b")                 // 10:00
	clock.Advance(9 * time.Minute) // 10:09, the same bucket
	send("a", "c")                 // a again: one user
	clock.Advance(2 * time.Minute) // 10:11
	send("a", "d")                 // a in a second bucket of the hour
	assert.Equal(t, uu(4, 4, 4), users(t, s, "c"))
	clock.Set(storetest.Epoch.Add(59 * time.Minute)) // the 10:00 bucket is still in the hour
	assert.Equal(t, uu(4, 4, 4), users(t, s, "c"))
	clock.Set(storetest.Epoch.Add(60 * time.Minute)) // 11:00: 10:00 leaves the hour, 10:10 stays
	assert.Equal(t, uu(2, 4, 4), users(t, s, "c"), "a and d, at 10:11")
	send("e") // 11:00 reuses the slot of 10:00
	assert.Equal(t, uu(3, 5, 5), users(t, s, "c"), "a, d and e, never b or c from the slot before")
	clock.Set(storetest.Epoch.Add(70 * time.Minute)) // 10:10 leaves the hour
	assert.Equal(t, uu(1, 5, 5), users(t, s, "c"), "e")

	// The day: 10:00 is in it until the 24th hour after it begins.
	clock.Set(storetest.Epoch.Add(23*time.Hour + 59*time.Minute))
	assert.Equal(t, uu(0, 5, 5), users(t, s, "c"))
	clock.Set(storetest.Epoch.Add(24 * time.Hour)) // the 10:00 hour leaves
	assert.Equal(t, uu(0, 1, 5), users(t, s, "c"), "e, at 11:00")
	send("b") // 10:00 the next day reuses the hour slot of 10:00
	assert.Equal(t, uu(1, 2, 5), users(t, s, "c"), "b and e; b counts once in the total")

	// A jump past every ring: only what comes after it is in the windows.
	clock.Advance(30 * 24 * time.Hour)
	send("f")
	assert.Equal(t, uu(1, 1, 6), users(t, s, "c"))
}

// TestReachIsExactUpToExactReach sends ExactReach users, each several
// times and in several buckets, and more to a second campaign: every
// window is exact, as the contract promises below ExactReach, and above
// it within the bound (checked loosely here; storetest checks it tightly).
func TestReachIsExactUpToExactReach(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch)
	s := newStore(t, clock.Now, time.Minute)
	createCampaign(t, s, "exact", storetest.Epoch)
	createCampaign(t, s, "large", storetest.Epoch)
	const large = 20_000
	var imps []adcount.Impression
	flush := func() {
		recordAll(t, s, imps)
		imps = imps[:0]
	}
	for step := range 3 {
		for u := range adcount.ExactReach {
			imps = append(imps, adcount.Impression{CampaignID: "exact", UserID: fmt.Sprint("u", u), AdID: fmt.Sprint("ad-", step)})
			if len(imps) == adcount.MaxBatch {
				flush()
			}
		}
		clock.Advance(25 * time.Minute)
	}
	for u := range large {
		imps = append(imps, adcount.Impression{CampaignID: "large", UserID: fmt.Sprint("u", u), AdID: "a"})
		if len(imps) == adcount.MaxBatch {
			flush()
		}
	}
	flush()
	assert.Equal(t, adcount.UniqueUsers{LastHour: adcount.ExactReach, LastDay: adcount.ExactReach, Total: adcount.ExactReach},
		users(t, s, "exact"), "three buckets of the same users merge exactly")
	st := fullStats(t, s, "large")
	assert.InDelta(t, large, st.UniqueUsers.Total, 0.05*large)
	assert.LessOrEqual(t, st.UniqueUsers.Total, st.Total, "bounded by the count")
	assert.Equal(t, st.UniqueUsers.Total, st.UniqueUsers.LastHour, "one bucket: every window merges the same users")
	assert.Equal(t, st.UniqueUsers.Total, st.UniqueUsers.LastDay)
}

// TestSeriesCarryReachWhereKept reads every interval of a campaign with
// users on each of ten days, and an ad's series: unique users on the
// campaign's hour points of the last 24 hours and day points of the last
// 7 days, exactly the points adcount.ReachKept names, and on no other.
func TestSeriesCarryReachWhereKept(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := storetest.Epoch.Truncate(24 * time.Hour)
	clock := storetest.NewClock(start)
	s := newStore(t, clock.Now, time.Minute)
	createCampaign(t, s, "c", storetest.Epoch)
	// Day d, every 6 hours: d+1 users, one of them the same every time,
	// and a repeat of the first.
	for d := range 10 {
		for h := 0; h < 24; h += 6 {
			clock.Set(start.Add(time.Duration(d*24+h) * time.Hour))
			imps := []adcount.Impression{{CampaignID: "c", UserID: "always", AdID: "a"}}
			for u := range d {
				imps = append(imps, adcount.Impression{CampaignID: "c", UserID: fmt.Sprint(d, "-", h, "-", u), AdID: "b"})
			}
			recordAll(t, s, imps)
		}
	}
	now := clock.Now() // 18:00 on day 9
	for _, tc := range []struct {
		iv adcount.Interval
		ad string
		// users returns what point idx holds; ok false for a point that
		// must carry none.
		users func(idx int64) (int64, bool)
	}{
		{adcount.Minute, "", func(int64) (int64, bool) { return 0, false }},
		{adcount.Hour, "", func(idx int64) (int64, bool) {
			if !adcount.ReachKept(adcount.Hour, idx, now) {
				return 0, false
			}
			if h := adcount.Hour.Start(idx).Hour(); h%6 == 0 {
				return int64(1 + adcount.Day.Index(adcount.Hour.Start(idx)) - adcount.Day.Index(start)), true
			}
			return 0, true
		}},
		{adcount.Day, "", func(idx int64) (int64, bool) {
			if !adcount.ReachKept(adcount.Day, idx, now) {
				return 0, false
			}
			d := idx - adcount.Day.Index(start)
			return 1 + 4*d, true
		}},
		{adcount.Hour, "b", func(int64) (int64, bool) { return 0, false }},
		{adcount.Day, "b", func(int64) (int64, bool) { return 0, false }},
	} {
		keep := adcount.Retention(tc.iv, tc.ad != "")
		if keep == 0 || keep > adcount.MaxSeriesPoints {
			keep = adcount.MaxSeriesPoints
		}
		to := tc.iv.Start(tc.iv.Index(now) + 1)
		q := adcount.SeriesQuery{From: to.Add(-time.Duration(keep) * tc.iv.Duration()), To: to, Interval: tc.iv, AdID: tc.ad}
		series, err := s.Series(ctx, "c", q)
		require.NoError(t, err)
		kept := 0
		for _, p := range series.Points {
			want, ok := tc.users(tc.iv.Index(p.Start))
			require.Equal(t, ok, p.HasUniqueUsers, "%s %q point %s", tc.iv, tc.ad, p.Start)
			require.Equal(t, want, p.UniqueUsers, "%s %q point %s", tc.iv, tc.ad, p.Start)
			if ok {
				kept++
			}
		}
		switch {
		case tc.ad != "" || tc.iv == adcount.Minute:
			assert.Zero(t, kept)
		case tc.iv == adcount.Hour:
			assert.Equal(t, adcount.ReachHourPoints, kept)
		default:
			assert.Equal(t, adcount.ReachDayPoints, kept)
		}
	}
}

// TestReachSurvivesARestart records users across the windows, some of them
// past ExactReach, and checks that every reach figure comes back exactly
// from the log alone, from a snapshot alone, and from a snapshot and the
// log after it.
func TestReachSurvivesARestart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// snapshotAt is the step before which a snapshot is taken, -1
		// for none.
		snapshotAt int
		crash      bool // without Close's final snapshot
	}{
		// Every user from the log's records.
		{"LogOnly", -1, true},
		// Sets from a snapshot, the rest from the log after it.
		{"SnapshotThenLog", 30, true},
		// Every set from the final snapshot.
		{"SnapshotOnly", -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clock := storetest.NewClock(storetest.Epoch)
			s, err := openStore(t, dir, clock.Now, time.Minute)
			require.NoError(t, err)
			createCampaign(t, s, "small", storetest.Epoch)
			createCampaign(t, s, "large", storetest.Epoch)
			// 60 steps of 17 minutes: the hour, the day and the total all
			// differ; "large" passes ExactReach in every bucket.
			for i := range 60 {
				if i == tc.snapshotAt {
					require.NoError(t, s.Snapshot())
				}
				var imps []adcount.Impression
				for u := range 3 {
					imps = append(imps, adcount.Impression{CampaignID: "small", UserID: fmt.Sprint("u", (i*3+u)%50), AdID: "a", Filtered: u == 2 && i%2 == 0})
				}
				for u := range 900 {
					imps = append(imps, adcount.Impression{CampaignID: "large", UserID: fmt.Sprint("u", i*450+u), AdID: fmt.Sprint("ad-", u%3)})
				}
				if i%2 == 0 {
					recordAll(t, s, imps)
				} else {
					for _, imp := range imps[:3] {
						_, err := s.RecordImpression(context.Background(), imp)
						require.NoError(t, err)
					}
					recordAll(t, s, imps[3:])
				}
				clock.Advance(17 * time.Minute)
			}
			ids := []string{"small", "large"}
			before := readEverything(t, s, clock.Now(), ids, []string{"a"})
			require.Less(t, before.Stats["small"].UniqueUsers.Total, before.Stats["small"].Total, "small repeats users")
			require.Greater(t, before.Stats["large"].UniqueUsers.LastHour, int64(adcount.ExactReach))
			if tc.crash {
				require.NoError(t, s.Crash())
			} else {
				require.NoError(t, s.Close())
			}
			s, err = openStore(t, dir, clock.Now, time.Minute)
			require.NoError(t, err)
			defer func() { assert.NoError(t, s.Close()) }()
			assert.Equal(t, before, readEverything(t, s, clock.Now(), ids, []string{"a"}))
		})
	}
}
