package streampoll_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// propagating is a Streams client on which, while hold is set, no record
// is visible yet: DynamoDB Streams shows a write
// "in near-real time", not when it is acknowledged, so GetRecords at the
// shard's end answers an empty page with an iterator where it was.
type propagating struct {
	streampoll.Client
	mu   sync.Mutex
	hold bool
}

func (p *propagating) GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, opts ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	p.mu.Lock()
	hold := p.hold
	p.mu.Unlock()
	out, err := p.Client.GetRecords(ctx, in, opts...)
	if err != nil || !hold || len(out.Records) == 0 {
		return out, err
	}
	// The records are still on their way: the reader sees the shard's
	// end, and its next call asks again from the same place.
	return &dynamodbstreams.GetRecordsOutput{NextShardIterator: in.ShardIterator}, nil
}

// TestWatermarkAllowsForStreamPropagation writes an item, so that its
// write is acknowledged, and only then starts a round, while the stream
// has not yet shown the record. The round reads every shard "to its end"
// and records its start as the watermark, which as_of then reports as
// exact: every impression acknowledged before it is in the counts. It is
// not; the watermark must stay behind the write until the record has been
// applied.
func TestWatermarkAllowsForStreamPropagation(t *testing.T) {
	t.Parallel()
	written := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, dynamotest.WithShards(1), dynamotest.WithClock(func() time.Time { return written }))
	agg := newFakeAgg()
	sc := &propagating{Client: e.sc, hold: true}
	roundStart := written.Add(100 * time.Millisecond)
	e.write(t, 1, "1") // acknowledged at `written`, before the round
	held, err := streampoll.New(sc, agg, tableName, streampoll.WithClock(func() time.Time { return roundStart }))
	require.NoError(t, err)
	_, err = held.Poll(context.Background())
	require.NoError(t, err)
	require.Zero(t, agg.total(), "the record has not reached the stream's readers yet")
	for _, wm := range agg.advances[held.Reader()] {
		assert.False(t, wm.After(written), "watermark %v claims the write of %v, which is not applied", wm, written)
	}
}
