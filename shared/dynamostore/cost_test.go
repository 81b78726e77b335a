package dynamostore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/storetest"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// costRig is a table on a server that bills every request, with a store,
// and an aggregator that a Streams poller feeds, each labelled so that
// their requests are told apart.
type costRig struct {
	srv     *dynamotest.Server
	store   *dynamostore.Store
	poll    *streampoll.Poller
	clock   *storetest.Clock
	applied *appliedCounter
}

// appliedCounter is the rig's aggregator, counting what its Apply calls
// report: the stream pages, and the impressions and transactions in them.
type appliedCounter struct {
	*dynamostore.Aggregator
	mu                          sync.Mutex
	pages, counted, transaction int64
}

func (c *appliedCounter) Apply(ctx context.Context, shard string, recs []dynamostore.StreamRecord) (dynamostore.Applied, error) {
	a, err := c.Aggregator.Apply(ctx, shard, recs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if a.Counted+a.Filtered > 0 {
		c.pages++
	}
	c.counted += a.Counted
	c.transaction += int64(a.Transactions)
	return a, err
}

func (c *appliedCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pages, c.counted, c.transaction = 0, 0, 0
}

func newCostRig(t testing.TB, shards int) *costRig {
	t.Helper()
	srv := dynamotest.StartServer(t, dynamotest.WithShards(shards))
	ctx := context.Background()
	_, err := dynamostore.CreateTable(ctx, dynamotest.Client(t, srv.URL, nil), "impressions")
	require.NoError(t, err)
	clock := storetest.NewClock(storetest.Epoch)
	s, err := dynamostore.New(dynamotest.Client(t, srv.URL, dynamotest.Label("store")), "impressions",
		dynamostore.WithClock(clock.Now), dynamostore.WithTimeout(time.Minute))
	require.NoError(t, err)
	agg, err := dynamostore.NewAggregator(dynamotest.Client(t, srv.URL, dynamotest.Label("aggregator")), "impressions")
	require.NoError(t, err)
	applied := &appliedCounter{Aggregator: agg}
	p, err := streampoll.New(dynamotest.StreamsClient(t, srv.URL, dynamotest.Label("streams")), applied, "impressions",
		streampoll.WithFilter(dynamostore.IsMarkerRecord))
	require.NoError(t, err)
	return &costRig{srv: srv, store: s, poll: p, clock: clock, applied: applied}
}

// drain polls until the poller has read every shard to its end.
func (r *costRig) drain(t testing.TB) {
	t.Helper()
	for range 100 {
		caughtUp, err := r.poll.Poll(context.Background())
		require.NoError(t, err)
		if caughtUp {
			return
		}
	}
	t.Fatal("the poller never caught up")
}

// TestCostPerCountedImpression measures what the store and the aggregator
// send to a server that bills as DynamoDB's on-demand mode does, for a
// steady load: 10 campaigns, batches of 1,000 impressions of which a fifth
// repeat a key, aggregated in stream pages of up to 1,000 records, as the
// Lambda mapping's batches are. docs/dynamodb.md quotes the figures it
// logs.
func TestCostPerCountedImpression(t *testing.T) {
	t.Parallel()
	const (
		campaigns = 10
		batches   = 20
		batchSize = adcount.MaxBatch
	)
	r := newCostRig(t, 2)
	ctx := context.Background()
	ids := make([]string, campaigns)
	for i := range ids {
		ids[i] = createCampaign(t, r.store, storetest.Epoch).ID
	}
	// Warm the store's campaign cache and the poller's shard list, then
	// count from zero: creating campaigns is not what is measured.
	warm := make([]adcount.Impression, campaigns)
	for i, id := range ids {
		warm[i] = adcount.Impression{CampaignID: id, UserID: "warm", AdID: "a"}
	}
	_, err := r.store.RecordImpressions(ctx, warm)
	require.NoError(t, err)
	r.drain(t)
	r.srv.ResetUsage()
	r.applied.reset()

	var counted, dups int64
	var prev []adcount.Impression
	for b := range batches {
		imps := make([]adcount.Impression, batchSize)
		for i := range imps {
			imps[i] = adcount.Impression{CampaignID: ids[i%campaigns], UserID: fmt.Sprintf("u%d-%d", b, i), AdID: fmt.Sprint("ad-", i%7)}
			if i%5 == 4 && prev != nil {
				imps[i] = prev[i-1] // a repeat of a key the batch before counted
			}
		}
		prev = imps
		res, err := r.store.RecordImpressions(ctx, imps)
		require.NoError(t, err)
		for _, x := range res {
			require.NoError(t, x.Err)
			if x.Outcome == adcount.Counted {
				counted++
			} else {
				dups++
			}
		}
		r.clock.Advance(time.Second)
		if b%5 == 4 {
			r.drain(t) // a stream page every 5,000 impressions
		}
	}
	r.drain(t)
	u := r.srv.Usage()
	t.Logf("counted %d, duplicates %d\n%s", counted, dups, u)

	store, agg := u.Callers["store"], u.Callers["aggregator"]
	require.Positive(t, dups)
	assert.Equal(t, counted+dups, store.ItemsWritten, "the store writes one marker per impression, duplicates included, and nothing else")
	assert.Equal(t, counted+dups, store.WriteUnits, "each marker write is 1 WRU, counted or duplicate alike")
	assert.Equal(t, dups, store.Errors, "each duplicate is one write refused on its condition")
	assert.LessOrEqual(t, store.ReadUnits, float64(campaigns*(batches/2+1)),
		"the campaigns are cached: each is read again at most once per CampaignRefresh (2 s; the clock moves 1 s a batch)")
	perCounted := float64(store.WriteUnits-dups+agg.WriteUnits) / float64(counted)
	t.Logf("WRU: markers of counted impressions %d, of duplicates %d, aggregator %d (%d transactions, %d items); per counted impression, all writes included: %.3f; per duplicate: 1",
		store.WriteUnits-dups, dups, agg.WriteUnits, r.srv.CallerUsage("aggregator").Operations["TransactWriteItems"].Requests, agg.ItemsWritten, perCounted)
	t.Logf("aggregator: %d stream pages that counted, %.0f counted impressions a page, %.1f transactions a page, %.1f items a page, %.3f WRU per counted impression",
		r.applied.pages, float64(r.applied.counted)/float64(r.applied.pages), float64(r.applied.transaction)/float64(r.applied.pages),
		float64(agg.ItemsWritten)/float64(r.applied.pages), float64(agg.WriteUnits)/float64(counted))
	// The target, 1.2 WRU per counted impression (docs/dynamodb.md), held
	// with the campaign's counters alone (1.067). The per-ad counters add
	// three items per (campaign, ad) pair and stream page, which this
	// load's 70 pairs make 0.45 more: the target is missed, as the docs
	// say, and this bound only keeps the cost from rising further.
	const target, documented = 1.2, 1.6
	if perCounted > target {
		t.Logf("MISSED: %.3f WRU per counted impression is over the %.1f target; see docs/dynamodb.md, \"Cost\"", perCounted, target)
	}
	assert.LessOrEqual(t, perCounted, documented, "at most what docs/dynamodb.md states")

	var total int64
	for _, id := range ids {
		st, err := r.store.Stats(ctx, id)
		require.NoError(t, err)
		total += st.Total
		page, err := r.store.AdStats(ctx, id, adcount.AdQuery{Limit: adcount.MaxPageLimit})
		require.NoError(t, err)
		var ads int64
		for _, a := range page.Ads {
			ads += a.Total
		}
		assert.Equal(t, st.Total, ads, "the ads' totals add up to the campaign's")
	}
	assert.Equal(t, counted+campaigns, total, "and the counts are exact (the warm-up included)")
}

// BenchmarkHotCampaign drives one campaign as hard as the in-process
// server allows: writers send batches of 100 new impressions while a
// poller aggregates the stream, as the local server does. It reports the
// impressions per second of the whole pipeline, writes and reads included,
// how many transactions the aggregator made per second and per 1,000
// impressions (each adds to the campaign's total, hour and day items once),
// and the write units per counted impression. Every run checks that the
// counts are exact. Run it with
//
//	go test -run '^$' -bench HotCampaign -benchtime 20000x ./shared/dynamostore
//
// The server serialises every request and has no partitions, so it shows
// how few writes the counter items take, not DynamoDB's own limits;
// docs/dynamodb.md does that arithmetic.
func BenchmarkHotCampaign(b *testing.B) {
	const writers, batchSize = 8, 100
	r := newCostRig(b, 4)
	ctx := context.Background()
	id := createCampaign(b, r.store, storetest.Epoch).ID
	_, err := r.store.RecordImpressions(ctx, []adcount.Impression{{CampaignID: id, UserID: "warm", AdID: "a"}})
	require.NoError(b, err)
	r.drain(b)
	r.srv.ResetUsage()

	pollCtx, stop := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() { polled <- r.poll.Run(pollCtx) }()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := (b.N + writers - 1) / writers
	for w := range writers {
		wg.Go(func() {
			for sent := 0; sent < per; sent += batchSize {
				imps := make([]adcount.Impression, min(batchSize, per-sent))
				for i := range imps {
					imps[i] = adcount.Impression{CampaignID: id, UserID: fmt.Sprintf("w%d-%d", w, sent+i), AdID: "a"}
				}
				if _, err := r.store.RecordImpressions(ctx, imps); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(b, r.store.Settle(ctx))
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	require.NoError(b, <-polled)

	want := int64(per * writers)
	st, err := r.store.Stats(ctx, id)
	require.NoError(b, err)
	require.Equal(b, want+1, st.Total, "exact")
	u := r.srv.Usage()
	tx := r.srv.CallerUsage("aggregator").Operations["TransactWriteItems"].Requests
	b.ReportMetric(float64(want)/elapsed.Seconds(), "impressions/s")
	b.ReportMetric(float64(tx)/elapsed.Seconds(), "counter-tx/s")
	b.ReportMetric(float64(tx)*1000/float64(want), "tx/1000imp")
	b.ReportMetric(float64(u.Callers["store"].WriteUnits+u.Callers["aggregator"].WriteUnits)/float64(want), "WRU/imp")
}

// BenchmarkFreshness measures how long after an impression is acknowledged
// the stats include it, with a poller at the local server's interval
// (streampoll.DefaultInterval): each iteration records one impression and
// waits for Settle. It reports the mean in milliseconds. Run it with
//
//	go test -run '^$' -bench Freshness -benchtime 40x ./shared/dynamostore
func BenchmarkFreshness(b *testing.B) {
	r := newCostRig(b, 4)
	ctx := context.Background()
	id := createCampaign(b, r.store, storetest.Epoch).ID
	pollCtx, stop := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() { polled <- r.poll.Run(pollCtx) }()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		_, err := r.store.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: fmt.Sprint("u", i), AdID: "a"})
		require.NoError(b, err)
		require.NoError(b, r.store.Settle(ctx))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	require.NoError(b, <-polled)
	st, err := r.store.Stats(ctx, id)
	require.NoError(b, err)
	require.Equal(b, int64(b.N), st.Total, "exact")
	b.ReportMetric(float64(elapsed.Milliseconds())/float64(b.N), "ms-to-stats")
}
