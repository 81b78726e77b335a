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

// outcome is what the service answered for one impression.
type outcome uint8

const (
	// counted: the service recorded the key now (2xx, "counted").
	counted outcome = iota + 1
	// duplicate: the key was already recorded (2xx, "duplicate").
	duplicate
	// rejected: 4xx, for the request or for the batch item. The API
	// validates before it records, so nothing changed.
	rejected
	// uncertain: no reply (timeout, connection error) or a 5xx, for the
	// request or the whole batch. The impression may or may not have been
	// recorded, so it widens the accepted range instead of being judged.
	uncertain
	// unreadable: a 2xx that does not say what happened to the
	// impression, itself a contract violation.
	unreadable
	// filtered: the service judged the impression invalid traffic (2xx,
	// "filtered"): it counts in the campaign's filtered stat, once per
	// key, never in its impressions.
	filtered
)

// record is one impression request as the ledger keeps it. Times are
// offsets from the ledger's epoch on the monotonic clock: start is taken
// before the request is built, end after its reply was read, so whatever
// the service did for its impressions happened in between.
type record struct {
	index      uint64 // the request's plan index
	start, end time.Duration
	code       uint16
}

// attempt is one impression as verification sees it: one per single or
// pixel request, one per item of a batch, sharing their request's record.
type attempt struct {
	key     uint64
	rec     uint32 // the request's record in ledger.records
	item    uint16 // position in the batch, 0 for other requests
	outcome outcome
	bot     bool // sent with a crawler's User-Agent
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
//
// During the attack it keeps one record per impression request and one
// byte per impression, its outcome, and computes nothing from the plan:
// it runs on the cores the service under test runs on, at up to a million
// impressions a second. Verification, after the attack, recomputes each
// impression's key from the plan.
type ledger struct {
	plan  *Plan
	mode  mode
	epoch time.Time
	// records holds the impression requests in the order their results
	// came; outcomes holds Plan.PerRequest outcomes for each, in the same
	// order.
	records  []record
	outcomes []outcome

	reads       []read // stats reads answered 200
	readsFailed int
	// tally counts the impressions by outcome, for the report.
	tally [filtered + 1]int
	// problems are contradictions found while reading the results: a
	// result that carries no plan index, a batch reply that breaks the
	// contract.
	problems []string
}

func newLedger(plan *Plan, m mode, epoch time.Time) *ledger {
	return &ledger{plan: plan, mode: m, epoch: epoch}
}

// add records one result of the attack.
func (l *ledger) add(res *vegeta.Result) {
	i, err := resultIndex(res.URL)
	if err != nil {
		l.problems = append(l.problems, fmt.Sprintf("result for %q carries no request index: %v", res.URL, err))
		return
	}
	r := l.plan.Request(i)
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
	l.records = append(l.records, record{index: i, start: start, end: end, code: res.Code})
	n := len(l.outcomes)
	l.outcomes = slices.Grow(l.outcomes, r.Count)[:n+r.Count]
	l.classify(i, res, l.outcomes[n:])
	for _, o := range l.outcomes[n:] {
		l.tally[o]++
	}
}

// classify sets the outcome of each impression request i carried in outs.
func (l *ledger) classify(i uint64, res *vegeta.Result, outs []outcome) {
	switch l.mode {
	case modeSingle:
		outs[0] = classifySingle(res.Code, res.Body)
		return
	case modePixel:
		outs[0] = classifyPixel(res.Code, res.Headers)
		return
	}
	var whole outcome
	switch code := res.Code; {
	case code >= 200 && code < 300:
		err := parseBatchReply(res.Body, outs)
		if err == nil {
			return
		}
		// The service answered, so every item's outcome is durable, but
		// the reply does not say which: one problem for the batch, and
		// its items only widen the range.
		l.problems = append(l.problems, fmt.Sprintf("request %d was answered %d with an unreadable batch reply: %v", i, code, err))
		whole = uncertain
	case code >= 400 && code < 500:
		// Refused whole (413 over the limits, 400 for the body): nothing
		// was recorded.
		whole = rejected
	default:
		// No reply, or a failure of the whole batch: each item may or may
		// not have been recorded, as for a single request.
		whole = uncertain
	}
	for k := range outs {
		outs[k] = whole
	}
}

// attempts recomputes from the plan the key of every impression recorded.
func (l *ledger) attempts() ([]attempt, error) {
	per := l.plan.PerRequest()
	atts := make([]attempt, 0, len(l.outcomes))
	for n, rec := range l.records {
		r := l.plan.Request(rec.index)
		for k, o := range l.outcomes[n*per : (n+1)*per] {
			im, err := l.plan.Impression(r.First + uint64(k))
			if err != nil {
				return nil, fmt.Errorf("result for request %d is not in the plan: %w", rec.index, err)
			}
			atts = append(atts, attempt{key: im.Key, rec: uint32(n), item: uint16(k), outcome: o, bot: im.Bot})
		}
	}
	return atts, nil
}

// traffic counts the impressions sent whose results came back, and among
// them the repeats and the bots', from the plan.
func (l *ledger) traffic() (impressions, repeats, bots int) {
	for _, rec := range l.records {
		r := l.plan.Request(rec.index)
		repeats += int(l.plan.repeats(r.First, uint64(r.Count)))
		bots += int(l.plan.bots(r.First, uint64(r.Count)))
	}
	return len(l.outcomes), repeats, bots
}

// impressions is the number of impressions whose outcome the service
// answered: counted, duplicate or filtered.
func (l *ledger) impressions() int {
	return l.tally[counted] + l.tally[duplicate] + l.tally[filtered]
}

// Stats is what GET /api/v1/campaigns/{id}/stats answers. A service that
// does not filter bots has no "filtered" field, which reads as 0; one that
// cannot say how fresh its counts are has no "as_of", which reads as the
// zero time; one before reach has no "unique_users" or "frequency".
type Stats struct {
	LastHour int64 `json:"last_hour"`
	LastDay  int64 `json:"last_day"`
	Total    int64 `json:"total"`
	Filtered int64 `json:"filtered"`
	// UniqueUsers and Frequency are the campaign's reach and impressions
	// per user in each window; nil from a service before reach.
	UniqueUsers *Reach     `json:"unique_users"`
	Frequency   *Frequency `json:"frequency"`
	AsOf        time.Time  `json:"as_of"`
}

// campaignCheck is the verdict on one campaign.
type campaignCheck struct {
	Keys       int   // distinct keys sent by browsers
	Counted    int   // keys the service certainly recorded once
	Uncertain  int   // keys that may or may not have been recorded
	Duplicates int   // answers that said duplicate
	BotKeys    int   // distinct keys sent by bots
	Filtered   int   // bot keys the service certainly filtered
	BotUnsure  int   // bot keys that may or may not have been filtered
	Stats      Stats // what the service reports
	// Ads splits Counted, Uncertain, Filtered and BotUnsure by the ad
	// number of their keys, for the per-ad breakdown; an ad no key of the
	// run named is absent. A map, so that its size follows the ads the
	// run reached, not -ads.
	Ads map[uint64]*adCheck
	// Reports is what the campaign's time series and per-ad breakdown
	// said, once checked; nil if they were not read.
	Reports *reportSummary
	// Reach is what the check of the stats' unique users and frequency
	// found; nil if they were not checked.
	Reach *reachSummary
	// users holds the user of every key that adds to Counted (user<<1|1)
	// or to Uncertain (user<<1), one entry a key, for verifyReach: a
	// slice, appended to in the pass over the keys and sorted once, costs
	// less than a set at a million keys.
	users []uint64
}

// counted adds a key of ad, sent for user, that the service certainly
// recorded once.
func (cc *campaignCheck) counted(ad *adCheck, user uint64) {
	cc.Counted++
	ad.Counted++
	cc.users = append(cc.users, user<<1|1)
}

// adCheck is the ledger of one ad of a campaign: its keys' counts as in
// campaignCheck.
type adCheck struct {
	Counted, Uncertain, Filtered, BotUnsure int
}

// ad returns the ledger of ad n, creating it.
func (cc *campaignCheck) ad(n uint64) *adCheck {
	if cc.Ads == nil {
		cc.Ads = map[uint64]*adCheck{}
	}
	a := cc.Ads[n]
	if a == nil {
		a = &adCheck{}
		cc.Ads[n] = a
	}
	return a
}

// Verdict is the outcome of a verification.
type Verdict struct {
	Campaigns []campaignCheck
	Uncertain int // impressions with no definite answer
	Rejected  int // impressions answered 4xx
	// Reads and ReadsFailed count the stats reads made during the attack.
	Reads, ReadsFailed int
	// Problems are contradictions and mismatches, each a sentence.
	Problems []string
}

// OK reports whether the service's counts agree with its replies.
func (v Verdict) OK() bool { return len(v.Problems) == 0 }

// verify checks every key's answers, then each campaign's stats against
// the keys the service acknowledged. stats holds one entry per plan
// campaign; elapsed is how long ago the first impression was sent, which
// decides whether last_hour and last_day must equal total.
//
// The rules, for each key (every key is new to the service, because the
// campaigns are new; a key sent by a bot is a key of its own, since the
// service dedups filtered impressions apart from the others):
//   - at most one answer says counted: a second one is a double count;
//   - an answer that says duplicate needs a request for the same key that
//     could have been recorded before that answer was sent back: the one
//     counted, or, if none was, an uncertain one, sent before the answer
//     ended. Answers for one key race, so a first sighting answered
//     "duplicate" is fine while its repeat was in flight. Inside one batch
//     there is no race: the items are recorded in order, so an item
//     answered duplicate before a later item of the same key was counted
//     is a contradiction;
//   - the key then adds exactly one to its campaign's total if an answer
//     said counted or duplicate, zero or one if the only other answers are
//     uncertain, and zero otherwise;
//   - a bot's key is never counted or a duplicate, and adds exactly one to
//     the campaign's filtered stat if an answer said filtered (a filtered
//     impression answers so whether or not it was new), zero or one if
//     the only other answers are uncertain. A browser's key is never
//     filtered.
//
// The stats reads made during the attack are checked too; see verifyReads.
func (l *ledger) verify(stats []Stats, elapsed time.Duration) Verdict {
	atts, err := l.attempts()
	if err != nil {
		v := Verdict{Campaigns: make([]campaignCheck, l.plan.Campaigns())}
		v.Problems = append(append(v.Problems, l.problems...), err.Error())
		return v
	}
	return l.verifyAttempts(atts, stats, elapsed)
}

// verifyAttempts is verify on the attempts given, which it sorts.
func (l *ledger) verifyAttempts(atts []attempt, stats []Stats, elapsed time.Duration) Verdict {
	v := Verdict{Campaigns: make([]campaignCheck, l.plan.Campaigns())}
	v.Problems = append(v.Problems, l.problems...)
	for c := range v.Campaigns {
		// Keys are dealt to campaigns in turn, so each holds about its
		// share of the attempts' keys, and its users are seldom copied.
		v.Campaigns[c].users = make([]uint64, 0, len(atts)/len(v.Campaigns)+1)
	}
	slices.SortFunc(atts, func(a, b attempt) int {
		ra, rb := &l.records[a.rec], &l.records[b.rec]
		return cmp.Or(cmp.Compare(a.key, b.key), compareBool(a.bot, b.bot), cmp.Compare(ra.start, rb.start),
			cmp.Compare(ra.index, rb.index), cmp.Compare(a.item, b.item))
	})
	for lo := 0; lo < len(atts); {
		hi := lo + 1
		for hi < len(atts) && atts[hi].key == atts[lo].key && atts[hi].bot == atts[lo].bot {
			hi++
		}
		if atts[lo].bot {
			l.verifyBotKey(atts[lo:hi], &v)
		} else {
			l.verifyKey(atts[lo:hi], &v)
		}
		lo = hi
	}
	v.Reads, v.ReadsFailed = len(l.reads), l.readsFailed
	l.verifyReads(atts, &v)
	for c := range v.Campaigns {
		cc := &v.Campaigns[c]
		cc.Stats = stats[c]
		lo, hi := int64(cc.Counted), int64(cc.Counted+cc.Uncertain)
		if got := cc.Stats.Total; got < lo || got > hi {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: stats total is %d, but the replies acknowledged %s", c, got, expectRange(lo, hi)))
		}
		lo, hi = int64(cc.Filtered), int64(cc.Filtered+cc.BotUnsure)
		if got := cc.Stats.Filtered; got < lo || got > hi {
			v.Problems = append(v.Problems, fmt.Sprintf("campaign %d: stats filtered is %d, but the replies filtered %s of bots", c, got, expectRange(lo, hi)))
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

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// verifyKey judges the attempts of one browser key, sorted by start, then
// request and item.
func (l *ledger) verifyKey(atts []attempt, v *Verdict) {
	cc := &v.Campaigns[l.plan.campaignOf(atts[0].key)]
	user, adN, _ := l.plan.slot(atts[0].key)
	ad := cc.ad(adN)
	cc.Keys++
	var (
		recorded  []attempt
		unsure    []attempt
		dups      []attempt
		firstDupE = time.Duration(1<<63 - 1) // earliest end of a duplicate answer
	)
	for _, a := range atts {
		switch a.outcome {
		case counted:
			recorded = append(recorded, a)
		case duplicate:
			dups = append(dups, a)
			firstDupE = min(firstDupE, l.records[a.rec].end)
		case uncertain:
			unsure = append(unsure, a)
			v.Uncertain++
		case rejected:
			v.Rejected++
		case unreadable:
			v.Problems = append(v.Problems, fmt.Sprintf("%s (%s) was answered %d without saying whether it counted", l.name(a), l.describe(a), l.records[a.rec].code))
		case filtered:
			v.Problems = append(v.Problems, fmt.Sprintf("%s (%s) was answered filtered, though it carried a browser's User-Agent", l.name(a), l.describe(a)))
		}
	}
	cc.Duplicates += len(dups)
	switch {
	case len(recorded) > 1:
		v.Problems = append(v.Problems, fmt.Sprintf("%s was counted %d times: %s", l.describe(atts[0]), len(recorded), l.names(recorded)))
		cc.counted(ad, user)
	case len(recorded) == 1:
		rec := recorded[0]
		sent := l.records[rec.rec].start
		for _, d := range dups {
			switch answered := l.records[d.rec].end; {
			case sent >= answered:
				v.Problems = append(v.Problems, fmt.Sprintf("%s (%s) was answered duplicate at +%v, before %s, which was counted, was sent at +%v",
					l.name(d), l.describe(d), answered, l.name(rec), sent))
			case d.rec == rec.rec && d.item < rec.item:
				v.Problems = append(v.Problems, fmt.Sprintf("%s (%s) was answered duplicate, but %s, later in the same batch, was counted",
					l.name(d), l.describe(d), l.name(rec)))
			}
		}
		cc.counted(ad, user)
	case len(dups) > 0:
		// Nothing said counted, so an uncertain request must have been
		// recorded before the first duplicate answer.
		if len(unsure) == 0 || l.records[unsure[0].rec].start >= firstDupE {
			v.Problems = append(v.Problems, fmt.Sprintf("%s was answered duplicate by %s, but no request for it was counted or could have been before",
				l.describe(atts[0]), l.names(dups)))
		}
		cc.counted(ad, user)
	case len(unsure) > 0:
		cc.Uncertain++
		ad.Uncertain++
		cc.users = append(cc.users, user<<1)
	}
}

// verifyBotKey judges the attempts of one key sent by a bot.
func (l *ledger) verifyBotKey(atts []attempt, v *Verdict) {
	cc := &v.Campaigns[l.plan.campaignOf(atts[0].key)]
	cc.BotKeys++
	var wasFiltered, unsure bool
	var counts []attempt
	for _, a := range atts {
		switch a.outcome {
		case filtered:
			wasFiltered = true
		case counted, duplicate:
			counts = append(counts, a)
		case uncertain:
			unsure = true
			v.Uncertain++
		case rejected:
			v.Rejected++
		case unreadable:
			v.Problems = append(v.Problems, fmt.Sprintf("%s (%s) was answered %d without saying whether it was filtered", l.name(a), l.describe(a), l.records[a.rec].code))
		}
	}
	if len(counts) > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%s was sent by a bot but answered counted or duplicate, not filtered, by %s: is the bot filter off?",
			l.describe(atts[0]), l.names(counts)))
	}
	switch {
	case wasFiltered:
		cc.Filtered++
		cc.ad(l.plan.adOf(atts[0].key)).Filtered++
	case unsure:
		cc.BotUnsure++
		cc.ad(l.plan.adOf(atts[0].key)).BotUnsure++
	}
}

// verifyReads checks the stats reads made during the attack against two
// facts that hold however requests interleave: a campaign's total never
// falls, so a read sent after another was answered shows at least its
// total; and a total can only count keys whose first request was sent
// before the read was answered.
func (l *ledger) verifyReads(atts []attempt, v *Verdict) {
	if len(l.reads) == 0 {
		return
	}
	firstSent := l.firstSent(atts)
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

// firstSent returns, per campaign and sorted, when each browser key was
// first sent: only those can add to a total.
func (l *ledger) firstSent(atts []attempt) [][]time.Duration {
	first := map[uint64]time.Duration{}
	for _, a := range atts {
		if a.bot {
			continue
		}
		if t, ok := first[a.key]; !ok || l.records[a.rec].start < t {
			first[a.key] = l.records[a.rec].start
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
	who := ""
	if a.bot {
		who = ", bot"
	}
	r := l.plan.Request(l.records[a.rec].index)
	im, err := l.plan.Impression(r.First + uint64(a.item))
	if r.Read || err != nil || im.Key != a.key {
		return fmt.Sprintf("key %d (campaign %d%s)", a.key, l.plan.campaignOf(a.key), who)
	}
	return fmt.Sprintf("key %d (campaign %d, %s, %s%s)", a.key, im.Campaign, im.UserID(), im.AdID(), who)
}

// name names the request an attempt came in, and its item in a batch.
func (l *ledger) name(a attempt) string {
	if l.mode == modeBatch {
		return fmt.Sprintf("request %d item %d", l.records[a.rec].index, a.item)
	}
	return fmt.Sprintf("request %d", l.records[a.rec].index)
}

func (l *ledger) names(atts []attempt) string {
	s := make([]string, len(atts))
	for i, a := range atts {
		s[i] = l.name(a)
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
	fmt.Fprintf(&b, "  %-9s %8s %8s %9s %10s %10s %10s %10s %8s %8s %9s %10s\n", "campaign", "keys", "counted", "uncertain", "duplicates", "total", "last_hour", "last_day",
		"bot keys", "filtered", "uncertain", "stats filt")
	for c, cc := range v.Campaigns {
		fmt.Fprintf(&b, "  %-9d %8d %8d %9d %10d %10d %10d %10d %8d %8d %9d %10d\n", c, cc.Keys, cc.Counted, cc.Uncertain, cc.Duplicates, cc.Stats.Total, cc.Stats.LastHour, cc.Stats.LastDay,
			cc.BotKeys, cc.Filtered, cc.BotUnsure, cc.Stats.Filtered)
	}
	v.writeReports(&b)
	v.writeReach(&b)
	fmt.Fprintf(&b, "  impressions without a definite answer: %d; impressions rejected with 4xx: %d\n", v.Uncertain, v.Rejected)
	fmt.Fprintf(&b, "  stats reads during the attack: %d checked, %d failed\n", v.Reads, v.ReadsFailed)
	if v.OK() {
		b.WriteString("verification passed: every campaign's stats match the impressions the service acknowledged\n")
		if len(v.Campaigns) > 0 && v.Campaigns[0].Reports != nil {
			b.WriteString("  and so do its time series and its per-ad breakdown, ad by ad\n")
		}
		if len(v.Campaigns) > 0 && v.Campaigns[0].Reach != nil {
			b.WriteString("  and its unique users and frequency match the users whose impressions counted\n")
		}
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

// writeReports adds the table of what the campaigns' reports said, if
// they were read: the points and sums of the day and minute series, the
// breakdown's ads, pages and sums, and the first ad's own day series.
func (v Verdict) writeReports(b *strings.Builder) {
	if len(v.Campaigns) == 0 || v.Campaigns[0].Reports == nil {
		return
	}
	fmt.Fprintf(b, "  %-9s %8s %10s %8s %10s %6s %6s %10s %10s %8s %10s\n", "campaign", "days", "day sum", "minutes", "minute sum",
		"ads", "pages", "ads total", "ads filt", "top ad", "its days")
	for c, cc := range v.Campaigns {
		r := cc.Reports
		if r == nil {
			continue
		}
		minutes, minuteSum := "-", "-"
		if r.MinutePoints >= 0 {
			minutes, minuteSum = fmt.Sprint(r.MinutePoints), fmt.Sprint(r.MinuteSum)
		}
		fmt.Fprintf(b, "  %-9d %8d %10d %8s %10s %6d %6d %10d %10d %8s %10d\n", c, r.DayPoints, r.DaySum, minutes, minuteSum,
			r.AdsListed, r.Pages, r.AdsTotal, r.AdsFiltered, r.TopAd, r.TopAdDaySum)
	}
}
