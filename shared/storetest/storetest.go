package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
)

// Epoch is where every suite clock starts: the first instant of a window
// bucket, so that tests can say exactly which bucket an impression is in.
var Epoch = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// TTL is the dedup window the suite configures, except in the cases that
// check other windows.
const TTL = time.Hour

// Tick is the finest step in which a store must tell a duplicate from a
// recount: dedup windows are exact to the millisecond.
const Tick = time.Millisecond

// NewStore returns a fresh store that reads now as its clock and ignores
// repeats for ttl. Stores backed by a shared service may reuse it: the suite
// gives every campaign a new random ID. A store that cannot take an
// injected clock, such as a server in another process, ignores now and is
// run with RealClock.
type NewStore func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store

// CampaignCreator is implemented by stores that choose campaign IDs
// themselves, such as a client of the HTTP API, which cannot keep
// adcount.Store's promise to store a caller-chosen ID. Run such stores with
// StoreChoosesIDs: the suite then creates every campaign through Create and
// leaves out the cases that need a caller-chosen ID.
type CampaignCreator interface {
	// Create stores a new campaign under an ID of the store's choosing and
	// returns it.
	Create(ctx context.Context, name string, start time.Time) (adcount.Campaign, error)
}

// Reopen closes s and returns a store opened on what s kept, with the same
// clock and dedup TTL, as a restarted process would open it. The suite
// uses the returned store from then on.
type Reopen func(t *testing.T, s adcount.Store) adcount.Store

// Option adapts the suite to what a store can do.
type Option func(*options)

type options struct {
	realClock       bool
	storeChoosesIDs bool
	reopen          Reopen
}

// RealClock says the store reads the real clock, which the suite cannot
// move: only the cases that need no clock move run. The now passed to
// NewStore is then time.Now.
func RealClock() Option {
	return func(o *options) { o.realClock = true }
}

// StoreChoosesIDs says the store implements CampaignCreator and cannot
// store a campaign under a caller-chosen ID: the cases that need one, such
// as conflicting creates, do not run.
func StoreChoosesIDs() Option {
	return func(o *options) { o.storeChoosesIDs = true }
}

// WithReopen adds the cases that close a store and open it again, for
// stores that persist.
func WithReopen(reopen Reopen) Option {
	return func(o *options) { o.reopen = reopen }
}

// needs is what a case asks of the store beyond the adcount.Store contract.
type needs uint8

const (
	needClock     needs = 1 << iota // the suite moves the store's clock
	needChosenIDs                   // the suite chooses campaign IDs
	needReopen                      // the store persists and can be reopened
)

func (o options) can(n needs) bool {
	return (n&needClock == 0 || !o.realClock) &&
		(n&needChosenIDs == 0 || !o.storeChoosesIDs) &&
		(n&needReopen == 0 || o.reopen != nil)
}

// suiteCase is one conformance case.
type suiteCase struct {
	name  string
	needs needs
	ttl   time.Duration // the store's dedup window; TTL if zero
	test  func(t *testing.T, f *fixture)
}

// cases is the whole suite. Each comment says why the case exists.
var cases = []suiteCase{
	// A campaign reads back as stored: ID, name and the exact start
	// instant, whatever zone it was given in; a new campaign has no counts.
	{name: "CampaignRoundTrips", test: testCampaignRoundTrips},
	// A second create of a taken ID fails and must not overwrite the
	// first campaign.
	{name: "CampaignConflict", needs: needChosenIDs, test: testCampaignConflict},
	// Racing creates of one ID, as two admin requests retried at once
	// would make: exactly one wins, the rest get ErrConflict, and the
	// winner's campaign is the one stored.
	{name: "ConcurrentCreatesOfOneIDHaveOneWinner", needs: needChosenIDs, test: testConcurrentCreates},
	// Reads and writes of a campaign that does not exist are ErrNotFound,
	// never a zero value.
	{name: "UnknownCampaign", test: testUnknownCampaign},
	// Every broken field is ErrInvalid, and nothing is counted.
	{name: "InvalidImpressionChangesNothing", test: testInvalidImpression},
	// Before its start a campaign refuses impressions, counts nothing and
	// keeps no dedup key, so the same impression counts at the start.
	{name: "NotStartedChangesNothing", needs: needClock, test: testNotStarted},
	// A campaign that starts tomorrow refuses impressions today; this is
	// the part of NotStartedChangesNothing a real clock can check.
	{name: "FutureCampaignRefusesImpressions", test: testFutureCampaign},
	// The dedup window is [first, first+TTL), exact to the millisecond.
	{name: "DedupAtTheTTLBoundary", needs: needClock, test: testDedupBoundary},
	// The window is the configured TTL, not a constant hour: a short one
	// that is not a whole number of buckets ...
	{name: "DedupHonoursA90SecondTTL", needs: needClock, ttl: 90 * time.Second, test: testDedupBoundary},
	// ... and the longest window a store must keep.
	{name: "DedupHonoursTheLongestTTL", needs: needClock, ttl: adcount.MaxDedupTTL, test: testDedupBoundary},
	// The dedup key is all three fields, with no ambiguity between them.
	{name: "DedupKeyIsAllThreeFields", test: testDedupKeyFields},
	// last_hour and last_day slide with the clock; total never falls.
	{name: "WindowsSlideWithTheClock", needs: needClock, test: testWindowsSlide},
	// A window's edge is exact to within one bucket.
	{name: "WindowEdgeWithinOneBucket", needs: needClock, test: testWindowEdge},
	// Concurrent repeats of the same keys count each key exactly once.
	{name: "ConcurrentImpressionsCountExactly", test: testConcurrent},
	// A caller that has given up, by cancelling or by a deadline that has
	// passed, gets an error and changes nothing: no campaign, no count and
	// no dedup key that would swallow the retry.
	{name: "DoneContextChangesNothing", test: testDoneContext},
	// What a persisting store acknowledged survives a close and reopen:
	// campaigns, totals, filtered counts, both windows and live dedup keys,
	// which still expire at their original time.
	{name: "ReopenKeepsEverythingAcknowledged", needs: needClock | needReopen, test: testReopen},

	// Batches.

	// The contract's promise: a batch answers exactly what the same
	// impressions sent one by one would have, outcome and error kind for
	// each, and leaves the same counts.
	{name: "BatchGivesTheResultsOfOneByOne", test: testBatchMatchesSingles},
	// A repeat inside one batch is a duplicate of the earlier item, as if
	// it had come after it alone, and a later batch sees the keys.
	{name: "DuplicatesInsideABatch", test: testBatchDuplicates},
	// An invalid item, an unknown campaign or one not started fails its
	// own result only; the items around it count.
	{name: "BadItemsDoNotFailTheirNeighbours", test: testBatchBadItems},
	// A batch of MaxBatch is taken; one more item and the batch is refused
	// whole, with nothing counted and no key kept.
	{name: "BatchLimit", test: testBatchLimit},
	// An empty batch is no error and records nothing.
	{name: "EmptyBatch", test: testEmptyBatch},
	// Concurrent batches that overlap on keys, and single impressions
	// among them, count each key exactly once.
	{name: "ConcurrentBatchesCountExactly", test: testConcurrentBatches},

	// Filtered impressions.

	// A filtered impression counts in Filtered, never in the impression
	// counts, and once per dedup window, so a retried request cannot
	// inflate it.
	{name: "FilteredCountsApartOncePerWindow", needs: needClock, test: testFilteredWindow},
	// A filtered impression has its own dedup key: it never suppresses a
	// real impression with the same IDs, nor a real one it.
	{name: "FilteredAndRealNeverSuppressEachOther", test: testFilteredApart},
	// A batch of filtered impressions, repeats included, answers Filtered
	// for each and counts each key once.
	{name: "BatchOfFiltered", test: testBatchOfFiltered},

	// Lifecycle and reports.

	// End time, pause and name read back as changed; a bad patch is
	// ErrInvalid and changes nothing, not even its valid fields.
	{name: "LifecycleRoundTrips", test: testLifecycleRoundTrips},
	// Patches of different fields racing each other all apply: none is
	// lost to a read-modify-write of another.
	{name: "ConcurrentPatchesLoseNothing", test: testConcurrentPatches},
	// A paused or ended campaign refuses impressions, alone or in a
	// batch, with its own error, and keeps no dedup key; resuming or
	// moving the end brings counting back. An end wins over a pause.
	{name: "PauseAndEndRefuseImpressions", needs: needClock, test: testPauseAndEndRefuseImpressions},
	// The list is newest first, every campaign exactly once across pages,
	// and campaigns created while it is read do not shift later pages.
	{name: "ListIsNewestFirstAndStable", needs: needClock, test: testListNewestFirst},
	// The status filter keeps exactly the campaigns with that status now.
	{name: "ListFiltersByStatus", needs: needClock, test: testListFiltersByStatus},
	// The name search keeps the campaigns whose name holds the text,
	// whatever its case, combines with the status filter, pages through
	// every match, and ends with an empty list when nothing matches.
	{name: "ListSearchesByName", needs: needClock, test: testListSearchesByName},
	// The series and the stats are two views of the same counts: minute
	// points over the last hour and day sum to last_hour and last_day,
	// hour and day points since the start to the total, and each hour to
	// its minutes, across hour and day boundaries.
	{name: "SeriesAgreeWithStats", needs: needClock, test: testSeriesAgreeWithStats},
	// Points are whole UTC intervals, zero-filled, each with exactly the
	// impressions counted in it, for the campaign and for each ad.
	{name: "SeriesPointsAreExact", needs: needClock, test: testSeriesPointsAreExact},
	// The breakdown orders ads by total, then ID, pages through them all,
	// counts filtered impressions per ad, and its windows slide.
	{name: "AdBreakdown", needs: needClock, test: testAdBreakdown},
	// An ad's last_day is whole hours, as documented: it never reaches
	// back more than 24 hours, and may stop short of the campaign's.
	{name: "AdLastDayCountsWholeHours", needs: needClock, test: testAdLastDayCountsWholeHours},
	// A persisting store keeps lifecycle changes, series and the
	// breakdown across a reopen.
	{name: "ReopenKeepsReports", needs: needClock | needReopen, test: testReopenKeepsReports},

	// Reach.

	// Up to adcount.ExactReach users, every window is exact, and so is
	// frequency.
	{name: "ReachIsExactForSmallPopulations", test: testReachIsExactForSmallPopulations},
	// Duplicates, filtered and refused impressions add no reach.
	{name: "ReachCountsOnlyCountedImpressions", test: testReachCountsOnlyCountedImpressions},
	// Every window's reach is the distinct users of the buckets it
	// merges, as the clock crosses ten-minute, hour and day boundaries.
	{name: "ReachWindowsSlide", needs: needClock, test: testReachWindowsSlide},
	// Hour and day points carry the unique users of their interval for
	// as long as reach is kept, and no others do.
	{name: "SeriesCarryReach", needs: needClock, test: testSeriesCarryReach},
	// Past the exact range, windows and points merged from several
	// buckets stay within the sketch's error.
	{name: "ReachLargePopulations", needs: needClock, test: testReachLargePopulations},
	// A persisting store keeps reach across a reopen, and a user seen
	// before the reopen adds none after it.
	{name: "ReopenKeepsReach", needs: needClock | needReopen, test: testReopenKeepsReach},
}

// Run runs the conformance suite against the stores that newStore makes,
// and returns the names of the cases it ran. Each case gets its own store
// and clock and runs in parallel.
//
// Cases that need what opts say the store cannot do, such as moving its
// clock, are not run, and they are neither skipped nor passed: callers
// should assert that the returned list holds as many cases as they expect.
func Run(t *testing.T, newStore NewStore, opts ...Option) []string {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var ran []string
	for _, tc := range cases {
		if !o.can(tc.needs) {
			continue
		}
		ran = append(ran, tc.name)
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ttl := tc.ttl
			if ttl == 0 {
				ttl = TTL
			}
			f := &fixture{opts: o, ttl: ttl, now: time.Now}
			if !o.realClock {
				f.clock = NewClock(Epoch)
				f.now = f.clock.Now
			}
			f.store = newStore(t, f.now, ttl)
			tc.test(t, f)
		})
	}
	require.NotEmpty(t, ran, "no conformance case can run with these options")
	return ran
}

type fixture struct {
	opts  options
	clock *Clock // nil with RealClock
	now   func() time.Time
	ttl   time.Duration
	store adcount.Store
}

// campaign creates a campaign that starts at start, through Create if the
// store chooses IDs.
func (f *fixture) campaign(t *testing.T, start time.Time) adcount.Campaign {
	t.Helper()
	if f.opts.storeChoosesIDs {
		cc, ok := f.store.(CampaignCreator)
		require.True(t, ok, "StoreChoosesIDs needs a store that implements storetest.CampaignCreator, got %T", f.store)
		c, err := cc.Create(context.Background(), "Spring sale", start)
		require.NoError(t, err)
		require.NotEmpty(t, c.ID)
		return c
	}
	c, err := adcount.NewCampaign(uuid.NewString(), "Spring sale", start)
	require.NoError(t, err)
	c.CreatedAt = f.now().Truncate(time.Millisecond)
	require.NoError(t, f.store.CreateCampaign(context.Background(), c))
	return c
}

func (f *fixture) record(t *testing.T, imp adcount.Impression) bool {
	t.Helper()
	out, err := f.store.RecordImpression(context.Background(), imp)
	require.NoError(t, err)
	require.Contains(t, []adcount.Outcome{adcount.Counted, adcount.Duplicate}, out)
	return out == adcount.Counted
}

// batch records imps as one batch and returns the results, which must be
// one per impression.
func (f *fixture) batch(t *testing.T, imps []adcount.Impression) []adcount.Result {
	t.Helper()
	res, err := f.store.RecordImpressions(context.Background(), imps)
	require.NoError(t, err)
	require.Len(t, res, len(imps))
	return res
}

// allStats returns the campaign's stats, the filtered count included,
// once they include everything acknowledged so far: a store that
// aggregates behind its writes (adcount.Settler) is read after its
// watermark has passed the call, never after a sleep. Every store must
// say how fresh its counts are; AsOf is then cleared, so that cases can
// compare counts whole.
func (f *fixture) allStats(t *testing.T, id string) adcount.Stats {
	t.Helper()
	f.settle(t)
	s, err := f.store.Stats(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, id, s.CampaignID)
	assert.False(t, s.AsOf.IsZero(), "stats say how fresh they are")
	s.AsOf = time.Time{} // checked; the cases compare counts
	return s
}

// SettleBound is how long the suite lets a store that aggregates behind
// its writes take to include them in Stats. Stores promise 2 seconds under
// normal operation; the bound leaves room for a machine busy with parallel
// tests, so that the suite never flakes on speed, only on counts.
const SettleBound = 30 * time.Second

// stats returns last_hour, last_day and total as one comparable value.
func (f *fixture) stats(t *testing.T, id string) [3]int64 {
	t.Helper()
	s := f.allStats(t, id)
	return [3]int64{s.LastHour, s.LastDay, s.Total}
}

func testCampaignRoundTrips(t *testing.T, f *fixture) {
	start := time.Date(2026, 3, 1, 12, 30, 15, 123456789, time.FixedZone("CET", 3600))
	c := f.campaign(t, start)
	got, err := f.store.Campaign(context.Background(), c.ID)
	require.NoError(t, err)
	assert.Equal(t, c.ID, got.ID)
	assert.Equal(t, "Spring sale", got.Name)
	assert.True(t, start.Equal(got.StartTime), "start time %v, want %v", got.StartTime, start)
	assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, c.ID), "a new campaign has no impressions")
}

func testCampaignConflict(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	again := c
	again.Name = "Other"
	err := f.store.CreateCampaign(context.Background(), again)
	require.ErrorIs(t, err, adcount.ErrConflict)
	got, err := f.store.Campaign(context.Background(), c.ID)
	require.NoError(t, err)
	assert.Equal(t, "Spring sale", got.Name, "a conflicting create must not overwrite")
}

func testUnknownCampaign(t *testing.T, f *fixture) {
	id := uuid.NewString()
	_, err := f.store.Campaign(context.Background(), id)
	require.ErrorIs(t, err, adcount.ErrNotFound)
	_, err = f.store.Stats(context.Background(), id)
	require.ErrorIs(t, err, adcount.ErrNotFound)
	_, err = f.store.RecordImpression(context.Background(), adcount.Impression{CampaignID: id, UserID: "u", AdID: "a"})
	require.ErrorIs(t, err, adcount.ErrNotFound)
}

func testInvalidImpression(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	long := string(make([]byte, adcount.MaxIDBytes+1))
	for _, imp := range []adcount.Impression{
		{CampaignID: c.ID, UserID: "", AdID: "a"},   // empty user
		{CampaignID: c.ID, UserID: "u", AdID: ""},   // empty ad
		{CampaignID: c.ID, UserID: long, AdID: "a"}, // over the byte limit
		{CampaignID: c.ID, UserID: "u", AdID: "\xff"},
	} {
		_, err := f.store.RecordImpression(context.Background(), imp)
		require.ErrorIs(t, err, adcount.ErrInvalid)
	}
	assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, c.ID))
}

func testNotStarted(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch.Add(time.Minute))
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}
	f.clock.Advance(time.Minute - time.Nanosecond)
	_, err := f.store.RecordImpression(context.Background(), imp)
	require.ErrorIs(t, err, adcount.ErrNotStarted, "one tick before the start")
	assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, c.ID))

	f.clock.Advance(time.Nanosecond)
	assert.True(t, f.record(t, imp), "exactly at the start it counts, and the rejected try left no dedup entry")
	assert.Equal(t, [3]int64{1, 1, 1}, f.stats(t, c.ID))
}

func testDedupBoundary(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	imp := adcount.Impression{CampaignID: c.ID, UserID: "user-1", AdID: "ad-1"}
	require.True(t, f.record(t, imp), "first sighting counts")

	ttl := f.ttl
	steps := []struct {
		name    string
		advance time.Duration // from the previous step
		counted bool
		total   int64
	}{
		// A repeat straight away is the common case of a double-fired tag.
		{"DuplicateImmediately", 0, false, 1},
		// Still inside the window one tick before it ends.
		{"DuplicateOneTickBeforeTTL", ttl - Tick, false, 1},
		// The window is [first, first+TTL): at exactly TTL it counts again,
		// and that sighting opens a new window.
		{"CountsAgainAtTTL", Tick, true, 2},
		// Duplicates inside the new window were measured from the recount.
		{"DuplicateInsideNewWindow", ttl / 2, false, 2},
		// One tick after the new window has ended it counts again.
		{"CountsAgainAfterTTL", ttl - ttl/2 + Tick, true, 3},
	}
	for _, s := range steps {
		f.clock.Advance(s.advance)
		assert.Equal(t, s.counted, f.record(t, imp), "%s with a TTL of %v", s.name, ttl)
		assert.Equal(t, s.total, f.stats(t, c.ID)[2], "%s with a TTL of %v", s.name, ttl)
	}
}

func testDedupKeyFields(t *testing.T, f *fixture) {
	c1 := f.campaign(t, Epoch)
	c2 := f.campaign(t, Epoch)
	imps := []struct {
		imp     adcount.Impression
		counted bool
	}{
		{adcount.Impression{CampaignID: c1.ID, UserID: "ab", AdID: "c"}, true},
		// Same concatenation, other split: a different key.
		{adcount.Impression{CampaignID: c1.ID, UserID: "a", AdID: "bc"}, true},
		// Another user.
		{adcount.Impression{CampaignID: c1.ID, UserID: "x", AdID: "c"}, true},
		// Another ad.
		{adcount.Impression{CampaignID: c1.ID, UserID: "ab", AdID: "d"}, true},
		// The same user and ad in another campaign.
		{adcount.Impression{CampaignID: c2.ID, UserID: "ab", AdID: "c"}, true},
		// An exact repeat.
		{adcount.Impression{CampaignID: c1.ID, UserID: "ab", AdID: "c"}, false},
	}
	for i, x := range imps {
		assert.Equal(t, x.counted, f.record(t, x.imp), "impression %d", i)
	}
	assert.Equal(t, [3]int64{4, 4, 4}, f.stats(t, c1.ID))
	assert.Equal(t, [3]int64{1, 1, 1}, f.stats(t, c2.ID))
}

func testWindowsSlide(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	for i := range 3 {
		require.True(t, f.record(t, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("early-", i), AdID: "a"}))
	}
	f.clock.Advance(30 * time.Minute)
	for i := range 2 {
		require.True(t, f.record(t, adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("late-", i), AdID: "a"}))
	}
	steps := []struct {
		at   time.Duration // since Epoch
		want [3]int64      // last_hour, last_day, total
	}{
		{30 * time.Minute, [3]int64{5, 5, 5}},
		// The first three leave the hour when it has fully passed.
		{time.Hour, [3]int64{2, 5, 5}},
		{90 * time.Minute, [3]int64{0, 5, 5}},
		// The day keeps them until it has passed too.
		{24*time.Hour - time.Second, [3]int64{0, 5, 5}},
		{24 * time.Hour, [3]int64{0, 2, 5}},
		{24*time.Hour + 30*time.Minute, [3]int64{0, 0, 5}},
		// Total never falls, however long nothing arrives.
		{400 * 24 * time.Hour, [3]int64{0, 0, 5}},
	}
	for _, s := range steps {
		f.clock.Set(Epoch.Add(s.at))
		assert.Equal(t, s.want, f.stats(t, c.ID), "at Epoch+%v", s.at)
	}
	// Counting resumes after a long silence without stale buckets.
	require.True(t, f.record(t, adcount.Impression{CampaignID: c.ID, UserID: "back", AdID: "a"}))
	assert.Equal(t, [3]int64{1, 1, 6}, f.stats(t, c.ID))
}

func testWindowEdge(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	// Made at the very end of the first bucket.
	f.clock.Set(Epoch.Add(adcount.BucketWidth - time.Nanosecond))
	require.True(t, f.record(t, adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}))
	cases := []struct {
		at       time.Duration // since Epoch
		lastHour int64
	}{
		// Its age is exactly 59 minutes, and it is still counted.
		{time.Hour - time.Nanosecond, 1},
		// One tick later its bucket has left the hour although the
		// impression is a minute short of an hour old: the edge is exact to
		// within one bucket, never more.
		{time.Hour, 0},
	}
	for _, tc := range cases {
		f.clock.Set(Epoch.Add(tc.at))
		assert.Equal(t, tc.lastHour, f.stats(t, c.ID)[0], "at Epoch+%v", tc.at)
	}
}

func testConcurrent(t *testing.T, f *fixture) {
	const (
		workers = 16
		users   = 40
		repeats = 3 // every key is sent this many times, by different workers
	)
	c := f.campaign(t, Epoch)
	var counted sync.Map
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range users * repeats {
				u := (i + w*7) % users // workers overlap on the same keys
				imp := adcount.Impression{CampaignID: c.ID, UserID: fmt.Sprint("user-", u), AdID: fmt.Sprint("ad-", w%2)}
				out, err := f.store.RecordImpression(context.Background(), imp)
				if err != nil {
					errs <- err
					return
				}
				if out == adcount.Counted {
					if _, dup := counted.LoadOrStore(imp, true); dup {
						errs <- fmt.Errorf("%+v counted twice", imp)
						return
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
	const distinct = users * 2 // two ads
	assert.Equal(t, [3]int64{distinct, distinct, distinct}, f.stats(t, c.ID))
}

func testFutureCampaign(t *testing.T, f *fixture) {
	c := f.campaign(t, f.now().Add(24*time.Hour))
	_, err := f.store.RecordImpression(context.Background(), adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"})
	require.ErrorIs(t, err, adcount.ErrNotStarted)
	assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, c.ID))
}

func testConcurrentCreates(t *testing.T, f *fixture) {
	const racers = 16
	id := uuid.NewString()
	campaigns := make([]adcount.Campaign, racers)
	for i := range campaigns {
		c, err := adcount.NewCampaign(id, fmt.Sprint("Racer ", i), Epoch)
		require.NoError(t, err)
		campaigns[i] = c
	}
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() { errs[i] = f.store.CreateCampaign(context.Background(), campaigns[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "racers %d and %d both created %s", winner, i, id)
			winner = i
			continue
		}
		assert.ErrorIs(t, err, adcount.ErrConflict, "racer %d", i)
	}
	require.NotEqual(t, -1, winner, "no racer created %s", id)
	got, err := f.store.Campaign(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, campaigns[winner].Name, got.Name, "the winner's campaign is the one stored")
}

func testDoneContext(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelExpired()
	for _, done := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		// The caller cancelled, as a server does when its client hangs up.
		{"Cancelled", cancelled, context.Canceled},
		// The caller's deadline passed before the call.
		{"DeadlinePassed", expired, context.DeadlineExceeded},
	} {
		check := func(op string, err error) {
			t.Helper()
			require.Error(t, err, "%s with a %s context", op, done.name)
			assert.True(t, errors.Is(err, done.want) || errors.Is(err, adcount.ErrUnavailable),
				"%s with a %s context: %v matches neither %v nor ErrUnavailable", op, done.name, err, done.want)
		}
		_, err := f.store.RecordImpression(done.ctx, imp)
		check("RecordImpression", err)
		res, err := f.store.RecordImpressions(done.ctx, []adcount.Impression{imp, {CampaignID: c.ID, UserID: "u2", AdID: "a"}})
		check("RecordImpressions", err)
		assert.Nil(t, res, "a failed batch has no results")
		_, err = f.store.Campaign(done.ctx, c.ID)
		check("Campaign", err)
		_, err = f.store.Stats(done.ctx, c.ID)
		check("Stats", err)
		if f.opts.storeChoosesIDs {
			// The ID of a campaign that was not created is unknowable, so
			// only the error is checked.
			_, err = f.store.(CampaignCreator).Create(done.ctx, "Never", Epoch)
			check("Create", err)
			continue
		}
		never, err := adcount.NewCampaign(uuid.NewString(), "Never", Epoch)
		require.NoError(t, err)
		check("CreateCampaign", f.store.CreateCampaign(done.ctx, never))
		_, err = f.store.Campaign(context.Background(), never.ID)
		require.ErrorIs(t, err, adcount.ErrNotFound, "a create with a %s context stored nothing", done.name)
	}
	assert.Equal(t, [3]int64{0, 0, 0}, f.stats(t, c.ID), "nothing was counted")
	assert.True(t, f.record(t, imp), "no dedup key was kept, so the retry counts")
	assert.True(t, f.record(t, adcount.Impression{CampaignID: c.ID, UserID: "u2", AdID: "a"}), "nor by the batch")
}

func testReopen(t *testing.T, f *fixture) {
	c := f.campaign(t, Epoch)
	old := adcount.Impression{CampaignID: c.ID, UserID: "old", AdID: "a"}
	recent := adcount.Impression{CampaignID: c.ID, UserID: "recent", AdID: "a"}
	bot := adcount.Impression{CampaignID: c.ID, UserID: "recent", AdID: "a", Filtered: true}
	require.True(t, f.record(t, old))
	f.clock.Advance(f.ttl + time.Hour)
	require.True(t, f.record(t, recent))
	require.Equal(t, []adcount.Result{{Outcome: adcount.Filtered}}, f.batch(t, []adcount.Impression{bot}))
	before := f.stats(t, c.ID)
	require.Equal(t, [3]int64{1, 2, 2}, before, "old has left the hour, not the day")
	require.Equal(t, int64(1), f.allStats(t, c.ID).Filtered)

	f.store = f.opts.reopen(t, f.store)

	got, err := f.store.Campaign(context.Background(), c.ID)
	require.NoError(t, err, "the campaign survives")
	assert.Equal(t, c.Name, got.Name)
	assert.True(t, c.StartTime.Equal(got.StartTime), "start time %v, want %v", got.StartTime, c.StartTime)
	assert.Equal(t, before, f.stats(t, c.ID), "total and both windows survive")
	assert.Equal(t, int64(1), f.allStats(t, c.ID).Filtered, "the filtered count survives")
	assert.Equal(t, []adcount.Result{{Outcome: adcount.Filtered}}, f.batch(t, []adcount.Impression{bot}))
	assert.Equal(t, int64(1), f.allStats(t, c.ID).Filtered, "a filtered impression's live key survives")
	assert.False(t, f.record(t, recent), "a live dedup key survives")
	assert.True(t, f.record(t, old), "an expired dedup key is not brought back")
	assert.Equal(t, [3]int64{2, 3, 3}, f.stats(t, c.ID))
	// The surviving key expires when it would have without the reopen.
	f.clock.Advance(f.ttl - Tick)
	assert.False(t, f.record(t, recent), "one tick before its original expiry")
	f.clock.Advance(Tick)
	assert.True(t, f.record(t, recent), "at its original expiry")
	_, err = f.store.Campaign(context.Background(), uuid.NewString())
	require.ErrorIs(t, err, adcount.ErrNotFound, "nothing was made up")
}
