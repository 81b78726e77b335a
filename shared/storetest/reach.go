package storetest

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

// The reach cases. Up to adcount.ExactReach users a store must be exact;
// above it, each case's population is fixed, so each estimate is one
// fixed draw: it is held to reachTolerance, three standard errors of the
// sketch, while package reach checks the 2% standard error itself over
// many populations.

// reachTolerance is the relative error a single large estimate may have:
// 3 × 1.04/√4096.
const reachTolerance = 3 * 1.04 / 64

// seen is one counted impression of the reach model.
type seen struct {
	user string
	at   time.Time
}

// reachModel is what a store's reach must be: the distinct users among
// the counted impressions whose moments a window keeps.
type reachModel []seen

func (m reachModel) users(keep func(time.Time) bool) int64 {
	distinct := map[string]bool{}
	for _, s := range m {
		if keep(s.at) {
			distinct[s.user] = true
		}
	}
	return int64(len(distinct))
}

// windows returns the unique users of each stats window at now.
func (m reachModel) windows(now time.Time) adcount.UniqueUsers {
	hour, day := adcount.ReachLastHour(now), adcount.ReachLastDay(now)
	return adcount.UniqueUsers{
		LastHour: m.users(func(at time.Time) bool { return hour.Contains(adcount.ReachBucket(at)) }),
		LastDay:  m.users(func(at time.Time) bool { return day.Contains(adcount.Hour.Index(at)) }),
		Total:    m.users(func(time.Time) bool { return true }),
	}
}

// point returns the unique users of point idx of interval i.
func (m reachModel) point(i adcount.Interval, idx int64) int64 {
	return m.users(func(at time.Time) bool { return i.Index(at) == idx })
}

// users records one impression of ad for each user at the clock's time,
// in batches, requires each to count, and adds them to m.
func (f *fixture) users(t *testing.T, campaign, ad string, users []string, m *reachModel) {
	t.Helper()
	for len(users) > 0 {
		n := min(len(users), adcount.MaxBatch)
		imps := make([]adcount.Impression, n)
		for i, u := range users[:n] {
			imps[i] = adcount.Impression{CampaignID: campaign, UserID: u, AdID: ad}
		}
		for i, r := range f.batch(t, imps) {
			require.NoError(t, r.Err, i)
			require.Equal(t, adcount.Counted, r.Outcome, "impression %d of %s", i, users[i])
		}
		for _, u := range users[:n] {
			*m = append(*m, seen{user: u, at: f.now()})
		}
		users = users[n:]
	}
}

// userIDs returns the IDs of users from to to-1.
func userIDs(from, to int) []string {
	ids := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("reach-user-%d", i))
	}
	return ids
}

func testReachIsExactForSmallPopulations(t *testing.T, f *fixture) {
	cases := []struct {
		name  string
		users int
		// ads is how many impressions each user has, on distinct ads,
		// so that frequency is more than 1.
		ads int
	}{
		// One user seen once.
		{name: "One", users: 1, ads: 1},
		// A handful, each seen three times.
		{name: "Few", users: 37, ads: 3},
		// The top of the exact range, once each: the stores that
		// aggregate behind a protocol server take a while per impression.
		{name: "ExactLimit", users: adcount.ExactReach, ads: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			camp := f.campaign(t, Epoch)
			var m reachModel
			for ad := range c.ads {
				f.users(t, camp.ID, fmt.Sprintf("ad-%d", ad), userIDs(0, c.users), &m)
			}
			st := f.allStats(t, camp.ID)
			n := int64(c.users)
			assert.Equal(t, adcount.UniqueUsers{LastHour: n, LastDay: n, Total: n}, st.UniqueUsers)
			want := float64(c.ads)
			assert.Equal(t, adcount.Frequency{LastHour: want, LastDay: want, Total: want}, st.Frequency())
		})
	}
}

func testReachCountsOnlyCountedImpressions(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	var m reachModel
	f.users(t, c.ID, "a", []string{"alice"}, &m)
	res := f.batch(t, []adcount.Impression{
		// A repeat inside the dedup window.
		{CampaignID: c.ID, UserID: "alice", AdID: "a"},
		// Invalid traffic.
		{CampaignID: c.ID, UserID: "crawler", AdID: "a", Filtered: true},
		// Refused: no user.
		{CampaignID: c.ID, UserID: "", AdID: "a"},
	})
	assert.Equal(t, adcount.Duplicate, res[0].Outcome)
	assert.Equal(t, adcount.Filtered, res[1].Outcome)
	require.ErrorIs(t, res[2].Err, adcount.ErrInvalid)
	_, err := f.store.RecordImpression(context.Background(), adcount.Impression{CampaignID: c.ID, UserID: "bob", AdID: "a", Filtered: true})
	require.NoError(t, err)

	st := f.allStats(t, c.ID)
	assert.Equal(t, adcount.UniqueUsers{LastHour: 1, LastDay: 1, Total: 1}, st.UniqueUsers, "only alice's counted impression adds reach")
	assert.Equal(t, int64(2), st.Filtered)

	// The crawler's user, once counted, is a user like any other.
	f.users(t, c.ID, "b", []string{"crawler"}, &m)
	st = f.allStats(t, c.ID)
	assert.Equal(t, adcount.UniqueUsers{LastHour: 2, LastDay: 2, Total: 2}, st.UniqueUsers)
}

func testReachWindowsSlide(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	var m reachModel
	// Overlapping groups of users at moments across ten-minute, hour and
	// day boundaries; the reach of every window is checked against the
	// model after each group. Each group brings 30 users, 12 of them
	// from the group before.
	steps := []time.Duration{
		0, 5 * time.Minute, 4 * time.Minute, time.Minute, 15 * time.Minute,
		24 * time.Minute, 6 * time.Minute, 6 * time.Minute, 9*time.Minute + 59*time.Second,
		time.Second, 55 * time.Minute, 8 * time.Hour, 14*time.Hour + 50*time.Minute,
		15 * time.Minute, 23 * time.Hour, 3 * 24 * time.Hour,
	}
	for i, step := range steps {
		f.clock.Advance(step)
		ad := fmt.Sprintf("ad-%d", i%3)
		f.users(t, c.ID, ad, userIDs(18*i, 18*i+30), &m)
		now := f.now()
		st := f.allStats(t, c.ID)
		assert.Equal(t, m.windows(now), st.UniqueUsers, "step %d at %v", i, now)
	}
	// And as the clock moves on with no traffic, users leave the windows.
	for _, step := range []time.Duration{10 * time.Minute, 50 * time.Minute, 2 * time.Hour, 24 * time.Hour} {
		f.clock.Advance(step)
		now := f.now()
		assert.Equal(t, m.windows(now), f.allStats(t, c.ID).UniqueUsers, "no traffic, at %v", now)
	}
}

func testSeriesCarryReach(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	var m reachModel
	// Groups of users every five hours for eight and a half days, so
	// that every day point merges several; then every 47 minutes for the
	// last 30 hours, so that hour points merge several too. Each group
	// overlaps the one before.
	for i := 0; i < 80; i++ {
		// An ad of its own, so that the users shared with the group
		// before count again inside the dedup window.
		f.users(t, c.ID, fmt.Sprintf("ad-%d", i), userIDs(3*i, 3*i+7), &m)
		if i < 41 {
			f.clock.Advance(5 * time.Hour)
		} else {
			f.clock.Advance(47 * time.Minute)
		}
	}
	now := f.now()
	for _, q := range []adcount.SeriesQuery{
		lastN(now, adcount.Hour, 30, ""),
		lastN(now, adcount.Day, 10, ""),
	} {
		s := f.series(t, c.ID, q)
		first, _ := q.Range()
		for k, p := range s.Points {
			idx := first + int64(k)
			if !adcount.ReachKept(q.Interval, idx, now) {
				assert.False(t, p.HasUniqueUsers, "%s point %v is older than reach is kept", q.Interval, p.Start)
				assert.Zero(t, p.UniqueUsers)
				continue
			}
			assert.True(t, p.HasUniqueUsers, "%s point %v", q.Interval, p.Start)
			assert.Equal(t, m.point(q.Interval, idx), p.UniqueUsers, "%s point %v", q.Interval, p.Start)
			assert.LessOrEqual(t, p.UniqueUsers, p.Count)
		}
	}
	// The current hour's point and the last day's window merge the same
	// buckets as the stats do.
	st := f.allStats(t, c.ID)
	day := f.series(t, c.ID, lastN(now, adcount.Hour, adcount.ReachDayHours, ""))
	assert.Equal(t, m.windows(now).LastDay, st.UniqueUsers.LastDay)
	assert.Equal(t, m.point(adcount.Hour, adcount.Hour.Index(now)), day.Points[len(day.Points)-1].UniqueUsers)
	// Minute points and one ad's points never carry reach.
	for _, q := range []adcount.SeriesQuery{
		lastN(now, adcount.Minute, 90, ""),
		lastN(now, adcount.Hour, 5, "ad-0"),
		lastN(now, adcount.Day, 3, "ad-0"),
	} {
		for _, p := range f.series(t, c.ID, q).Points {
			assert.False(t, p.HasUniqueUsers, "%+v at %v", q, p.Start)
		}
	}
}

func testReachLargePopulations(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	var m reachModel
	// 1,100 users in the first hour; in the second, 600 of them again
	// and 500 new ones: every window merges sketches past the exact
	// range. (Small, since the stores behind a protocol server take a
	// while per impression; package reach checks the error at scale.)
	f.users(t, c.ID, "a", userIDs(0, 1100), &m)
	f.clock.Advance(time.Hour)
	f.users(t, c.ID, "b", userIDs(500, 1600), &m)
	now := f.now()
	st := f.allStats(t, c.ID)
	want := m.windows(now)
	require.Equal(t, adcount.UniqueUsers{LastHour: 1100, LastDay: 1600, Total: 1600}, want)
	within := func(want, got int64, what string) {
		t.Helper()
		assert.InDelta(t, want, got, reachTolerance*float64(want), "%s: %d users, want %d", what, got, want)
	}
	within(want.LastHour, st.UniqueUsers.LastHour, "last hour")
	within(want.LastDay, st.UniqueUsers.LastDay, "last day")
	within(want.Total, st.UniqueUsers.Total, "total")
	assert.Equal(t, st.UniqueUsers, st.UniqueUsers.Bound(st), "a store answers within Bound")

	hours := f.series(t, c.ID, lastN(now, adcount.Hour, 2, ""))
	within(1100, hours.Points[0].UniqueUsers, "first hour")
	within(1100, hours.Points[1].UniqueUsers, "second hour")
	days := f.series(t, c.ID, lastN(now, adcount.Day, 1, ""))
	within(1600, days.Points[0].UniqueUsers, "the day")
	assert.Equal(t, st.Total, days.Points[0].Count)
	assert.InDelta(t, float64(st.Total)/float64(st.UniqueUsers.Total), st.Frequency().Total, 0.005)
	assert.False(t, math.IsNaN(st.Frequency().LastHour))
}

func testReopenKeepsReach(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	var m reachModel
	f.users(t, c.ID, "a", userIDs(0, 40), &m)
	f.clock.Advance(25 * time.Minute)
	// Other ads: users 30 to 39 on "a" again would be duplicates within
	// the TTL. Two of them, so that the count is about twice the users
	// and Bound, which caps users at the count, never clamps the
	// estimate: the check below compares estimates.
	f.users(t, c.ID, "c", userIDs(30, 1500), &m)
	f.users(t, c.ID, "d", userIDs(30, 1500), &m)
	qs := []adcount.SeriesQuery{lastN(f.now(), adcount.Hour, 3, ""), lastN(f.now(), adcount.Day, 2, "")}
	before := f.allStats(t, c.ID)
	var points [][]adcount.Point
	for _, q := range qs {
		points = append(points, f.series(t, c.ID, q).Points)
	}

	f.store = f.opts.reopen(t, f.store)

	assert.Equal(t, before, f.allStats(t, c.ID), "reach survives a restart exactly")
	for i, q := range qs {
		assert.Equal(t, points[i], f.series(t, c.ID, q).Points, "series %+v", q)
	}
	// The same users on another ad count again, and add no reach.
	small := userIDs(0, 40)
	f.users(t, c.ID, "b", small, &m)
	after := f.allStats(t, c.ID)
	assert.Equal(t, before.Total+int64(len(small)), after.Total)
	assert.Equal(t, before.UniqueUsers.Total, after.UniqueUsers.Total)
}
