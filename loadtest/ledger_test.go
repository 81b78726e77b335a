package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// sent is an impression as a test describes it: the index and times of
// the request that carried it, and the impression.
type sent struct {
	index      uint64
	item       uint16
	key        uint64
	bot        bool
	start, end time.Duration
	outcome    outcome
}

// verifySent verifies the impressions given, each request's record made
// from the first impression that names its index.
func verifySent(l *ledger, ss []sent, stats []Stats, elapsed time.Duration) Verdict {
	recs := map[uint64]uint32{}
	var atts []attempt
	for _, s := range ss {
		n, ok := recs[s.index]
		if !ok {
			n = uint32(len(l.records))
			recs[s.index] = n
			l.records = append(l.records, record{index: s.index, start: s.start, end: s.end, code: 200})
		}
		atts = append(atts, attempt{key: s.key, rec: n, item: s.item, outcome: s.outcome, bot: s.bot})
	}
	return l.verifyAttempts(atts, stats, elapsed)
}

// at is a request for key (campaign key%2) from start to end, in
// milliseconds since the epoch.
func at(key uint64, start, end int, o outcome) sent {
	return sent{index: key<<32 | uint64(start)<<16 | uint64(end), key: key, start: time.Duration(start) * time.Millisecond, end: time.Duration(end) * time.Millisecond, outcome: o}
}

func totals(c0, c1 int64) []Stats {
	return []Stats{{LastHour: c0, LastDay: c0, Total: c0}, {LastHour: c1, LastDay: c1, Total: c1}}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		attempts []sent
		stats    []Stats
		elapsed  time.Duration
		problems []string // substrings, one per expected problem
		counted  [2]int
		unsure   [2]int
	}{
		// The plain case: a key counted once, its repeat a duplicate, a key
		// in the other campaign counted.
		{"Clean", []sent{at(0, 0, 1, counted), at(0, 2, 3, duplicate), at(1, 0, 1, counted)}, totals(1, 1), time.Minute, nil, [2]int{1, 1}, [2]int{}},
		// The repeat overtook the first sighting: both in flight, the repeat
		// counted and the first sighting was answered duplicate. A race,
		// not a contradiction.
		{"RaceOvertaken", []sent{at(0, 0, 10, duplicate), at(0, 1, 5, counted)}, totals(1, 0), time.Minute, nil, [2]int{1, 0}, [2]int{}},
		// Counted twice inside the dedup window; the stats that show it
		// disagree with one distinct key too.
		{"CountedTwice", []sent{at(0, 0, 1, counted), at(0, 2, 3, counted)}, totals(2, 0), time.Minute, []string{"counted 2 times", "stats total is 2"}, [2]int{1, 0}, [2]int{}},
		// A first sighting answered duplicate with nothing before it.
		{"FirstSightingDuplicate", []sent{at(0, 0, 1, duplicate)}, totals(1, 0), time.Minute, []string{"no request for it was counted"}, [2]int{1, 0}, [2]int{}},
		// Answered duplicate, and the counted request was only sent after
		// that answer: the duplicate could not have been true.
		{"DuplicateBeforeCounted", []sent{at(0, 0, 1, duplicate), at(0, 2, 3, counted)}, totals(1, 0), time.Minute, []string{"before request"}, [2]int{1, 0}, [2]int{}},
		// A timed-out request may have counted; alone it widens the range,
		// and either total is accepted.
		{"TimeoutCounted", []sent{at(0, 0, 5, uncertain)}, totals(1, 0), time.Minute, nil, [2]int{}, [2]int{1, 0}},
		{"TimeoutNotCounted", []sent{at(0, 0, 5, uncertain)}, totals(0, 0), time.Minute, nil, [2]int{}, [2]int{1, 0}},
		// A timed-out first sighting, then a duplicate answer: the timeout
		// must have counted, so the key is certain again.
		{"TimeoutThenDuplicate", []sent{at(0, 0, 5, uncertain), at(0, 1, 2, duplicate)}, totals(1, 0), time.Minute, nil, [2]int{1, 0}, [2]int{}},
		// ...and then the stats must show it.
		{"TimeoutThenDuplicateMissing", []sent{at(0, 0, 5, uncertain), at(0, 1, 2, duplicate)}, totals(0, 0), time.Minute, []string{"exactly 1"}, [2]int{1, 0}, [2]int{}},
		// A timeout sent only after the duplicate answer cannot explain it.
		{"TimeoutTooLate", []sent{at(0, 0, 1, duplicate), at(0, 2, 9, uncertain)}, totals(1, 0), time.Minute, []string{"no request for it was counted"}, [2]int{1, 0}, [2]int{}},
		// A timeout beside a counted reply cannot have counted too.
		{"TimeoutBesideCounted", []sent{at(0, 0, 1, counted), at(0, 0, 9, uncertain)}, totals(1, 0), time.Minute, nil, [2]int{1, 0}, [2]int{}},
		// A 4xx changed nothing; the key adds nothing.
		{"Rejected", []sent{at(0, 0, 1, rejected)}, totals(0, 0), time.Minute, nil, [2]int{}, [2]int{}},
		// A lost count: the service said counted, the stats disagree.
		{"LostCount", []sent{at(0, 0, 1, counted), at(2, 0, 1, counted)}, totals(1, 0), time.Minute, []string{"stats total is 1, but the replies acknowledged exactly 2"}, [2]int{2, 0}, [2]int{}},
		// More than even the uncertain requests could explain.
		{"ExtraCount", []sent{at(0, 0, 1, counted), at(2, 0, 5, uncertain)}, totals(3, 0), time.Minute, []string{"1 to 2 distinct keys"}, [2]int{1, 0}, [2]int{1, 0}},
		// A 200 that does not say whether it counted breaks the contract.
		{"Unreadable", []sent{at(0, 0, 1, unreadable)}, totals(0, 0), time.Minute, []string{"without saying whether it counted"}, [2]int{}, [2]int{}},
		// Within the hour, last_hour must equal total.
		{"LastHourShort", []sent{at(0, 0, 1, counted)}, []Stats{{LastHour: 0, LastDay: 1, Total: 1}, {}}, time.Minute, []string{"last_hour is 0"}, [2]int{1, 0}, [2]int{}},
		// After an hour, last_hour may have moved on.
		{"LastHourAfterAnHour", []sent{at(0, 0, 1, counted)}, []Stats{{LastHour: 0, LastDay: 1, Total: 1}, {}}, 2 * time.Hour, nil, [2]int{1, 0}, [2]int{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(mustPlan(t, PlanConfig{Campaigns: 2, Users: 10, Ads: 1}), modeSingle, time.Now())
			v := verifySent(l, tc.attempts, tc.stats, tc.elapsed)
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

func TestLedgerAddMapsResultsBack(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, PlanConfig{Campaigns: 1, Users: 10, Ads: 1, DupRatio: 0.5, ReadShare: 0.2, Seed: 9})
	epoch := time.Now()
	l := newLedger(p, modeSingle, epoch)
	ts, err := newTargets(p, "http://h", []string{"c"}, targetConfig{})
	require.NoError(t, err)
	wantImps := 0
	for i := range uint64(20) {
		var tgt vegeta.Target
		require.NoError(t, ts.target(i, &tgt))
		if !p.Request(i).Read {
			wantImps++
		}
		l.add(&vegeta.Result{URL: tgt.URL, Code: 200, Body: []byte(`{"counted":true}`), Timestamp: epoch.Add(time.Second), Latency: time.Millisecond})
	}
	l.add(&vegeta.Result{URL: "http://h/api/v1/impressions", Code: 200})
	require.Len(t, l.records, wantImps)
	require.Len(t, l.outcomes, wantImps)
	assert.Len(t, l.reads, 20-wantImps)
	assert.Equal(t, time.Second, l.records[0].start)
	assert.Equal(t, time.Second+time.Millisecond, l.records[0].end)
	imps, _, _ := l.traffic()
	assert.Equal(t, wantImps, imps)
	assert.Len(t, l.problems, 1, "a result without an index is reported, not dropped")
}

func TestVerifyReadsDuringTheAttack(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// Keys 0 and 2 of campaign 0, first sent at 0 ms and 10 ms, both counted.
	traffic := []sent{at(0, 0, 1, counted), at(2, 10, 11, counted)}
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
			l := newLedger(mustPlan(t, PlanConfig{Campaigns: 2, Users: 10, Ads: 1}), modeSingle, time.Now())
			l.reads = tc.reads
			v := verifySent(l, traffic, totals(2, 0), time.Minute)
			require.Len(t, v.Problems, len(tc.problems), "problems: %q", v.Problems)
			for i, want := range tc.problems {
				assert.Contains(t, v.Problems[i], want)
			}
		})
	}
}

func TestLedgerAddsEveryItemOfABatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		code     uint16
		body     []byte
		err      string
		want     []outcome
		problems []string
	}{
		// A 200 answers each item: the ledger keeps each item's outcome,
		// in order.
		{"AnsweredPerItem", 200, batchReply("counted", "duplicate", "filtered", "rejected"), "", []outcome{counted, duplicate, filtered, rejected}, nil},
		// The store failed for the whole batch: every item may or may not
		// have been recorded, as for a single request that failed.
		{"StoreFailed", 503, []byte(`{"error":"the store is unavailable"}`), "503 Service Unavailable", []outcome{uncertain, uncertain, uncertain, uncertain}, nil},
		// No answer at all.
		{"TimedOut", 0, nil, "context deadline exceeded", []outcome{uncertain, uncertain, uncertain, uncertain}, nil},
		// Refused whole, over a limit: nothing was recorded.
		{"TooLarge", 413, []byte(`{"error":"a batch holds at most 1000 impressions"}`), "413 Request Entity Too Large", []outcome{rejected, rejected, rejected, rejected}, nil},
		// A 200 that does not account for every item: one problem for the
		// batch, whose items then only widen the range.
		{"ShortReply", 200, batchReply("counted", "counted", "counted"), "", []outcome{uncertain, uncertain, uncertain, uncertain}, []string{"3 results for 4 impressions"}},
		{"Garbled", 200, []byte("ok"), "", []outcome{uncertain, uncertain, uncertain, uncertain}, []string{"unreadable batch reply"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustPlan(t, PlanConfig{Campaigns: 2, Users: 100, Ads: 1, PerRequest: 4, DupRatio: 0.3, Seed: 2})
			epoch := time.Now()
			l := newLedger(p, modeBatch, epoch)
			ts, err := newTargets(p, "http://h", []string{"c0", "c1"}, targetConfig{Mode: modeBatch})
			require.NoError(t, err)
			var tgt vegeta.Target
			require.NoError(t, ts.target(3, &tgt))
			l.add(&vegeta.Result{URL: tgt.URL, Code: tc.code, Body: tc.body, Error: tc.err, Timestamp: epoch.Add(time.Second), Latency: time.Millisecond})

			require.Len(t, l.problems, len(tc.problems), "problems: %q", l.problems)
			for i, want := range tc.problems {
				assert.Contains(t, l.problems[i], want)
			}
			require.Equal(t, []record{{index: 3, start: time.Second, end: time.Second + time.Millisecond, code: tc.code}}, l.records)
			assert.Equal(t, tc.want, l.outcomes)
			atts, err := l.attempts()
			require.NoError(t, err)
			require.Len(t, atts, 4)
			for k, a := range atts {
				im, err := p.Impression(12 + uint64(k))
				require.NoError(t, err)
				assert.Equal(t, attempt{key: im.Key, item: uint16(k), outcome: tc.want[k]}, a, "item %d", k)
			}
		})
	}
}

// item is key (campaign key%2) as item n of request index, from start to
// end in milliseconds since the epoch.
func item(index uint64, n uint16, key uint64, start, end int, o outcome) sent {
	return sent{index: index, item: n, key: key, start: time.Duration(start) * time.Millisecond, end: time.Duration(end) * time.Millisecond, outcome: o}
}

// botItem is item sent with a crawler's User-Agent.
func botItem(index uint64, n uint16, key uint64, start, end int, o outcome) sent {
	a := item(index, n, key, start, end, o)
	a.bot = true
	return a
}

// statsOf is campaign 0 with total and filtered, and an empty campaign 1.
func statsOf(total, filtered int64) []Stats {
	return []Stats{{LastHour: total, LastDay: total, Total: total, Filtered: filtered}, {}}
}

func TestVerifyBatchesAndBots(t *testing.T) {
	t.Parallel()
	type want struct{ counted, unsure, filtered, botUnsure, rejected int }
	cases := []struct {
		name     string
		attempts []sent
		stats    []Stats
		problems []string // substrings, one per expected problem
		want     want
	}{
		// A key twice in one batch: the first item counted, the second a
		// duplicate, as one by one in order.
		{"RepeatInsideBatch", []sent{item(1, 0, 0, 0, 5, counted), item(1, 1, 0, 0, 5, duplicate)}, statsOf(1, 0), nil, want{counted: 1}},
		// Inside a batch there is no race: a duplicate before the item
		// that counted contradicts the order.
		{"DuplicateBeforeCountedInsideBatch", []sent{item(1, 0, 0, 0, 5, duplicate), item(1, 1, 0, 0, 5, counted)}, statsOf(1, 0), []string{"later in the same batch"}, want{counted: 1}},
		// Across batches in flight together, either order is fine.
		{"RaceAcrossBatches", []sent{item(1, 0, 0, 0, 10, duplicate), item(2, 3, 0, 1, 5, counted)}, statsOf(1, 0), nil, want{counted: 1}},
		// A batch that failed whole, retried: the retry's answers are
		// definite, so the failure widens nothing.
		{"FailedBatchRetried", []sent{item(1, 0, 0, 0, 5, uncertain), item(1, 1, 2, 0, 5, uncertain), item(2, 0, 0, 6, 7, counted), item(2, 1, 2, 6, 7, duplicate)}, statsOf(2, 0), nil, want{counted: 2}},
		// A batch that failed whole and was never retried: each of its keys
		// may or may not count, and any total in range passes...
		{"FailedBatchInRange", []sent{item(1, 0, 0, 0, 5, uncertain), item(1, 1, 2, 0, 5, uncertain)}, statsOf(1, 0), nil, want{unsure: 2}},
		// ...but not one beyond it.
		{"FailedBatchOutOfRange", []sent{item(1, 0, 0, 0, 5, uncertain), item(1, 1, 2, 0, 5, uncertain)}, statsOf(3, 0), []string{"0 to 2 distinct keys (2 uncertain)"}, want{unsure: 2}},
		// A timed-out batch, then a duplicate answer for one of its keys:
		// the timed-out item must have counted...
		{"TimedOutBatchThenDuplicate", []sent{item(1, 0, 0, 0, 9, uncertain), item(2, 0, 0, 1, 2, duplicate)}, statsOf(1, 0), nil, want{counted: 1}},
		// ...so the stats must show it.
		{"TimedOutBatchThenDuplicateMissing", []sent{item(1, 0, 0, 0, 9, uncertain), item(2, 0, 0, 1, 2, duplicate)}, statsOf(0, 0), []string{"exactly 1"}, want{counted: 1}},
		// A bad item never fails its neighbours: one counted, one rejected.
		{"PartlyRejected", []sent{item(1, 0, 0, 0, 5, counted), item(1, 1, 2, 0, 5, rejected)}, statsOf(1, 0), nil, want{counted: 1, rejected: 1}},
		// A bot's key, sent twice, is filtered both times and counts once
		// in the filtered stat, never in the total.
		{"BotFiltered", []sent{botItem(1, 0, 0, 0, 5, filtered), botItem(2, 0, 0, 6, 7, filtered)}, statsOf(0, 1), nil, want{filtered: 1}},
		// The filtered stat must show it.
		{"BotFilteredStatMissing", []sent{botItem(1, 0, 0, 0, 5, filtered)}, statsOf(0, 0), []string{"stats filtered is 0"}, want{filtered: 1}},
		// A bot's impression that counted means the filter is off.
		{"BotCounted", []sent{botItem(1, 0, 0, 0, 5, counted)}, statsOf(0, 0), []string{"is the bot filter off?"}, want{}},
		// A browser's impression must never be filtered.
		{"BrowserFiltered", []sent{item(1, 0, 0, 0, 5, filtered)}, statsOf(0, 0), []string{"carried a browser's User-Agent"}, want{}},
		// The same campaign, user and ad from a bot and from a browser are
		// two keys: one filtered, one counted.
		{"BotAndBrowserSameKey", []sent{botItem(1, 0, 0, 0, 5, filtered), item(1, 1, 0, 0, 5, counted)}, statsOf(1, 1), nil, want{counted: 1, filtered: 1}},
		// A bot's impression with no answer may or may not be in the
		// filtered stat.
		{"BotUncertainNotFiltered", []sent{botItem(1, 0, 0, 0, 5, uncertain)}, statsOf(0, 0), nil, want{botUnsure: 1}},
		{"BotUncertainFiltered", []sent{botItem(1, 0, 0, 0, 5, uncertain)}, statsOf(0, 1), nil, want{botUnsure: 1}},
		{"BotUncertainTooMany", []sent{botItem(1, 0, 0, 0, 5, uncertain)}, statsOf(0, 2), []string{"stats filtered is 2"}, want{botUnsure: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLedger(mustPlan(t, PlanConfig{Campaigns: 2, Users: 10, Ads: 1, PerRequest: 4}), modeBatch, time.Now())
			v := verifySent(l, tc.attempts, tc.stats, time.Minute)
			require.Len(t, v.Problems, len(tc.problems), "problems: %q", v.Problems)
			for i, want := range tc.problems {
				assert.Contains(t, v.Problems[i], want)
			}
			c := v.Campaigns[0]
			assert.Equal(t, tc.want, want{c.Counted, c.Uncertain, c.Filtered, c.BotUnsure, v.Rejected})
			var out bytes.Buffer
			_, err := v.WriteTo(&out)
			require.NoError(t, err)
		})
	}
}

// BenchmarkLedger measures the ledger at the scale of the batch target:
// taking one result of a thousand impressions during the attack (on the
// cores the service runs on), and verifying a million impressions after
// it.
func BenchmarkLedger(b *testing.B) {
	const requests = 1000
	p, err := NewPlan(PlanConfig{Campaigns: 4, Users: 100_000_000, Ads: 1, PerRequest: maxBatch, DupRatio: 0.2, Seed: 1})
	require.NoError(b, err)
	ts, err := newTargets(p, "http://h", []string{"c0", "c1", "c2", "c3"}, targetConfig{Mode: modeBatch})
	require.NoError(b, err)
	// The service's true answers, as results.
	epoch := time.Now()
	seen := map[uint64]bool{}
	results := make([]*vegeta.Result, requests)
	stats := make([]Stats, 4)
	for i := range results {
		var tgt vegeta.Target
		require.NoError(b, ts.target(uint64(i), &tgt))
		names := make([]string, maxBatch)
		for k := range names {
			im, err := p.Impression(uint64(i*maxBatch + k))
			require.NoError(b, err)
			names[k] = "duplicate"
			if !seen[im.Key] {
				seen[im.Key] = true
				names[k] = "counted"
				stats[im.Campaign].Total++
			}
		}
		results[i] = &vegeta.Result{URL: tgt.URL, Code: 200, Body: batchReply(names...), Timestamp: epoch.Add(time.Duration(i) * time.Millisecond), Latency: time.Millisecond}
	}
	for c := range stats {
		stats[c].LastHour, stats[c].LastDay = stats[c].Total, stats[c].Total
	}
	b.Run("AddBatchResult", func(b *testing.B) {
		l := newLedger(p, modeBatch, epoch)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == requests {
				l.records, l.outcomes, i = l.records[:0], l.outcomes[:0], 0
			}
			l.add(results[i])
			i++
		}
		require.Empty(b, l.problems)
	})
	b.Run("VerifyMillion", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			l := newLedger(p, modeBatch, epoch)
			for _, r := range results {
				l.add(r)
			}
			b.StartTimer()
			v := l.verify(stats, time.Minute)
			if !v.OK() {
				b.Fatal(v.Problems)
			}
		}
	})
}
