package dynamostore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
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
// report: the stream pages, and the impressions, transactions and reach
// writes in them. Its watermarks go through a reader of their own, so
// that the aggregator's UpdateItem calls are its reach merges alone.
type appliedCounter struct {
	*dynamostore.Aggregator
	reader                      *dynamostore.Aggregator
	mu                          sync.Mutex
	pages, counted, transaction int64
	sketches, conflicts         int64
}

func (c *appliedCounter) Advance(ctx context.Context, reader string, wm time.Time) error {
	return c.reader.Advance(ctx, reader, wm)
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
	c.sketches += int64(a.Sketches)
	c.conflicts += int64(a.SketchConflicts)
	return a, err
}

func (c *appliedCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pages, c.counted, c.transaction, c.sketches, c.conflicts = 0, 0, 0, 0, 0
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
	reader, err := dynamostore.NewAggregator(dynamotest.Client(t, srv.URL, dynamotest.Label("reader")), "impressions")
	require.NoError(t, err)
	applied := &appliedCounter{Aggregator: agg, reader: reader}
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

	store, agg, reader := u.Callers["store"], u.Callers["aggregator"], u.Callers["reader"]
	require.Positive(t, dups)
	assert.Equal(t, counted+dups, store.ItemsWritten, "the store writes one marker per impression, duplicates included, and nothing else")
	assert.Equal(t, counted+dups, store.WriteUnits, "each marker write is 1 WRU, counted or duplicate alike")
	assert.Equal(t, dups, store.Errors, "each duplicate is one write refused on its condition")
	assert.LessOrEqual(t, store.ReadUnits, float64(campaigns*(batches/2+1)),
		"the campaigns are cached: each is read again at most once per CampaignRefresh (2 s; the clock moves 1 s a batch)")
	perCounted := float64(store.WriteUnits-dups+agg.WriteUnits+reader.WriteUnits) / float64(counted)
	aggOps := r.srv.CallerUsage("aggregator").Operations
	counters, sketches := aggOps["TransactWriteItems"], aggOps["UpdateItem"]
	t.Logf("WRU: markers of counted impressions %d, of duplicates %d, aggregator %d: counters %d (%d transactions, %d items), reach %d (%d writes, %d refused on a conflict); reader watermarks %d; per counted impression, all writes included: %.3f; per duplicate: 1",
		store.WriteUnits-dups, dups, agg.WriteUnits, counters.WriteUnits, counters.Requests, counters.ItemsWritten,
		sketches.WriteUnits, sketches.Requests, sketches.Errors, reader.WriteUnits, perCounted)
	t.Logf("reach: %.3f WRU per counted impression, %d items written (%d by Applied), %.0f RRU of the aggregator's reads (checkpoints included)",
		float64(sketches.WriteUnits)/float64(counted), sketches.Changes, r.applied.sketches, aggOps["GetItem"].ReadUnits)
	t.Logf("aggregator: %d stream pages that counted, %.0f counted impressions a page, %.1f transactions a page, %.1f counter items and %.1f reach items a page, %.3f WRU per counted impression",
		r.applied.pages, float64(r.applied.counted)/float64(r.applied.pages), float64(r.applied.transaction)/float64(r.applied.pages),
		float64(counters.ItemsWritten)/float64(r.applied.pages), float64(r.applied.sketches)/float64(r.applied.pages), float64(agg.WriteUnits)/float64(counted))
	// The target, 1.2 WRU per counted impression (docs/dynamodb.md), held
	// with the campaign's counters alone (1.067). The per-ad counters add
	// three items per (campaign, ad) pair and stream page, which this
	// load's 70 pairs make 0.45 more, and reach four items per campaign
	// and page, exact lists of up to 6 KB for campaigns of this size,
	// about 0.12 more: the target is missed, as the docs say, and this
	// bound only keeps the cost from rising further.
	const target, documented = 1.2, 1.75
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

// TestReachReadsAreBounded measures what reach costs to read and store,
// on a server that bills as DynamoDB does, for three campaigns a day old:
// few users; the same 1,000 users every ten minutes, which makes every
// reach item an exact list at its largest (6 KB), the worst case for
// reads; and over 1,000 new users every hour and ten minutes, which makes
// every item a sketch. It logs each read's units and the items' sizes,
// which docs/dynamodb.md quotes, and bounds them.
func TestReachReadsAreBounded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// users returns the users of ten-minute bucket k (0 to 5) of
		// hour h (0 to 24); only the last hour's buckets all have any.
		users func(h, k int) []string
		// stats, hours and days bound the read units of Stats and of
		// a day of hour points and a week of day points.
		stats, hours, days float64
	}{
		{"FewUsers", func(h, k int) []string { return names(fmt.Sprintf("u%d-%d-", h, k), 10) }, 5, 4, 4},
		{"SameThousandEveryTenMinutes", func(int, int) []string { return names("u", 1000) }, 49, 40, 6},
		{"Sketches", func(h, k int) []string { return names(fmt.Sprintf("u%d-%d-", h, k), 1001) }, 11, 10, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newCostRig(t, 1)
			ctx := context.Background()
			c := createCampaign(t, r.store, storetest.Epoch)
			agg, err := dynamostore.NewAggregator(dynamotest.Client(t, r.srv.URL, dynamotest.Label("aggregator")), "impressions")
			require.NoError(t, err)
			recs, shard := newRec(r.clock), uuid.NewString()
			for h := range 25 {
				for k := range 6 {
					if h < 24 && k > 0 {
						break // one bucket an hour fills each hour item
					}
					at := storetest.Epoch.Add(time.Duration(h)*time.Hour + time.Duration(k)*10*time.Minute)
					r.clock.Advance(at.Sub(r.clock.Now()))
					var batch []dynamostore.StreamRecord
					for _, u := range tc.users(h, k) {
						batch = append(batch, recs.user(c.ID, "a", u))
					}
					_, err := agg.Apply(ctx, shard, batch)
					require.NoError(t, err)
				}
			}
			r.clock.Advance(5 * time.Minute)
			now := r.clock.Now()
			sizes := map[string][]int{}
			for _, it := range reachItems(t, r, c.ID) {
				sk := it["sk"].(*types.AttributeValueMemberS).Value
				sizes[sk[:1]] = append(sizes[sk[:1]], itemBytes(it))
			}
			t.Logf("item sizes in bytes: ten-minute %v, hour %v, day %v, total %v", sizes["B"], sizes["H"], sizes["D"], sizes["T"])
			reads := []struct {
				name  string
				read  func() error
				bound float64
			}{
				{"stats", func() error { _, err := r.store.Stats(ctx, c.ID); return err }, tc.stats},
				{"hour points of a day", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-23 * time.Hour), To: now, Interval: adcount.Hour}), tc.hours},
				{"day points of a week", series(r.store, c.ID, adcount.SeriesQuery{From: now.Add(-6 * 24 * time.Hour), To: now, Interval: adcount.Day}), tc.days},
			}
			for _, rd := range reads {
				r.srv.ResetUsage()
				require.NoError(t, rd.read(), rd.name)
				u := r.srv.CallerUsage("store")
				t.Logf("%s: %.0f RRU in %d requests", rd.name, u.ReadUnits, u.Requests)
				assert.LessOrEqual(t, u.ReadUnits, rd.bound, rd.name)
			}
		})
	}
}

// reachItems returns every item of the campaign's reach partition.
func reachItems(t *testing.T, r *costRig, campaignID string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := dynamotest.Client(t, r.srv.URL, nil).Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String("impressions"),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "REACH#" + campaignID}},
		ConsistentRead:            aws.Bool(true),
	})
	require.NoError(t, err)
	return out.Items
}

// itemBytes is an item's size as DynamoDB bills it, for the string,
// number and binary attributes that reach items hold.
func itemBytes(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberB:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += (len(strings.Trim(v.Value, "0"))+1)/2 + 1
		}
	}
	return n
}

// names returns n user IDs: prefix0 to prefix<n-1>.
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(prefix, i)
	}
	return out
}
