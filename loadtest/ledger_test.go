package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// at is an attempt on key (campaign key%2) from start to end, in
// milliseconds since the epoch.
func at(key uint64, start, end int, o outcome) attempt {
	return attempt{index: key*10 + uint64(start), key: key, start: time.Duration(start) * time.Millisecond, end: time.Duration(end) * time.Millisecond, outcome: o}
}

func totals(c0, c1 int64) []Stats {
	return []Stats{{LastHour: c0, LastDay: c0, Total: c0}, {LastHour: c1, LastDay: c1, Total: c1}}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		attempts []attempt
		stats    []Stats
		elapsed  time.Duration
		problems []string // substrings, one per expected problem
		counted  [2]int
		unsure   [2]int
	}{
		// The plain case: a key counted once, its repeat a duplicate, a key
		// in the other campaign counted.
		{"Clean", []attempt{at(0, 0, 1, counted), at(0, 2, 3, duplicate), at(1, 0, 1, counted)}, totals(1, 1), time.Minute, nil, [2]int{1, 1}, [2]int{}},
		// The repeat overtook the first sighting: both in flight, the repeat
		// counted and the first sighting was answered duplicate. A race,
		// not a contradiction.
		{"RaceOvertaken", []attempt{at(0, 0, 10, duplicate), at(0, 1, 5, counted)}, totals(1, 0), time.Minute, nil, [2]int{1, 0}, [2]int{}},
		// Counted twice inside the dedup window; the stats that show it
		// disagree with one distinct key too.
		{"CountedTwice", []attempt{at(0, 0, 1, counted), at(0, 2, 3, counted)}, totals(2, 0), time.Minute, []string{"counted 2 times", "stats total is 2"}, [2]int{1, 0}, [2]int{}},
		// A first sighting answered duplicate with nothing before it.
		{"FirstSightingDuplicate", []attempt{at(0, 0, 1, duplicate)}, totals(1, 0), time.Minute, []string{"no request for it was counted"}, [2]int{1, 0}, [2]int{}},
		// Answered duplicate, and the counted request was only sent after
		// that answer: the duplicate could not have been true.
		{"DuplicateBeforeCounted", []attempt{at(0, 0, 1, duplicate), at(0, 2, 3, counted)}, totals(1, 0), time.Minute, []string{"before request"}, [2]int{1, 0}, [2]int{}},
		// A timed-out request may have counted; alone it widens the range,
		// and either total is accepted.
		{"TimeoutCounted", []attempt{at(0, 0, 5, uncertain)}, totals(1, 0), time.Minute, nil, [2]int{}, [2]int{1, 0}},
		{"TimeoutNotCounted", []attempt{at(0, 0, 5, uncertain)}, totals(0, 0), time.Minute, nil, [2]int{}, [2]int{1, 0}},
		// A timed-out first sighting, then a duplicate answer: the timeout
		// must have counted, so the key is certain again.
		{"TimeoutThenDuplicate", []attempt{at(0, 0, 5, uncertain), at(0, 1, 2, duplicate)}, totals(1, 0), time.Minute, nil, [2]int{1, 0}, [2]int{}},
		// ...and then the stats must show it.
		{"TimeoutThenDuplicateMissing", []attempt{at(0, 0, 5, uncertain), at(0, 1, 2, duplicate)}, totals(0, 0), time.Minute, []string{"exactly 1"}, [2]int{1, 0}, [2]int{}},
		// A timeout sent only after the duplicate answer cannot explain it.
		{"TimeoutTooLate", []attempt{at(0, 0, 1, duplicate), at(0, 2, 9, uncertain)}, totals(1, 0), time.Minute, []string{"no request for it was counted"}, [2]int{1, 0}, [2]int{}},
		// A timeout beside a counted reply cannot have counted too.
		{"TimeoutBesideCounted", []attempt{at(0, 0, 1, counted), at(0, 0, 9, uncertain)}, totals(1, 0), time.Minute, nil, [2]int{1, 0}, [2]int{}},
		// A 4xx changed nothing; the key adds nothing.
		{"Rejected", []attempt{at(0, 0, 1, rejected)}, totals(0, 0), time.Minute, nil, [2]int{}, [2]int{}},
		// A lost count: the service said counted, the stats disagree.
		{"LostCount", []attempt{at(0, 0, 1, counted), at(2, 0, 1, counted)}, totals(1, 0), time.Minute, []string{"stats total is 1, but the replies acknowledged exactly 2"}, [2]int{2, 0}, [2]int{}},
		// More than even the uncertain requests could explain.
		{"ExtraCount", []attempt{at(0, 0, 1, counted), at(2, 0, 5, uncertain)}, totals(3, 0), time.Minute, []string{"1 to 2 distinct keys"}, [2]int{1, 0}, [2]int{1, 0}},
		// A 200 that does not say whether it counted breaks the contract.
		{"Unreadable", []attempt{at(0, 0, 1, unreadable)}, totals(0, 0), time.Minute, []string{"without a \"counted\" flag"}, [2]int{}, [2]int{}},
		// Within the hour, last_hour must equal total.
		{"LastHourShort", []attempt{at(0, 0, 1, counted)}, []Stats{{LastHour: 0, LastDay: 1, Total: 1}, {}}, time.Minute, []string{"last_hour is 0"}, [2]int{1, 0}, [2]int{}},
		// After an hour, last_hour may have moved on.
		{"LastHourAfterAnHour", []attempt{at(0, 0, 1, counted)}, []Stats{{LastHour: 0, LastDay: 1, Total: 1}, {}}, 2 * time.Hour, nil, [2]int{1, 0}, [2]int{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(mustPlan(t, PlanConfig{Campaigns: 2, Users: 10, Ads: 1}), time.Now())
			l.attempts = tc.attempts
			v := l.verify(tc.stats, tc.elapsed)
			require.Len(t, v.Problems, len(tc.problems), "problems: %q", v.Problems)
			for i, want := range tc.problems {
				assert.Contains(t, v.Problems[i], want)
			}
			assert.Equal(t, len(tc.problems) == 0, v.OK())
			for c := range 2 {
				assert.Equal(t, tc.counted[c], v.Campaigns[c].Counted, "counted in campaign %d", c)
				assert.Equal(t, tc.unsure[c], v.Campaigns[c].Uncertain, "uncertain in campaign %d", c)
			}
			var out bytes.Buffer
			_, err := v.WriteTo(&out)
			require.NoError(t, err)
			if v.OK() {
				assert.Contains(t, out.String(), "verification passed")
			} else {
				assert.Contains(t, out.String(), "verification FAILED")
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		code uint16
		body string
		want outcome
	}{
		{"Counted", 200, `{"message":"Impression saved successfully","counted":true}`, counted},
		{"Duplicate", 200, `{"message":"Duplicate impression ignored","counted":false}`, duplicate},
		// A 2xx must say which; a missing flag is a contract violation.
		{"NoFlag", 200, `{"message":"ok"}`, unreadable},
		{"NotJSON", 200, `ok`, unreadable},
		// 4xx: validated and refused before anything was recorded.
		{"BadRequest", 400, `{"error":"user_id: required"}`, rejected},
		{"NotStarted", 409, `{"error":"campaign has not started yet"}`, rejected},
		// No reply at all, or a server error: it may have been recorded.
		{"NoReply", 0, ``, uncertain},
		{"Unavailable", 503, `{"error":"the store is unavailable"}`, uncertain},
		{"Internal", 500, `{"error":"internal error"}`, uncertain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, classify(tc.code, []byte(tc.body)))
		})
	}
}

func TestLedgerAddMapsResultsBack(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, PlanConfig{Campaigns: 1, Users: 10, Ads: 1, DupRatio: 0.5, ReadShare: 0.2, Seed: 9})
	epoch := time.Now()
	l := newLedger(p, epoch)
	ts, err := newTargets(p, "http://h", []string{"c"}, "")
	require.NoError(t, err)
	wantImps := 0
	for i := range uint64(20) {
		var tgt vegeta.Target
		require.NoError(t, ts.target(i, &tgt))
		r, _ := p.Request(i)
		if !r.Read {
			wantImps++
		}
		l.add(&vegeta.Result{URL: tgt.URL, Code: 200, Body: []byte(`{"counted":true}`), Timestamp: epoch.Add(time.Second), Latency: time.Millisecond})
	}
	l.add(&vegeta.Result{URL: "http://h/api/v1/impressions", Code: 200})
	require.Len(t, l.attempts, wantImps)
	assert.Len(t, l.reads, 20-wantImps)
	assert.Equal(t, time.Second, l.attempts[0].start)
	assert.Equal(t, time.Second+time.Millisecond, l.attempts[0].end)
	assert.Len(t, l.foreign, 1, "a result without an index is reported, not dropped")
}

func TestVerifyReadsDuringTheAttack(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// Keys 0 and 2 of campaign 0, first sent at 0 ms and 10 ms, both counted.
	traffic := []attempt{at(0, 0, 1, counted), at(2, 10, 11, counted)}
	cases := []struct {
		name     string
		reads    []read
		problems []string
	}{
		// Totals that rise with the traffic.
		{"Rising", []read{{0, ms(2), ms(3), 1}, {0, ms(12), ms(13), 2}}, nil},
		// Two reads in flight together may be answered in either order.
		{"OverlappingMayDisagree", []read{{0, ms(2), ms(20), 2}, {0, ms(3), ms(15), 1}}, nil},
		// A read sent after another was answered cannot show less.
		{"TotalFell", []read{{0, ms(12), ms(13), 2}, {0, ms(14), ms(15), 1}}, []string{"total fell from 2"}},
		// A total cannot count a key no request had been sent for yet.
		{"AheadOfTraffic", []read{{0, ms(2), ms(3), 2}}, []string{"only 1 distinct keys had been sent"}},
		// The other campaign's reads are judged on their own.
		{"OtherCampaign", []read{{0, ms(12), ms(13), 2}, {1, ms(14), ms(15), 0}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(mustPlan(t, PlanConfig{Campaigns: 2, Users: 10, Ads: 1}), time.Now())
			l.attempts = traffic
			l.reads = tc.reads
			v := l.verify(totals(2, 0), time.Minute)
			require.Len(t, v.Problems, len(tc.problems), "problems: %q", v.Problems)
			for i, want := range tc.problems {
				assert.Contains(t, v.Problems[i], want)
			}
		})
	}
}
