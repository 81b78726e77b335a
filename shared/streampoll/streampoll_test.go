package streampoll_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/streampoll"
)

const tableName = "t"

// fakeAgg applies records exactly once per shard, as the real aggregator
// promises, with its checkpoints in memory, and notes what it was given.
type fakeAgg struct {
	mu          sync.Mutex
	checkpoints map[string]string
	applied     map[string][]string // shard -> seqs applied, in order
	values      map[string][]string // pk -> "v" of the new images applied, in order
	order       []string            // shard of each Apply call that applied something
	skipped     int
	advances    map[string][]time.Time
	// failAfter, if set, makes the next Apply apply that many records and
	// then fail.
	failAfter *int
}

var _ streampoll.Aggregator = (*fakeAgg)(nil)

func newFakeAgg() *fakeAgg {
	return &fakeAgg{checkpoints: map[string]string{}, applied: map[string][]string{}, values: map[string][]string{}, advances: map[string][]time.Time{}}
}

func seqLess(a, b string) bool {
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y) < 0
}

func (f *fakeAgg) Apply(_ context.Context, shardID string, recs []dynamostore.StreamRecord) (dynamostore.Applied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := dynamostore.Applied{Records: len(recs), Through: f.checkpoints[shardID]}
	limit := len(recs)
	var failure error
	if f.failAfter != nil {
		limit, failure = min(*f.failAfter, limit), errors.New("injected failure")
		f.failAfter = nil
	}
	for _, r := range recs[:limit] {
		if cp := f.checkpoints[shardID]; cp != "" && !seqLess(cp, r.Seq) {
			a.Skipped++
			f.skipped++
			continue
		}
		f.checkpoints[shardID] = r.Seq
		a.Through = r.Seq
		f.applied[shardID] = append(f.applied[shardID], r.Seq)
		if len(f.order) == 0 || f.order[len(f.order)-1] != shardID {
			f.order = append(f.order, shardID)
		}
		if r.New != nil {
			pk := r.New["pk"].(*types.AttributeValueMemberS).Value
			f.values[pk] = append(f.values[pk], r.New["v"].(*types.AttributeValueMemberS).Value)
		}
	}
	return a, failure
}

func (f *fakeAgg) Checkpoint(_ context.Context, shardID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkpoints[shardID], nil
}

func (f *fakeAgg) Advance(_ context.Context, reader string, wm time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advances[reader] = append(f.advances[reader], wm)
	return nil
}

func (f *fakeAgg) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, seqs := range f.applied {
		n += len(seqs)
	}
	return n
}

// env is a server with one table whose stream shows both images.
type env struct {
	srv *dynamotest.Server
	db  *dynamodb.Client
	sc  *dynamodbstreams.Client
}

func newEnv(t *testing.T, opts ...dynamotest.Option) env {
	t.Helper()
	srv := dynamotest.StartServer(t, opts...)
	e := env{srv: srv, db: dynamotest.Client(t, srv.URL, nil), sc: dynamotest.StreamsClient(t, srv.URL, nil)}
	_, err := e.db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName: aws.String(tableName),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		BillingMode:         types.BillingModePayPerRequest,
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	require.NoError(t, err)
	return e
}

// write puts version v of each of n items.
func (e env) write(t *testing.T, n int, v string) {
	t.Helper()
	for i := range n {
		_, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("item%d", i)},
			"sk": &types.AttributeValueMemberS{Value: "S"},
			"v":  &types.AttributeValueMemberS{Value: v},
		}})
		require.NoError(t, err)
	}
}

func (e env) poller(t *testing.T, agg streampoll.Aggregator, opts ...streampoll.Option) *streampoll.Poller {
	t.Helper()
	p, err := streampoll.New(e.sc, agg, tableName, opts...)
	require.NoError(t, err)
	return p
}

// catchUp polls until a round reads every shard to its end; a round that
// finishes a shard cannot, since the shard's children are to be listed
// first.
func catchUp(t *testing.T, p *streampoll.Poller) {
	t.Helper()
	for range 10 {
		done, err := p.Poll(context.Background())
		require.NoError(t, err)
		if done {
			return
		}
	}
	t.Fatal("the poller never caught up")
}

// TestAppliesEveryRecordOnce reads a stream of several shards: every
// record is applied once, each item's in write order, and the caught-up
// round records its start as the watermark.
func TestAppliesEveryRecordOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dynamotest.WithShards(3))
	e.write(t, 20, "1")
	e.write(t, 20, "2")
	agg := newFakeAgg()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := e.poller(t, agg, streampoll.WithClock(func() time.Time { return now }), streampoll.WithPageSize(7))
	catchUp(t, p)
	assert.Equal(t, 40, agg.total())
	assert.Zero(t, agg.skipped)
	for i := range 20 {
		assert.Equal(t, []string{"1", "2"}, agg.values[fmt.Sprintf("item%d", i)])
	}
	assert.Greater(t, len(agg.applied), 1, "the records are spread over shards")
	assert.Equal(t, []time.Time{now.Add(-streampoll.DefaultPropagation)}, agg.advances[p.Reader()],
		"the round's start, less the time a record may take to reach the stream")
}

// TestTwoPollersGiveExactCounts runs two pollers on one table while items
// are written: between them every record is applied exactly once.
func TestTwoPollersGiveExactCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dynamotest.WithShards(4))
	agg := newFakeAgg()
	a := e.poller(t, agg, streampoll.WithPageSize(3))
	b := e.poller(t, agg, streampoll.WithPageSize(5))
	assert.NotEqual(t, a.Reader(), b.Reader())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range []*streampoll.Poller{a, b} {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _ = p.Poll(ctx)
			}
		})
	}
	for v := range 5 {
		e.write(t, 30, fmt.Sprint(v))
	}
	cancel()
	wg.Wait()
	catchUp(t, a)
	catchUp(t, b)
	assert.Equal(t, 150, agg.total())
	for i := range 30 {
		assert.Equal(t, []string{"0", "1", "2", "3", "4"}, agg.values[fmt.Sprintf("item%d", i)])
	}
}

// TestReshardMidRun splits the shards between two rounds: a child's
// records are applied only after its parent's, and nothing is lost or
// applied twice.
func TestReshardMidRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dynamotest.WithShards(2))
	agg := newFakeAgg()
	p := e.poller(t, agg)
	e.write(t, 10, "1")
	catchUp(t, p)
	e.write(t, 10, "2")
	require.NoError(t, e.srv.Reshard(tableName))
	e.write(t, 10, "3")
	require.NoError(t, e.srv.Reshard(tableName))
	e.write(t, 10, "4")
	catchUp(t, p)
	assert.Equal(t, 40, agg.total())
	for i := range 10 {
		assert.Equal(t, []string{"1", "2", "3", "4"}, agg.values[fmt.Sprintf("item%d", i)])
	}

	// Every shard's records were applied after its parent's last one.
	out, err := e.sc.DescribeStream(context.Background(), &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(streamARN(t, e))})
	require.NoError(t, err)
	require.Len(t, out.StreamDescription.Shards, 2+4+8)
	firstApply := map[string]int{}
	lastApply := map[string]int{}
	for i, sh := range agg.order {
		if _, ok := firstApply[sh]; !ok {
			firstApply[sh] = i
		}
		lastApply[sh] = i
	}
	for _, sh := range out.StreamDescription.Shards {
		id, parent := aws.ToString(sh.ShardId), aws.ToString(sh.ParentShardId)
		first, ok := firstApply[id]
		if parent == "" || !ok {
			continue
		}
		if last, ok := lastApply[parent]; ok {
			assert.Greater(t, first, last, "shard %s before its parent %s", id, parent)
		}
	}
}

func streamARN(t *testing.T, e env) string {
	t.Helper()
	out, err := e.db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(tableName)})
	require.NoError(t, err)
	return aws.ToString(out.Table.LatestStreamArn)
}

// TestRestartResumesFromTheCheckpoint stops a poller and starts another:
// the new one starts after each shard's checkpoint, so it is delivered no
// record twice.
func TestRestartResumesFromTheCheckpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agg := newFakeAgg()
	ctx, cancel := context.WithCancel(context.Background())
	caughtUp := &signal{ch: make(chan struct{}, 1)}
	first := e.poller(t, agg, streampoll.WithInterval(time.Millisecond), streampoll.WithObserver(caughtUp))
	e.write(t, 10, "1")
	done := make(chan error)
	go func() { done <- first.Run(ctx) }()
	<-caughtUp.ch
	cancel()
	require.NoError(t, <-done, "Run returns nil when its context ends")

	e.write(t, 10, "2")
	second := e.poller(t, agg)
	catchUp(t, second)
	assert.Equal(t, 20, agg.total())
	assert.Zero(t, agg.skipped, "no record was delivered again")
}

// signal is an Observer that signals each caught-up round.
type signal struct{ ch chan struct{} }

var _ streampoll.Observer = (*signal)(nil)

func (s *signal) Applied(string, dynamostore.Applied, time.Duration) {}
func (s *signal) Failed(streampoll.Stage, error)                     {}

func (s *signal) CaughtUp() {
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

var _ streampoll.Observer = (*recorder)(nil)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	applied  int
	skipped  int
	lags     []time.Duration
	failures map[streampoll.Stage]int
	caughtUp int
}

func (r *recorder) Applied(_ string, a dynamostore.Applied, lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied += a.Records
	r.skipped += a.Skipped
	r.lags = append(r.lags, lag)
}

func (r *recorder) Failed(stage streampoll.Stage, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures == nil {
		r.failures = map[streampoll.Stage]int{}
	}
	r.failures[stage]++
}

func (r *recorder) CaughtUp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.caughtUp++
}

// TestApplyFailureReseeks fails an Apply halfway through a page: the
// poller reports it, reads the shard again from the checkpoint on its next
// round, and applies the rest once.
func TestApplyFailureReseeks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dynamotest.WithShards(1))
	e.write(t, 10, "1")
	agg := newFakeAgg()
	agg.failAfter = aws.Int(4)
	obs := &recorder{}
	p := e.poller(t, agg, streampoll.WithObserver(obs))
	caught, err := p.Poll(context.Background())
	require.Error(t, err)
	assert.False(t, caught)
	assert.Equal(t, 4, agg.total())
	assert.Equal(t, 1, obs.failures[streampoll.StageApply])
	assert.Empty(t, agg.advances, "no watermark after a failed round")

	catchUp(t, p)
	assert.Equal(t, 10, agg.total())
	assert.Zero(t, agg.skipped, "the poller started after the checkpoint")
	assert.Equal(t, 6, obs.applied)
	assert.Equal(t, 1, obs.caughtUp)
}

// TestExpiredIteratorIsNoFailure lets an idle poller's iterators age out
// on the server's clock: it seeks again without reporting a failure.
func TestExpiredIteratorIsNoFailure(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	e := newEnv(t, dynamotest.WithClock(clock))
	agg := newFakeAgg()
	obs := &recorder{}
	p := e.poller(t, agg, streampoll.WithObserver(obs), streampoll.WithClock(clock))
	e.write(t, 5, "1")
	catchUp(t, p)
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	e.write(t, 5, "2")
	catchUp(t, p)
	assert.Equal(t, 10, agg.total())
	assert.Empty(t, obs.failures)
	assert.Zero(t, agg.skipped)
	assert.Len(t, obs.lags, 2*2, "a page of each shard each round")
}

// TestWatermarkCadence checks when the poller records its watermark: each
// caught-up round that applied something, else at most once a second.
func TestWatermarkCadence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agg := newFakeAgg()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := e.poller(t, agg, streampoll.WithClock(func() time.Time { return now }))
	steps := []struct {
		name    string
		write   bool
		advance time.Duration
		want    int // watermarks recorded so far
	}{
		{"FirstRound", false, 0, 1},
		{"IdleWithinASecond", false, 500 * time.Millisecond, 1},
		{"IdleASecondLater", false, 500 * time.Millisecond, 2},
		{"AppliedSoonAfter", true, time.Millisecond, 3},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.write {
			e.write(t, 1, "x")
		}
		caught, err := p.Poll(context.Background())
		require.NoError(t, err)
		require.True(t, caught)
		assert.Len(t, agg.advances[p.Reader()], s.want, s.name)
	}
}

// TestWatermarkEveryIdleRound checks WithIdleAdvance(0), as the store's
// tests run their pollers: every caught-up round records its watermark,
// so that a Settle with no new impression waits one round, not a second.
func TestWatermarkEveryIdleRound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	agg := newFakeAgg()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := e.poller(t, agg, streampoll.WithClock(func() time.Time { return now }), streampoll.WithIdleAdvance(0))
	for i := range 3 {
		now = now.Add(time.Millisecond)
		caught, err := p.Poll(context.Background())
		require.NoError(t, err)
		require.True(t, caught)
		assert.Len(t, agg.advances[p.Reader()], i+1, "round %d", i)
	}
}

// TestNew refuses what cannot work.
func TestNew(t *testing.T) {
	t.Parallel()
	sc := dynamotest.StreamsClient(t, "http://127.0.0.1:1", nil)
	agg := newFakeAgg()
	cases := []struct {
		name   string
		client streampoll.Client
		agg    streampoll.Aggregator
		table  string
		opts   []streampoll.Option
	}{
		{"NoClient", nil, agg, "t", nil},
		{"NoAggregator", sc, nil, "t", nil},
		{"NoTable", sc, agg, "", nil},
		{"PageTooBig", sc, agg, "t", []streampoll.Option{streampoll.WithPageSize(1001)}},
		{"NoInterval", sc, agg, "t", []streampoll.Option{streampoll.WithInterval(0)}},
		{"NegativeIdleAdvance", sc, agg, "t", []streampoll.Option{streampoll.WithIdleAdvance(-time.Second)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := streampoll.New(tc.client, tc.agg, tc.table, tc.opts...)
			assert.Error(t, err)
		})
	}
}

// TestNoStream reports a table without a stream as a discovery failure,
// and waits a second before asking again; the failure is logged once a
// minute however often it repeats.
func TestNoStream(t *testing.T) {
	t.Parallel()
	srv := dynamotest.StartServer(t)
	obs := &recorder{}
	var logs bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p, err := streampoll.New(dynamotest.StreamsClient(t, srv.URL, nil), newFakeAgg(), "none", streampoll.WithObserver(obs),
		streampoll.WithClock(func() time.Time { return now }), streampoll.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	for range 2 {
		_, err = p.Poll(context.Background())
		assert.ErrorContains(t, err, "no stream")
		now = now.Add(time.Second)
	}
	_, err = p.Poll(context.Background())
	assert.Error(t, err)
	now = now.Add(time.Millisecond)
	caught, err := p.Poll(context.Background())
	assert.NoError(t, err, "no second try within a second")
	assert.False(t, caught)
	assert.Equal(t, int64(3), srv.Usage().Operations["ListStreams"].Requests)
	assert.Equal(t, 3, obs.failures[streampoll.StageDiscover])
	assert.Equal(t, 1, strings.Count(logs.String(), "stream poll failed"))
}

// TestFilter passes Apply only the records the filter keeps, and applies
// no page that keeps none.
func TestFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dynamotest.WithShards(1))
	e.write(t, 6, "1")
	agg := newFakeAgg()
	obs := &recorder{}
	keep := func(r dynamostore.StreamRecord) bool {
		pk := r.New["pk"].(*types.AttributeValueMemberS).Value
		return pk == "item1" || pk == "item4"
	}
	p := e.poller(t, agg, streampoll.WithFilter(keep), streampoll.WithPageSize(2), streampoll.WithObserver(obs))
	catchUp(t, p)
	assert.Equal(t, map[string][]string{"item1": {"1"}, "item4": {"1"}}, agg.values)
	assert.Equal(t, 2, obs.applied, "pages 0-1 and 4-5 are applied, 2-3 is not")
	assert.Len(t, obs.lags, 2)
}
