package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

// answer is a Result as the suite compares it: the outcome, and the kind
// of error rather than its message, which differs between stores.
type answer struct {
	Outcome adcount.Outcome
	Err     error // nil, adcount.ErrInvalid, adcount.ErrNotFound or adcount.ErrNotStarted
}

// Short names for the answers the batch cases expect.
var (
	counted    = answer{Outcome: adcount.Counted}
	duplicate  = answer{Outcome: adcount.Duplicate}
	filtered   = answer{Outcome: adcount.Filtered}
	invalid    = answer{Err: adcount.ErrInvalid}
	notFound   = answer{Err: adcount.ErrNotFound}
	notStarted = answer{Err: adcount.ErrNotStarted}
)

// answerOf reduces a result to its answer. An error of another kind is
// kept whole, so that it shows in the comparison.
func answerOf(r adcount.Result) answer {
	if r.Err == nil {
		return answer{Outcome: r.Outcome}
	}
	for _, kind := range []error{adcount.ErrInvalid, adcount.ErrNotFound, adcount.ErrNotStarted} {
		if errors.Is(r.Err, kind) {
			return answer{Outcome: r.Outcome, Err: kind}
		}
	}
	return answer{Outcome: r.Outcome, Err: r.Err}
}

func answersOf(res []adcount.Result) []answer {
	out := make([]answer, len(res))
	for i, r := range res {
		out[i] = answerOf(r)
	}
	return out
}

// single records imp alone and returns its answer; a store failure fails
// the test.
func (f *fixture) single(t *testing.T, imp adcount.Impression) answer {
	t.Helper()
	out, err := f.store.RecordImpression(context.Background(), imp)
	if err != nil {
		a := answerOf(adcount.Result{Err: err})
		require.Contains(t, []error{adcount.ErrInvalid, adcount.ErrNotFound, adcount.ErrNotStarted}, a.Err, "a store failure: %v", err)
		return a
	}
	return answer{Outcome: out}
}

// whichCampaign says which campaign an item of a table is sent to.
type whichCampaign uint8

const (
	live    whichCampaign = iota // a started campaign, one per way of sending
	future                       // a campaign that starts tomorrow, one per way of sending
	unknown                      // an ID no campaign has, the same for both ways
)

// item is one impression of a batch table.
type item struct {
	campaign whichCampaign
	user, ad string
	filtered bool
	want     answer
}

func testBatchMatchesSingles(t *testing.T, f *fixture) {
	items := []item{
		// A first sighting counts.
		{campaign: live, user: "u1", ad: "a1", want: counted},
		// Its repeat, later in the same batch, is a duplicate.
		{campaign: live, user: "u1", ad: "a1", want: duplicate},
		// Another ad for the same user is another key.
		{campaign: live, user: "u1", ad: "a2", want: counted},
		// The counted impression's IDs, filtered: its own key, so it
		// counts as filtered, not as a duplicate of the real one.
		{campaign: live, user: "u1", ad: "a1", filtered: true, want: filtered},
		// A filtered repeat is still answered Filtered, and counts once.
		{campaign: live, user: "u1", ad: "a1", filtered: true, want: filtered},
		// Filtered first, then the real impression: the real one counts.
		{campaign: live, user: "u2", ad: "a1", filtered: true, want: filtered},
		{campaign: live, user: "u2", ad: "a1", want: counted},
		// Invalid items fail alone, filtered or not.
		{campaign: live, user: "", ad: "a1", want: invalid},
		{campaign: live, user: "u3", ad: "", filtered: true, want: invalid},
		// Validation comes before the campaign is looked up.
		{campaign: unknown, user: "", ad: "a1", want: invalid},
		// An unknown campaign, filtered or not.
		{campaign: unknown, user: "u1", ad: "a1", want: notFound},
		{campaign: unknown, user: "u1", ad: "a1", filtered: true, want: notFound},
		// A campaign not yet started refuses real and filtered impressions
		// alike: only a started campaign's impressions are ever Filtered.
		{campaign: future, user: "u1", ad: "a1", want: notStarted},
		{campaign: future, user: "u1", ad: "a1", filtered: true, want: notStarted},
		// The first key once more, after all that: still a duplicate.
		{campaign: live, user: "u1", ad: "a1", want: duplicate},
		// And a new key at the end counts.
		{campaign: live, user: "u4", ad: "a1", want: counted},
	}
	unknownID := uuid.NewString()
	type way struct{ live, future adcount.Campaign }
	viaBatch := way{f.campaign(t, Epoch), f.campaign(t, f.now().Add(24*time.Hour))}
	viaSingles := way{f.campaign(t, Epoch), f.campaign(t, f.now().Add(24*time.Hour))}
	imps := func(w way) []adcount.Impression {
		out := make([]adcount.Impression, len(items))
		for i, it := range items {
			id := map[whichCampaign]string{live: w.live.ID, future: w.future.ID, unknown: unknownID}[it.campaign]
			out[i] = adcount.Impression{CampaignID: id, UserID: it.user, AdID: it.ad, Filtered: it.filtered}
		}
		return out
	}
	want := make([]answer, len(items))
	for i, it := range items {
		want[i] = it.want
	}

	gotBatch := answersOf(f.batch(t, imps(viaBatch)))
	var gotSingles []answer
	for _, imp := range imps(viaSingles) {
		gotSingles = append(gotSingles, f.single(t, imp))
	}
	assert.Equal(t, want, gotBatch, "the batch's results")
	assert.Equal(t, gotSingles, gotBatch, "the batch answers what one by one answers")
	assert.Equal(t, want, gotSingles, "one by one")

	// Counted: u1 twice (two ads), u2 and u4.
	wantStats := adcount.Stats{LastHour: 4, LastDay: 4, Total: 4, Filtered: 2,
		UniqueUsers: adcount.UniqueUsers{LastHour: 3, LastDay: 3, Total: 3}}
	for _, w := range []way{viaBatch, viaSingles} {
		got := f.allStats(t, w.live.ID)
		got.CampaignID = ""
		assert.Equal(t, wantStats, got, "the started campaign's counts")
		got = f.allStats(t, w.future.ID)
		got.CampaignID = ""
		assert.Equal(t, adcount.Stats{}, got, "the campaign not started counts nothing")
	}
	_, err := f.store.Campaign(context.Background(), unknownID)
	assert.ErrorIs(t, err, adcount.ErrNotFound, "no campaign was made up")
}

func testBatchDuplicates(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	imp := func(user string) adcount.Impression {
		return adcount.Impression{CampaignID: c.ID, UserID: user, AdID: "a"}
	}
	steps := []struct {
		name  string
		users []string
		want  []answer
	}{
		// Each repeat is a duplicate of the first, however far apart they
		// are in the batch, and however many there are.
		{"FirstBatch", []string{"x", "y", "x", "x", "y", "z"}, []answer{counted, counted, duplicate, duplicate, duplicate, counted}},
		// The next batch sees the first batch's keys.
		{"NextBatch", []string{"x", "w", "z", "w"}, []answer{duplicate, counted, duplicate, duplicate}},
	}
	for _, st := range steps {
		var imps []adcount.Impression
		for _, u := range st.users {
			imps = append(imps, imp(u))
		}
		assert.Equal(t, st.want, answersOf(f.batch(t, imps)), st.name)
	}
	assert.Equal(t, [3]int64{4, 4, 4}, f.stats(t, c.ID))
	assert.False(t, f.record(t, imp("w")), "a single repeat sees a batch's key")
}

func testBatchBadItems(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	later := f.campaign(t, f.now().Add(24*time.Hour))
	ok := func(user string) adcount.Impression {
		return adcount.Impression{CampaignID: c.ID, UserID: user, AdID: "a"}
	}
	cases := []struct {
		name string
		imp  adcount.Impression
		want answer
		// field is the field an invalid item's error names.
		field string
	}{
		{name: "Good", imp: ok("u1"), want: counted},
		// A user ID over the byte limit.
		{name: "TooLong", imp: adcount.Impression{CampaignID: c.ID, UserID: strings.Repeat("u", adcount.MaxIDBytes+1), AdID: "a"}, want: invalid, field: "user_id"},
		{name: "GoodAfterInvalid", imp: ok("u2"), want: counted},
		// Not valid UTF-8.
		{name: "BadUTF8", imp: adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "\xff"}, want: invalid, field: "ad_id"},
		{name: "UnknownCampaign", imp: adcount.Impression{CampaignID: uuid.NewString(), UserID: "u", AdID: "a"}, want: notFound},
		{name: "GoodAfterUnknown", imp: ok("u3"), want: counted},
		{name: "NotStarted", imp: adcount.Impression{CampaignID: later.ID, UserID: "u", AdID: "a"}, want: notStarted},
		{name: "GoodAfterNotStarted", imp: ok("u4"), want: counted},
	}
	imps := make([]adcount.Impression, len(cases))
	for i, tc := range cases {
		imps[i] = tc.imp
	}
	res := f.batch(t, imps)
	for i, tc := range cases {
		assert.Equal(t, tc.want, answerOf(res[i]), tc.name)
		if tc.field != "" {
			var fe *adcount.FieldError
			if assert.ErrorAs(t, res[i].Err, &fe, tc.name) {
				assert.Equal(t, tc.field, fe.Field, "%s: the error names the field", tc.name)
			}
		}
	}
	assert.Equal(t, [3]int64{4, 4, 4}, f.stats(t, c.ID))
	assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, later.ID))
}

func testBatchLimit(t *testing.T, f *fixture) {
	cases := []struct {
		name string
		n    int
		ok   bool
	}{
		// The limit itself is taken. Each key comes five times, so that a
		// store that writes each new key remotely is not slow here.
		{"MaxBatch", adcount.MaxBatch, true},
		// One more and the whole batch is refused before anything counts.
		{"OverMaxBatch", adcount.MaxBatch + 1, false},
	}
	for _, tc := range cases {
		c := f.campaign(t, Epoch)
		imps := make([]adcount.Impression, tc.n)
		for i := range imps {
			imps[i] = adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("user-", i/5), AdID: "a"}
		}
		res, err := f.store.RecordImpressions(context.Background(), imps)
		if !tc.ok {
			require.ErrorIs(t, err, adcount.ErrInvalid, tc.name)
			assert.Nil(t, res, tc.name)
			assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, c.ID), "%s: nothing counted", tc.name)
			assert.True(t, f.record(t, imps[0]), "%s: no key was kept", tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.Len(t, res, tc.n, tc.name)
		for i, r := range res {
			want := duplicate
			if i%5 == 0 {
				want = counted
			}
			require.Equal(t, want, answerOf(r), "%s: item %d", tc.name, i)
		}
		const n = adcount.MaxBatch / 5
		assert.Equal(t, [3]int64{n, n, n}, f.stats(t, c.ID), tc.name)
	}
}

func testEmptyBatch(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	for _, imps := range [][]adcount.Impression{nil, {}} {
		res, err := f.store.RecordImpressions(context.Background(), imps)
		require.NoError(t, err)
		assert.Empty(t, res)
	}
	assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, c.ID))
}

func testConcurrentBatches(t *testing.T, f *fixture) {
	const (
		workers = 8
		batches = 4  // per worker
		size    = 30 // impressions per batch
		keys    = 60 // distinct (user, filtered) pairs
	)
	c := f.campaign(t, Epoch)
	imp := func(k int) adcount.Impression {
		// A quarter of the keys are filtered impressions, with the same
		// IDs as a real one.
		return adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("user-", k%(keys*3/4)), AdID: "a", Filtered: k >= keys*3/4}
	}
	var counted sync.Map
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				imps := make([]adcount.Impression, size)
				for i := range imps {
					// Workers walk the keys from different offsets, and
					// squares repeat, so a key meets itself in other
					// batches and in its own.
					imps[i] = imp((w*11 + b*7 + i*i) % keys)
				}
				var res []adcount.Result
				var err error
				if w == 0 {
					// One worker sends its impressions one by one, among
					// the batches.
					res = make([]adcount.Result, len(imps))
					for i, x := range imps {
						res[i].Outcome, err = f.store.RecordImpression(context.Background(), x)
						if err != nil {
							break
						}
					}
				} else {
					res, err = f.store.RecordImpressions(context.Background(), imps)
				}
				if err != nil {
					errs <- err
					return
				}
				for i, r := range res {
					switch {
					case r.Err != nil:
						errs <- fmt.Errorf("%+v: %w", imps[i], r.Err)
						return
					case imps[i].Filtered && r.Outcome != adcount.Filtered:
						errs <- fmt.Errorf("%+v answered %v", imps[i], r.Outcome)
						return
					case r.Outcome == adcount.Counted:
						if _, dup := counted.LoadOrStore(imps[i], true); dup {
							errs <- fmt.Errorf("%+v counted twice", imps[i])
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	n := 0
	counted.Range(func(any, any) bool { n++; return true })
	const real, bots = keys * 3 / 4, keys / 4
	assert.Equal(t, real, n, "one reply per real key says it counted")
	got := f.allStats(t, c.ID)
	assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: real, LastDay: real, Total: real, Filtered: bots,
		UniqueUsers: adcount.UniqueUsers{LastHour: real, LastDay: real, Total: real}}, got, "each real key its own user")
}

func testFilteredWindow(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	bot := adcount.Impression{CampaignID: c.ID, UserID: "user-1", AdID: "ad-1", Filtered: true}
	ttl := f.ttl
	steps := []struct {
		name     string
		advance  time.Duration // from the previous step
		filtered int64
	}{
		// The first sighting counts as filtered.
		{"First", 0, 1},
		// A repeat at once, as a retried request: answered, not counted.
		{"RepeatImmediately", 0, 1},
		// Still inside the window one tick before it ends.
		{"RepeatOneTickBeforeTTL", ttl - Tick, 1},
		// The window is [first, first+TTL), as for real impressions.
		{"CountsAgainAtTTL", Tick, 2},
	}
	for _, s := range steps {
		f.clock.Advance(s.advance)
		assert.Equal(t, filtered, f.single(t, bot), s.name)
		got := f.allStats(t, c.ID)
		assert.Equal(t, s.filtered, got.Filtered, s.name)
		assert.Equal(t, [3]int64{0, 0, 0}, [3]int64{got.LastHour, got.LastDay, got.Total}, "%s: a filtered impression is never an impression", s.name)
	}
}

func testFilteredApart(t *testing.T, f *fixture) {
	cases := []struct {
		name string
		// The same IDs are sent four times: filtered or not, in turn,
		// starting with filtered if botFirst.
		botFirst bool
		want     []answer
	}{
		// A bot's impression first must not swallow the real one.
		{"FilteredFirst", true, []answer{filtered, counted, filtered, duplicate}},
		// A real impression first must not swallow the bot's, which an
		// advertiser audits.
		{"RealFirst", false, []answer{counted, filtered, duplicate, filtered}},
	}
	for _, tc := range cases {
		c := f.campaign(t, Epoch)
		var got []answer
		for i := range tc.want {
			bot := (i%2 == 0) == tc.botFirst
			got = append(got, f.single(t, adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a", Filtered: bot}))
		}
		assert.Equal(t, tc.want, got, tc.name)
		assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: 1, LastDay: 1, Total: 1, Filtered: 1,
			UniqueUsers: adcount.UniqueUsers{LastHour: 1, LastDay: 1, Total: 1}}, f.allStats(t, c.ID), tc.name)
	}
}

func testBatchOfFiltered(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	bot := func(user string) adcount.Impression {
		return adcount.Impression{CampaignID: c.ID, UserID: user, AdID: "a", Filtered: true}
	}
	imps := []adcount.Impression{bot("a"), bot("b"), bot("a"), bot("c"), bot("b"), bot("a")}
	want := []answer{filtered, filtered, filtered, filtered, filtered, filtered}
	assert.Equal(t, want, answersOf(f.batch(t, imps)))
	assert.Equal(t, adcount.Stats{CampaignID: c.ID, Filtered: 3}, f.allStats(t, c.ID), "three keys")
	// The same batch again, as a retry would send it: nothing more counts.
	assert.Equal(t, want, answersOf(f.batch(t, imps)))
	assert.Equal(t, adcount.Stats{CampaignID: c.ID, Filtered: 3}, f.allStats(t, c.ID), "a retried batch adds nothing")
}
