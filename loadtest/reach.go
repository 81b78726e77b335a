package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/adcount/impression-counter/loadtest/internal/reachcheck"
)

// The spans within which a run's impressions all fall in a reach window:
// last_hour merges the ten-minute buckets ending with the current one,
// so it covers the last 50 to 60 minutes, and last_day the hours ending
// with the current one, 23 to 24 hours. Each has a margin for the time
// between the service's read and the harness's clock.
const (
	reachHourSpan = 45 * time.Minute
	reachDaySpan  = 23 * time.Hour
)

// Reach is the unique_users of a stats answer: the distinct users whose
// impressions counted in each window.
type Reach struct {
	LastHour int64 `json:"last_hour"`
	LastDay  int64 `json:"last_day"`
	Total    int64 `json:"total"`
}

// Frequency is the frequency of a stats answer: counted impressions per
// unique user in each window, to two decimals.
type Frequency struct {
	LastHour float64 `json:"last_hour"`
	LastDay  float64 `json:"last_day"`
	Total    float64 `json:"total"`
}

// reachSummary is what the reach check found for one campaign, for the
// verdict's table.
type reachSummary struct {
	// Users are the distinct users with a key the replies certainly
	// counted; Unsure those with only keys that may or may not have
	// counted.
	Users, Unsure int64
	// Least and Most bound the unique users the service may report for a
	// window holding the whole run (see reachBounds).
	Least, Most int64
}

// distinctUsers counts the distinct users in users, entries as
// campaignCheck.users holds them, which it sorts: all of them, and those
// with a key that certainly counted.
func distinctUsers(users []uint64) (certain, all int64) {
	slices.Sort(users)
	for i := 0; i < len(users); {
		j, sure := i, false
		for ; j < len(users) && users[j]>>1 == users[i]>>1; j++ {
			sure = sure || users[j]&1 == 1
		}
		all++
		if sure {
			certain++
		}
		i = j
	}
	return certain, all
}

// verifyReach checks each campaign's unique users and frequency, in v's
// stats, against the users of the keys the replies counted (after verify
// has judged every key):
//   - the total's unique users are the distinct users with a key the
//     replies counted, exactly while they are at most reachcheck.Exact, and
//     within tol above (reachBounds); a key with no definite answer
//     widens the range, as it does the total's;
//   - last_day's and last_hour's are the same while the run is shorter
//     than those windows cover for certain (reachDaySpan, reachHourSpan);
//   - no window has more unique users than counted impressions, nor more
//     than a wider window;
//   - each window's frequency is its count over its unique users,
//     rounded to two decimals, and 0 without users.
//
// elapsed is as in verify.
func (l *ledger) verifyReach(v *Verdict, elapsed time.Duration, tol float64) {
	for c := range v.Campaigns {
		cc := &v.Campaigns[c]
		problem := func(format string, args ...any) {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: ", c)+fmt.Sprintf(format, args...))
		}
		certain, all := distinctUsers(cc.users)
		sum := &reachSummary{Users: certain, Unsure: all - certain}
		sum.Least, sum.Most = reachcheck.Bounds(certain, all, tol)
		cc.Reach = sum
		s := cc.Stats
		if s.UniqueUsers == nil || s.Frequency == nil {
			problem("the stats carry no unique_users or frequency (a service without reach needs -verify-reach=false)")
			continue
		}
		u, f := *s.UniqueUsers, *s.Frequency
		windows := []struct {
			name   string
			count  int64
			users  int64
			freq   float64
			within bool // the whole run falls inside the window
		}{
			{"total", s.Total, u.Total, f.Total, true},
			{"last_day", s.LastDay, u.LastDay, f.LastDay, elapsed < reachDaySpan},
			{"last_hour", s.LastHour, u.LastHour, f.LastHour, elapsed < reachHourSpan},
		}
		for _, w := range windows {
			if w.within && (w.users < sum.Least || w.users > sum.Most) {
				problem("unique_users %s is %d, but the replies counted impressions of %s", w.name, w.users, describeReach(certain, all, tol))
			}
			if w.users < 0 || w.users > w.count {
				problem("unique_users %s is %d, but %s counted %d impressions, and each user counts by one of them", w.name, w.users, w.name, w.count)
			}
			if want := reachcheck.Frequency(w.count, w.users); math.Abs(w.freq-want) > 0.001 {
				problem("frequency %s is %v, but %s's %d impressions over its %d unique users make %.2f", w.name, w.freq, w.name, w.count, w.users, want)
			}
		}
		if u.LastHour > u.LastDay || u.LastDay > u.Total {
			problem("unique_users last_hour %d, last_day %d and total %d: a window has more users than a wider one that covers it", u.LastHour, u.LastDay, u.Total)
		}
	}
}

// describeReach says what reach the replies allow, for a problem.
func describeReach(certain, all int64, tol float64) string {
	var b strings.Builder
	if certain == all {
		fmt.Fprintf(&b, "exactly %d distinct users", certain)
	} else {
		fmt.Fprintf(&b, "%d to %d distinct users (%d uncertain)", certain, all, all-certain)
	}
	if least, most := reachcheck.Bounds(certain, all, tol); all > reachcheck.Exact {
		fmt.Fprintf(&b, "; above %d users the service estimates, and %d to %d is within %v%%", reachcheck.Exact, least, most, tol*100)
	}
	return b.String()
}

// writeReach adds the table of the campaigns' reach, if it was checked:
// the users the replies counted, what the stats say, and the frequency.
func (v Verdict) writeReach(b *strings.Builder) {
	if len(v.Campaigns) == 0 || v.Campaigns[0].Reach == nil {
		return
	}
	fmt.Fprintf(b, "  %-9s %8s %9s %15s %10s %10s %10s %10s\n", "campaign", "users", "uncertain", "allowed", "unique", "last_hour", "last_day", "frequency")
	for c, cc := range v.Campaigns {
		r := cc.Reach
		if r == nil {
			continue
		}
		unique, hour, day, freq := "-", "-", "-", "-"
		if u, f := cc.Stats.UniqueUsers, cc.Stats.Frequency; u != nil && f != nil {
			unique, hour, day, freq = fmt.Sprint(u.Total), fmt.Sprint(u.LastHour), fmt.Sprint(u.LastDay), fmt.Sprintf("%.2f", f.Total)
		}
		fmt.Fprintf(b, "  %-9d %8d %9d %15s %10s %10s %10s %10s\n", c, r.Users, r.Unsure, fmt.Sprintf("%d-%d", r.Least, r.Most), unique, hour, day, freq)
	}
}
