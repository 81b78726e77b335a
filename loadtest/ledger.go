package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// outcome is what one impression request tells about its key.
type outcome uint8

const (
	// counted: 2xx with "counted": true, the service recorded the key now.
	counted outcome = iota + 1
	// duplicate: 2xx with "counted": false, the key was already recorded.
	duplicate
	// rejected: 4xx. The API validates before it records, so nothing
	// changed.
	rejected
	// uncertain: no reply (timeout, connection error) or a 5xx. The request
	// may or may not have been recorded, so it widens the accepted range
	// instead of being judged.
	uncertain
	// unreadable: 2xx whose body has no "counted" flag, itself a contract
	// violation.
	unreadable
)

// attempt is one impression request as the ledger keeps it. Times are
// offsets from the ledger's epoch on the monotonic clock: start is taken
// before the request is built, end after its reply was read, so whatever the
// service did for it happened in between.
type attempt struct {
	index      uint64
	key        uint64
	start, end time.Duration
	outcome    outcome
	code       uint16
}

// read is one stats read made during the attack, as the ledger keeps it.
type read struct {
	campaign   int
	start, end time.Duration
	total      int64
}

// ledger records the outcome of every request of a run and verifies the
// service's counts against them. It is not safe for concurrent use: one
// goroutine feeds it the attack's results.
type ledger struct {
	plan     *Plan
	epoch    time.Time
	attempts []attempt

	repeats     int    // impressions the plan sent as repeats
	reads       []read // stats reads answered 200
	readsFailed int
	// foreign counts results that carry no plan index; each is a problem.
	foreign []string
}

func newLedger(plan *Plan, epoch time.Time) *ledger {
	return &ledger{plan: plan, epoch: epoch}
}

// add records one result of the attack.
func (l *ledger) add(res *vegeta.Result) {
	i, err := resultIndex(res.URL)
	if err != nil {
		l.foreign = append(l.foreign, fmt.Sprintf("result for %q carries no request index: %v", res.URL, err))
		return
	}
	r, err := l.plan.Request(i)
	if err != nil {
		l.foreign = append(l.foreign, fmt.Sprintf("result for request %d is not in the plan: %v", i, err))
		return
	}
	start, end := res.Timestamp.Sub(l.epoch), res.End().Sub(l.epoch)
	if r.Read {
		var s Stats
		if res.Code != 200 || json.Unmarshal(res.Body, &s) != nil {
			l.readsFailed++
			return
		}
		l.reads = append(l.reads, read{campaign: r.Campaign, start: start, end: end, total: s.Total})
		return
	}
	if r.Repeat {
		l.repeats++
	}
	l.attempts = append(l.attempts, attempt{
		index:   i,
		key:     r.Key,
		start:   start,
		end:     end,
		outcome: classify(res.Code, res.Body),
		code:    res.Code,
	})
}

// classify reads an impression reply.
func classify(code uint16, body []byte) outcome {
	switch {
	case code >= 200 && code < 300:
		var reply struct {
			Counted *bool `json:"counted"`
		}
		if json.Unmarshal(body, &reply) != nil || reply.Counted == nil {
			return unreadable
		}
		if *reply.Counted {
			return counted
		}
		return duplicate
	case code >= 400 && code < 500:
		return rejected
	default:
		return uncertain
	}
}

// Stats is what GET /api/v1/campaigns/{id}/stats answers.
type Stats struct {
	LastHour int64 `json:"last_hour"`
	LastDay  int64 `json:"last_day"`
	Total    int64 `json:"total"`
}

// campaignCheck is the verdict on one campaign.
type campaignCheck struct {
	Keys       int   // distinct keys sent
	Counted    int   // keys the service certainly recorded once
	Uncertain  int   // keys that may or may not have been recorded
	Duplicates int   // replies that said duplicate
	Stats      Stats // what the service reports
}

// Verdict is the outcome of a verification.
type Verdict struct {
	Campaigns []campaignCheck
	Uncertain int // requests with no definite answer
	Rejected  int // impression requests answered 4xx
	// Reads and ReadsFailed count the stats reads made during the attack.
	Reads, ReadsFailed int
	// Problems are contradictions and mismatches, each a sentence.
	Problems []string
}

// OK reports whether the service's counts agree with its replies.
func (v Verdict) OK() bool { return len(v.Problems) == 0 }

// verify checks every key's replies, then each campaign's stats against the
// keys the service acknowledged. stats holds one entry per plan campaign;
// elapsed is how long ago the first impression was sent, which decides
// whether last_hour and last_day must equal total.
//
// The rules, for each key (every key is new to the service, because the
// campaigns are new):
//   - at most one reply says counted: a second one is a double count;
//   - a reply that says duplicate needs a request for the same key that
//     could have been recorded before that reply was sent back: the one
//     counted, or, if none was, an uncertain one, sent before the reply
//     ended. Replies for one key race, so a first sighting answered
//     "duplicate" is fine while its repeat was in flight;
//   - the key then adds exactly one to its campaign if a reply said counted
//     or duplicate, zero or one if the only other requests are uncertain,
//     and zero otherwise.
//
// The stats reads made during the attack are checked too; see verifyReads.
func (l *ledger) verify(stats []Stats, elapsed time.Duration) Verdict {
	v := Verdict{Campaigns: make([]campaignCheck, l.plan.Campaigns())}
	v.Problems = append(v.Problems, l.foreign...)
	atts := slices.Clone(l.attempts)
	slices.SortFunc(atts, func(a, b attempt) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.start, b.start))
	})
	for lo := 0; lo < len(atts); {
		hi := lo + 1
		for hi < len(atts) && atts[hi].key == atts[lo].key {
			hi++
		}
		l.verifyKey(atts[lo:hi], &v)
		lo = hi
	}
	v.Reads, v.ReadsFailed = len(l.reads), l.readsFailed
	l.verifyReads(&v)
	for c := range v.Campaigns {
		cc := &v.Campaigns[c]
		cc.Stats = stats[c]
		lo, hi := int64(cc.Counted), int64(cc.Counted+cc.Uncertain)
		if got := cc.Stats.Total; got < lo || got > hi {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: stats total is %d, but the replies acknowledged %s", c, got, expectRange(lo, hi)))
		}
		// Everything was recorded after the campaign started, inside the
		// last hour and day (allowing the window's one-bucket edge).
		if elapsed < 55*time.Minute && cc.Stats.LastHour != cc.Stats.Total {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: last_hour is %d but total is %d, though every impression was sent within the hour", c, cc.Stats.LastHour, cc.Stats.Total))
		}
		if elapsed < 23*time.Hour && cc.Stats.LastDay != cc.Stats.Total {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: last_day is %d but total is %d, though every impression was sent within the day", c, cc.Stats.LastDay, cc.Stats.Total))
		}
	}
	return v
}

// verifyKey judges the attempts of one key, sorted by start.
func (l *ledger) verifyKey(atts []attempt, v *Verdict) {
	cc := &v.Campaigns[l.plan.campaignOf(atts[0].key)]
	cc.Keys++
	var (
		recorded  []attempt
		unsure    []attempt
		dups      []attempt
		firstDupE = time.Duration(1<<63 - 1) // earliest end of a duplicate reply
	)
	for _, a := range atts {
		switch a.outcome {
		case counted:
			recorded = append(recorded, a)
		case duplicate:
			dups = append(dups, a)
			firstDupE = min(firstDupE, a.end)
		case uncertain:
			unsure = append(unsure, a)
			v.Uncertain++
		case rejected:
			v.Rejected++
		case unreadable:
			v.Problems = append(v.Problems, fmt.Sprintf("request %d (%s) was answered %d without a \"counted\" flag", a.index, l.describe(a), a.code))
		}
	}
	cc.Duplicates += len(dups)
	switch {
	case len(recorded) > 1:
		v.Problems = append(v.Problems, fmt.Sprintf("%s was counted %d times: requests %s", l.describe(atts[0]), len(recorded), indexes(recorded)))
		cc.Counted++
	case len(recorded) == 1:
		for _, d := range dups {
			if recorded[0].start >= d.end {
				v.Problems = append(v.Problems, fmt.Sprintf("request %d (%s) was answered duplicate at +%v, before request %d, which was counted, was sent at +%v",
					d.index, l.describe(d), d.end, recorded[0].index, recorded[0].start))
			}
		}
		cc.Counted++
	case len(dups) > 0:
		// Nothing said counted, so an uncertain request must have been
		// recorded before the first duplicate reply.
		if len(unsure) == 0 || unsure[0].start >= firstDupE {
			v.Problems = append(v.Problems, fmt.Sprintf("%s was answered duplicate by requests %s, but no request for it was counted or could have been before",
				l.describe(atts[0]), indexes(dups)))
		}
		cc.Counted++
	case len(unsure) > 0:
		cc.Uncertain++
	}
}

// verifyReads checks the stats reads made during the attack against two
// facts that hold however requests interleave: a campaign's total never
// falls, so a read sent after another was answered shows at least its
// total; and a total can only count keys whose first request was sent
// before the read was answered.
func (l *ledger) verifyReads(v *Verdict) {
	if len(l.reads) == 0 {
		return
	}
	firstSent := l.firstSent()
	byEnd := slices.Clone(l.reads)
	slices.SortFunc(byEnd, func(a, b read) int { return cmp.Compare(a.end, b.end) })
	byStart := slices.Clone(l.reads)
	slices.SortFunc(byStart, func(a, b read) int { return cmp.Compare(a.start, b.start) })
	// Sweep reads in start order; seen[c] is the highest total among
	// campaign c's reads answered before the current one was sent.
	seen := make([]read, len(v.Campaigns))
	for i := range seen {
		seen[i].total = -1
	}
	next := 0
	for _, b := range byStart {
		for ; next < len(byEnd) && byEnd[next].end < b.start; next++ {
			if e := byEnd[next]; e.total > seen[e.campaign].total {
				seen[e.campaign] = e
			}
		}
		if a := seen[b.campaign]; b.total < a.total {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: total fell from %d (read answered at +%v) to %d (read sent at +%v)", b.campaign, a.total, a.end, b.total, b.start))
		}
		if most := int64(sentBefore(firstSent[b.campaign], b.end)); b.total > most {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: a read answered at +%v shows total %d, but only %d distinct keys had been sent by then", b.campaign, b.end, b.total, most))
		}
	}
}

// firstSent returns, per campaign and sorted, when each key was first
// sent.
func (l *ledger) firstSent() [][]time.Duration {
	first := map[uint64]time.Duration{}
	for _, a := range l.attempts {
		if t, ok := first[a.key]; !ok || a.start < t {
			first[a.key] = a.start
		}
	}
	out := make([][]time.Duration, l.plan.Campaigns())
	for key, t := range first {
		c := l.plan.campaignOf(key)
		out[c] = append(out[c], t)
	}
	for _, ts := range out {
		slices.Sort(ts)
	}
	return out
}

// sentBefore counts the times in sorted that are before t.
func sentBefore(sorted []time.Duration, t time.Duration) int {
	n, _ := slices.BinarySearch(sorted, t)
	return n
}

// describe names an attempt's key as the service sees it.
func (l *ledger) describe(a attempt) string {
	r, err := l.plan.Request(a.index)
	if err != nil {
		return fmt.Sprintf("key %d", a.key)
	}
	return fmt.Sprintf("key %d (campaign %d, %s, %s)", a.key, r.Campaign, r.User, r.Ad)
}

func indexes(atts []attempt) string {
	s := make([]string, len(atts))
	for i, a := range atts {
		s[i] = fmt.Sprint(a.index)
	}
	return strings.Join(s, ", ")
}

func expectRange(lo, hi int64) string {
	if lo == hi {
		return fmt.Sprintf("exactly %d distinct keys", lo)
	}
	return fmt.Sprintf("%d to %d distinct keys (%d uncertain)", lo, hi, hi-lo)
}

// maxListed caps how many problems a report lists; the count is always
// given in full.
const maxListed = 20

// WriteTo prints the verdict for a person.
func (v Verdict) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	b.WriteString("Verification\n")
	fmt.Fprintf(&b, "  %-9s %8s %8s %9s %10s %10s %10s %10s\n", "campaign", "keys", "counted", "uncertain", "duplicates", "total", "last_hour", "last_day")
	for c, cc := range v.Campaigns {
		fmt.Fprintf(&b, "  %-9d %8d %8d %9d %10d %10d %10d %10d\n", c, cc.Keys, cc.Counted, cc.Uncertain, cc.Duplicates, cc.Stats.Total, cc.Stats.LastHour, cc.Stats.LastDay)
	}
	fmt.Fprintf(&b, "  requests without a definite answer: %d; impressions rejected with 4xx: %d\n", v.Uncertain, v.Rejected)
	fmt.Fprintf(&b, "  stats reads during the attack: %d checked, %d failed\n", v.Reads, v.ReadsFailed)
	if v.OK() {
		b.WriteString("verification passed: every campaign's stats match the impressions the service acknowledged\n")
	} else {
		fmt.Fprintf(&b, "verification FAILED: %d problems\n", len(v.Problems))
		for i, p := range v.Problems {
			if i == maxListed {
				fmt.Fprintf(&b, "  ... and %d more\n", len(v.Problems)-maxListed)
				break
			}
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
