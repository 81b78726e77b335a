package dynamostore_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// users returns one impression of campaign c per user, in order.
func users(c adcount.Campaign, users ...string) []adcount.Impression {
	imps := make([]adcount.Impression, len(users))
	for i, u := range users {
		imps[i] = adcount.Impression{CampaignID: c.ID, UserID: u, AdID: "a"}
	}
	return imps
}

func outcomes(t *testing.T, res []adcount.Result) []adcount.Outcome {
	t.Helper()
	out := make([]adcount.Outcome, len(res))
	for i, r := range res {
		require.NoError(t, r.Err, "item %d", i)
		out[i] = r.Outcome
	}
	return out
}

// TestBatchRepeats checks how a batch writes impressions that share a
// dedup key: one after another, and a repeat answered from its earlier
// impression's answer without a request while the key is taken, which is
// what its own write would have found.
func TestBatchRepeats(t *testing.T) {
	t.Parallel()
	const c, d = adcount.Counted, adcount.Duplicate
	tg := newTarget(t)
	cases := []struct {
		name string
		// tick moves the store's clock on each reading, so that time
		// passes between the impressions of one batch.
		tick     time.Duration
		users    []string
		want     []adcount.Outcome
		requests int
	}{
		// Repeats within the window cost no request.
		{"RepeatsWithinTheWindow", 0, []string{"x", "x", "y", "x", "y"}, []adcount.Outcome{c, d, c, d, d}, 2},
		// With a window of one millisecond and the clock moving by one on
		// each reading, every repeat comes after the window of the one
		// before it, and counts again, as it would one by one.
		{"RepeatAfterItsWindowCountsAgain", time.Millisecond, []string{"x", "x", "x"}, []adcount.Outcome{c, c, c}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(storetest.Epoch)
			now := func() time.Time {
				if tc.tick == 0 {
					return clock.Now()
				}
				clock.Advance(tc.tick)
				return clock.Now()
			}
			opts := []dynamostore.Option{dynamostore.WithClock(now)}
			if tc.tick > 0 {
				opts = append(opts, dynamostore.WithDedupTTL(tc.tick))
			}
			f, wrap := newFaults()
			s := tg.store(t, wrap, opts...)
			camp := createCampaign(t, s, storetest.Epoch)
			f.set("UpdateItem", 0, 0) // count, fault none
			res, err := s.RecordImpressions(context.Background(), users(camp, tc.users...))
			require.NoError(t, err)
			assert.Equal(t, tc.want, outcomes(t, res))
			assert.Equal(t, tc.requests, f.requests(), "marker writes sent")
		})
	}
}

// inFlight is a transport that counts the marker writes (UpdateItem) in
// flight at once. It holds the first requests until limit of them are in
// flight, so that the bound is reached however the goroutines are
// scheduled, and then lets everything through.
type inFlight struct {
	next    http.RoundTripper
	limit   int
	mu      sync.Mutex
	now     int
	most    int
	reached chan struct{}
}

func (f *inFlight) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".UpdateItem") {
		return f.next.RoundTrip(r)
	}
	f.mu.Lock()
	f.now++
	f.most = max(f.most, f.now)
	if f.now == f.limit {
		select {
		case <-f.reached:
		default:
			close(f.reached)
		}
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.now--
		f.mu.Unlock()
	}()
	select {
	case <-f.reached:
	case <-time.After(2 * time.Second):
	}
	return f.next.RoundTrip(r)
}

// TestBatchConcurrencyIsBounded sends a batch of distinct impressions and
// checks that exactly as many marker writes as the bound are in flight at
// most.
func TestBatchConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	const limit, n = 4, 40
	tg := newTarget(t)
	gate := &inFlight{limit: limit, reached: make(chan struct{})}
	s := tg.store(t, func(next http.RoundTripper) http.RoundTripper { gate.next = next; return gate },
		dynamostore.WithBatchConcurrency(limit))
	c := createCampaign(t, s, storetest.Epoch)
	var names []string
	for i := range n {
		names = append(names, fmt.Sprint("user-", i))
	}
	res, err := s.RecordImpressions(context.Background(), users(c, names...))
	require.NoError(t, err)
	for i, out := range outcomes(t, res) {
		assert.Equal(t, adcount.Counted, out, "item %d", i)
	}
	gate.mu.Lock()
	defer gate.mu.Unlock()
	assert.Equal(t, limit, gate.most, "marker writes in flight at most")
	assert.Equal(t, int64(n), stats(t, s, c.ID).Total)
}

// TestBatchFailureIsWholeAndRetrySafe makes DynamoDB fail partway through
// a batch. The batch fails whole with ErrUnavailable and no results, and
// a retry of the same batch counts each impression exactly once in total,
// whatever the failed call had written.
func TestBatchFailureIsWholeAndRetrySafe(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	cases := []struct {
		name string
		kind fault
		// skip is how many marker writes succeed before the faults start.
		skip int
	}{
		// Throttled from the start: nothing is written.
		{"ThrottledFromTheStart", faultThrottle, 0},
		// Throttled partway: some impressions are written, some not.
		{"ThrottledPartway", faultThrottle, 5},
		// Every write applied and every answer lost: all written,
		// none acknowledged.
		{"LostResponses", faultLostResponse, 0},
		// A DynamoDB error partway.
		{"InternalErrorPartway", faultInternal, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(storetest.Epoch)
			f, wrap := newFaults()
			s := tg.store(t, wrap, dynamostore.WithClock(clock.Now), dynamostore.WithBatchConcurrency(2))
			c := createCampaign(t, s, storetest.Epoch)
			var names []string
			for i := range 20 {
				names = append(names, fmt.Sprint("user-", i%15)) // five repeats
			}
			imps := users(c, names...)
			// A filtered impression and one for an unknown campaign ride
			// along: the retry must answer them as one by one would.
			imps = append(imps, adcount.Impression{CampaignID: c.ID, UserID: "user-0", AdID: "a", Filtered: true},
				adcount.Impression{CampaignID: "no-such-campaign", UserID: "u", AdID: "a"})

			f.setAfter("UpdateItem", tc.kind, tc.skip, -1)
			res, err := s.RecordImpressions(context.Background(), imps)
			require.ErrorIs(t, err, adcount.ErrUnavailable)
			assert.Nil(t, res)
			f.clear()
			before := stats(t, s, c.ID)

			res, err = s.RecordImpressions(context.Background(), imps)
			require.NoError(t, err)
			require.Len(t, res, len(imps))
			var countedNow int64
			for i, r := range res[:20] {
				require.NoError(t, r.Err)
				if r.Outcome == adcount.Counted {
					countedNow++
					assert.Less(t, i, 15, "a repeat never counts")
				}
			}
			assert.Equal(t, adcount.Filtered, res[20].Outcome)
			assert.ErrorIs(t, res[21].Err, adcount.ErrNotFound)
			assert.Equal(t, int64(15), before.Total+countedNow, "every key counted once, before the failure or in the retry")
			after := stats(t, s, c.ID)
			assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: 15, LastDay: 15, Total: 15, Filtered: 1}, after)
		})
	}
}

// TestFilteredImpressionItems checks what a filtered impression writes:
// its own marker, marked filtered, and the aggregator adds it to the
// total's filtered count and to no minute counter, so that it never shows
// in the impression counts.
func TestFilteredImpressionItems(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	c := createCampaign(t, s, storetest.Epoch)
	bot := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a", Filtered: true}
	real := bot
	real.Filtered = false

	out, err := s.RecordImpression(context.Background(), bot)
	require.NoError(t, err)
	require.Equal(t, adcount.Filtered, out)
	items := tg.items(t, c.ID, bot, real)
	require.Equal(t, []string{"META", "MARKER"}, sortKeys(items), "no marker for the real impression")
	assert.Equal(t, &types.AttributeValueMemberN{Value: "1"}, items[1]["f"], "the marker says it is filtered")
	assert.Equal(t, adcount.Stats{CampaignID: c.ID, Filtered: 1}, stats(t, s, c.ID))
	items = tg.items(t, c.ID)
	require.Equal(t, []string{"ADTOTAL#a", "META", "TOTAL"}, sortKeys(items), "no hour or day item")
	for _, i := range []int{0, 2} {
		assert.Equal(t, &types.AttributeValueMemberN{Value: "1"}, items[i]["f"], "the ad's total and the campaign's")
		assert.NotContains(t, items[i], "n", "no impression counted")
	}
	assert.Empty(t, tg.adItems(t, c.ID, "a"), "nor the ad's")

	require.True(t, record(t, s, real))
	assert.Equal(t, adcount.Stats{CampaignID: c.ID, LastHour: 1, LastDay: 1, Total: 1, Filtered: 1}, stats(t, s, c.ID))
}
