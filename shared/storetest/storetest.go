package storetest

import (
	"context"
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

// TTL is the dedup window the suite configures.
const TTL = time.Hour

// Tick is the finest step in which a store must tell a duplicate from a
// recount: dedup windows are exact to the millisecond.
const Tick = time.Millisecond

// NewStore returns a fresh store that reads now as its clock and ignores
// repeats for ttl. Stores backed by a shared service may reuse it: the suite
// gives every campaign a new random ID.
type NewStore func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store

// Run runs the conformance suite against the stores that newStore makes.
// Each case gets its own store and clock and runs in parallel.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	cases := []struct {
		name string
		test func(t *testing.T, f *fixture)
	}{
		{"CampaignRoundTrips", testCampaignRoundTrips},
		{"CampaignConflict", testCampaignConflict},
		{"UnknownCampaign", testUnknownCampaign},
		{"InvalidImpressionChangesNothing", testInvalidImpression},
		{"NotStartedChangesNothing", testNotStarted},
		{"DedupAtTheTTLBoundary", testDedupBoundary},
		{"DedupKeyIsAllThreeFields", testDedupKeyFields},
		{"WindowsSlideWithTheClock", testWindowsSlide},
		{"WindowEdgeWithinOneBucket", testWindowEdge},
		{"ConcurrentImpressionsCountExactly", testConcurrent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := NewClock(Epoch)
			f := &fixture{clock: clock, store: newStore(t, clock.Now, TTL)}
			tc.test(t, f)
		})
	}
}

type fixture struct {
	clock *Clock
	store adcount.Store
}

// campaign creates a campaign that started at start.
func (f *fixture) campaign(t *testing.T, start time.Time) adcount.Campaign {
	t.Helper()
	c, err := adcount.NewCampaign(uuid.NewString(), "Spring sale", start)
	require.NoError(t, err)
	require.NoError(t, f.store.CreateCampaign(context.Background(), c))
	return c
}

func (f *fixture) record(t *testing.T, imp adcount.Impression) bool {
	t.Helper()
	counted, err := f.store.RecordImpression(context.Background(), imp)
	require.NoError(t, err)
	return counted
}

// stats returns last_hour, last_day and total as one comparable value.
func (f *fixture) stats(t *testing.T, id string) [3]int64 {
	t.Helper()
	s, err := f.store.Stats(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, id, s.CampaignID)
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

	steps := []struct {
		name    string
		advance time.Duration // from the previous step
		counted bool
		total   int64
	}{
		// A repeat straight away is the common case of a double-fired tag.
		{"DuplicateImmediately", 0, false, 1},
		// Still inside the window one tick before it ends.
		{"DuplicateOneTickBeforeTTL", TTL - Tick, false, 1},
		// The window is [first, first+TTL): at exactly TTL it counts again,
		// and that sighting opens a new window.
		{"CountsAgainAtTTL", Tick, true, 2},
		// Duplicates inside the new window were measured from the recount.
		{"DuplicateInsideNewWindow", time.Minute, false, 2},
		// One tick after the new window has ended it counts again.
		{"CountsAgainAfterTTL", TTL - time.Minute + Tick, true, 3},
	}
	for _, s := range steps {
		f.clock.Advance(s.advance)
		assert.Equal(t, s.counted, f.record(t, imp), s.name)
		assert.Equal(t, s.total, f.stats(t, c.ID)[2], s.name)
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
				ok, err := f.store.RecordImpression(context.Background(), imp)
				if err != nil {
					errs <- err
					return
				}
				if ok {
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
