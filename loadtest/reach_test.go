package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/loadtest/internal/reachcheck"
)

func TestDistinctUsers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		users        []uint64 // user<<1, |1 when certain
		certain, all int64
	}{
		// No key added to the campaign.
		{"None", nil, 0, 0},
		// Two keys of one user, both counted: one user.
		{"OneUserTwoAds", []uint64{3<<1 | 1, 3<<1 | 1}, 1, 1},
		// A user with a counted key and an uncertain one is certain.
		{"CertainWins", []uint64{3 << 1, 3<<1 | 1}, 1, 1},
		// A user with only uncertain keys may or may not be reached.
		{"OnlyUncertain", []uint64{5 << 1, 5 << 1, 2<<1 | 1}, 1, 2},
		// Unsorted, as keys come in key order, not user order.
		{"Unsorted", []uint64{9<<1 | 1, 1<<1 | 1, 9 << 1, 4 << 1, 1 << 1}, 2, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			certain, all := distinctUsers(tc.users)
			assert.Equal(t, [2]int64{tc.certain, tc.all}, [2]int64{certain, all})
		})
	}
}

// reachStats is a campaign's stats with count impressions and users
// unique users in every window, and the frequency that makes.
func reachStats(count, filtered, users int64) Stats {
	f := reachcheck.Frequency(count, users)
	return Stats{LastHour: count, LastDay: count, Total: count, Filtered: filtered,
		UniqueUsers: &Reach{LastHour: users, LastDay: users, Total: users}, Frequency: &Frequency{LastHour: f, LastDay: f, Total: f}}
}

func TestVerifyReach(t *testing.T) {
	t.Parallel()
	// Campaign 0's keys are the even ones; with 3 users and 4 ads, some
	// of them share a user. a and b are two keys of one user, c a key of
	// another.
	p := mustPlan(t, PlanConfig{Campaigns: 2, Users: 3, Ads: 4, Seed: 3})
	userOf := func(key uint64) uint64 { u, _, _ := p.slot(key); return u }
	var a, b, c uint64
	found := false
	for k := uint64(0); k < 24 && !found; k += 2 {
		for m := k + 2; m < 24 && !found; m += 2 {
			if userOf(k) == userOf(m) {
				a, b, found = k, m, true
			}
		}
	}
	require.True(t, found, "two keys of campaign 0 share a user")
	for c = 0; userOf(c) == userOf(a); c += 2 {
	}
	cases := []struct {
		name     string
		attempts []sent
		// stats are campaign 0's; campaign 1 reached nobody.
		stats    Stats
		elapsed  time.Duration
		problems []string // substrings, one per expected problem
	}{
		// The control: two ads of one user and one of another are three
		// impressions by two users.
		{"TwoAdsOfOneUserAreOneUser", []sent{at(a, 0, 1, counted), at(b, 0, 1, counted), at(c, 0, 1, counted)}, reachStats(3, 0, 2), time.Minute, nil},
		// A service that counts each key as a user.
		{"KeysCountedAsUsers", []sent{at(a, 0, 1, counted), at(b, 0, 1, counted), at(c, 0, 1, counted)}, reachStats(3, 0, 3), time.Minute,
			[]string{"unique_users total is 3, but the replies counted impressions of exactly 2 distinct users", "last_day is 3", "last_hour is 3"}},
		// A user lost.
		{"UserLost", []sent{at(a, 0, 1, counted), at(c, 0, 1, counted)}, reachStats(2, 0, 1), time.Minute,
			[]string{"total is 1", "last_day is 1", "last_hour is 1"}},
		// A repeat is a duplicate, and adds no user.
		{"DuplicateAddsNoUser", []sent{at(a, 0, 1, counted), at(a, 2, 3, duplicate)}, reachStats(1, 0, 1), time.Minute, nil},
		// A refused impression adds no user.
		{"RejectedAddsNoUser", []sent{at(a, 0, 1, counted), at(c, 0, 1, rejected)}, reachStats(1, 0, 1), time.Minute, nil},
		// A bot's impression is filtered, and adds no user...
		{"FilteredAddsNoUser", []sent{at(a, 0, 1, counted), botAt(c, 0, 1, filtered)}, reachStats(1, 1, 1), time.Minute, nil},
		// ...so a service whose reach counts it is wrong, even within
		// the count.
		{"FilteredUserCounted", []sent{at(a, 0, 1, counted), at(b, 0, 1, counted), botAt(c, 0, 1, filtered)}, reachStats(2, 1, 2), time.Minute,
			[]string{"total is 2, but the replies counted impressions of exactly 1 distinct users", "last_day", "last_hour"}},
		// A key with no definite answer may or may not have reached its
		// user: either reach passes...
		{"UncertainUserReached", []sent{at(a, 0, 1, counted), at(c, 0, 9, uncertain)}, reachStats(2, 0, 2), time.Minute, nil},
		{"UncertainUserNotReached", []sent{at(a, 0, 1, counted), at(c, 0, 9, uncertain)}, reachStats(1, 0, 1), time.Minute, nil},
		// ...but a user with a counted key is reached whatever else.
		{"UncertainKeyOfAReachedUser", []sent{at(a, 0, 1, counted), at(b, 0, 9, uncertain)}, reachStats(2, 0, 1), time.Minute, nil},
		// A frequency a cent off its count over its users.
		{"FrequencyOff", []sent{at(a, 0, 1, counted), at(b, 0, 1, counted), at(c, 0, 1, counted)},
			func() Stats { s := reachStats(3, 0, 2); s.Frequency.LastDay = 1.49; return s }(), time.Minute, []string{"frequency last_day is 1.49, but last_day's 3 impressions over its 2 unique users make 1.50"}},
		// After an hour the last hour's users are not the run's, but are
		// still bounded by its count and the day's users.
		{"LastHourAfterAnHour", []sent{at(a, 0, 1, counted)},
			func() Stats {
				s := reachStats(1, 0, 1)
				s.LastHour, s.UniqueUsers.LastHour, s.Frequency.LastHour = 0, 0, 0
				return s
			}(), 2 * time.Hour, nil},
		{"MoreUsersThanImpressions", []sent{at(a, 0, 1, counted)},
			func() Stats { s := reachStats(1, 0, 1); s.LastHour, s.Frequency.LastHour = 0, 0; return s }(), 2 * time.Hour,
			[]string{"unique_users last_hour is 1, but last_hour counted 0 impressions"}},
		{"NarrowerWindowHasMoreUsers", []sent{at(a, 0, 1, counted), at(b, 0, 1, counted), at(c, 0, 1, counted)},
			func() Stats {
				s := reachStats(3, 0, 2)
				s.UniqueUsers.LastHour, s.Frequency.LastHour = 3, 1
				return s
			}(), 2 * time.Hour, []string{"a window has more users than a wider one"}},
		// A service before reach says nothing of it: the flag is named.
		{"NoReach", []sent{at(a, 0, 1, counted)}, Stats{LastHour: 1, LastDay: 1, Total: 1}, time.Minute, []string{"-verify-reach=false"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(p, modeSingle, time.Now())
			v := verifySent(l, tc.attempts, []Stats{tc.stats, reachStats(0, 0, 0)}, tc.elapsed)
			require.Empty(t, v.Problems, "the counts are right in every case")
			l.verifyReach(&v, tc.elapsed, reachcheck.DefaultTolerance)
			require.Len(t, v.Problems, len(tc.problems), "problems: %q", v.Problems)
			for i, want := range tc.problems {
				assert.Contains(t, v.Problems[i], want)
			}
			var out bytes.Buffer
			_, err := v.WriteTo(&out)
			require.NoError(t, err)
			assert.Contains(t, out.String(), "allowed", "the reach table")
			if v.OK() {
				assert.Contains(t, out.String(), "unique users and frequency match")
			}
		})
	}
}
