package dynamostore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestEarlierPathRewritingANewMarkerCountsOnce is the rolling deployment
// docs/dynamodb.md ("Migration") promises is safe: an instance still on the
// earlier, transactional write path counts an impression whose key's last
// marker the new path wrote and whose window has ended. The earlier path
// counts it in its own transaction (TOTAL#<shard>, HOUR#<hour>#<shard>) and
// rewrites the marker with SET expMs, ttl, owner only, so the new marker's
// c, a and b stay in the item. The aggregator must not count that rewrite
// a second time.
func TestEarlierPathRewritingANewMarkerCountsOnce(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	c := createCampaign(t, s, storetest.Epoch)
	imp := adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"}
	require.True(t, record(t, s, imp), "the new path counts the first impression")
	require.Equal(t, int64(1), stats(t, s, c.ID).Total)

	// Two hours later an instance still running the earlier code counts
	// the same key again, with exactly the transaction it sent.
	clock.Advance(2 * time.Hour)
	now := clock.Now()
	nowMs := now.UnixMilli()
	expMs := now.Add(adcount.DefaultDedupTTL).UnixMilli()
	bucket := adcount.Bucket(now)
	hour := bucket / adcount.HourBuckets
	k := imp.Key()
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	table := aws.String(tg.table)
	_, err := tg.client(t, nil).TransactWriteItems(context.Background(), &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                 table,
			Key:                       itemKey(fmt.Sprintf("DEDUP#%x", k[:]), "MARKER"),
			UpdateExpression:          aws.String("SET #exp = :exp, #ttl = :ttl, #owner = :owner"),
			ConditionExpression:       aws.String("attribute_not_exists(#exp) OR #exp <= :now"),
			ExpressionAttributeNames:  map[string]string{"#exp": "expMs", "#ttl": "ttl", "#owner": "owner"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":exp": n(expMs), ":ttl": n(expMs/1000 + 1), ":owner": &types.AttributeValueMemberS{Value: "earlier-path-owner"}, ":now": n(nowMs)},
		}},
		{Update: &types.Update{
			TableName:                 table,
			Key:                       itemKey("CAMPAIGN#"+c.ID, "TOTAL#000"),
			UpdateExpression:          aws.String("ADD #n :one"),
			ExpressionAttributeNames:  map[string]string{"#n": "n"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": n(1)},
		}},
		{Update: &types.Update{
			TableName:                 table,
			Key:                       itemKey("CAMPAIGN#"+c.ID, fmt.Sprintf("HOUR#%016x#000", uint64(hour)^(1<<63))),
			UpdateExpression:          aws.String("ADD #m :one"),
			ExpressionAttributeNames:  map[string]string{"#m": fmt.Sprintf("m%02d", bucket-hour*adcount.HourBuckets)},
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": n(1)},
		}},
	}})
	require.NoError(t, err)

	got := stats(t, s, c.ID)
	assert.Equal(t, int64(2), got.Total, "two impressions, each counted once: by the new path's marker and by the earlier path's transaction")
	assert.Equal(t, int64(1), got.LastHour, "only the earlier path's impression is in the last hour")
}

// TestRecordWithoutCreationTimeBreaksNoStats applies a record that carries
// no creation time, as streampoll's convert and a Lambda event without
// ApproximateCreationDateTime both turn into the zero time. Its count must
// land, and Stats of every campaign must go on answering: the checkpoint's
// watermark is read by every Stats call.
func TestRecordWithoutCreationTimeBreaksNoStats(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	c := createCampaign(t, a.store, storetest.Epoch)
	recs := a.recs.counted(c.ID, 1)
	recs[0].Created = time.Time{}
	_, err := a.aggregator(t, nil).Apply(context.Background(), "shard-without-times", recs)
	require.NoError(t, err)
	st, err := a.store.Stats(context.Background(), c.ID)
	require.NoError(t, err, "one record without a time must not fail every Stats call")
	assert.Equal(t, int64(1), st.Total)
}

// loseRaceThenFail is a transport that lets the first TransactWriteItems
// through, cancels the second on its checkpoint's condition, as DynamoDB
// does when another aggregator moved the checkpoint first, and then fails
// every GetItem: the aggregator cannot read the checkpoint again.
type loseRaceThenFail struct {
	next  http.RoundTripper
	mu    sync.Mutex
	txns  int
	after bool
}

func (l *loseRaceThenFail) RoundTrip(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case strings.HasSuffix(target, ".TransactWriteItems"):
		l.txns++
		if l.txns < 2 {
			return l.next.RoundTrip(r)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		var in struct{ TransactItems []json.RawMessage }
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, err
		}
		reasons := make([]map[string]string, len(in.TransactItems))
		for i := range reasons {
			reasons[i] = map[string]string{"Code": "None"}
		}
		reasons[len(reasons)-1] = map[string]string{"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
		l.after = true
		return awsError(r, http.StatusBadRequest, "TransactionCanceledException", reasons), nil
	case l.after && strings.HasSuffix(target, ".GetItem"):
		return awsError(r, http.StatusInternalServerError, "InternalServerError", nil), nil
	}
	return l.next.RoundTrip(r)
}

// TestThroughCoversTransactionsCommittedBeforeAFailedReread applies a batch
// that needs several transactions. The first commits; the second loses the
// checkpoint to another aggregator, and reading the checkpoint again fails.
// Applied must still say the first transaction's records are applied
// (Through, as documented: "the last record that is applied, by this call
// or before it"), consistent with the Counted it reports.
func TestThroughCoversTransactionsCommittedBeforeAFailedReread(t *testing.T) {
	t.Parallel()
	a := newAggTarget(t)
	var recs []dynamostore.StreamRecord
	for range 40 {
		c := createCampaign(t, a.store, storetest.Epoch)
		recs = append(recs, a.recs.counted(c.ID, 1)...)
	}
	l := &loseRaceThenFail{}
	db := a.tg.client(t, func(next http.RoundTripper) http.RoundTripper { l.next = next; return l })
	// Stages of one transaction each: a batch that needs several is
	// applied as prefixes of its records, each with its own checkpoint.
	agg, err := dynamostore.NewAggregator(db, a.tg.table, dynamostore.WithAggregatorTimeout(time.Minute), dynamostore.WithStageItems(99))
	require.NoError(t, err)
	res, err := agg.Apply(context.Background(), "shard-1", recs)
	require.ErrorIs(t, err, adcount.ErrUnavailable)
	require.Equal(t, 1, res.Transactions, "the first transaction committed")
	require.Positive(t, res.Counted)
	assert.Equal(t, recs[res.Counted-1].Seq, res.Through, "the records of the committed transaction are applied")
}

// TestAsOfWithoutReaderNeverPassesAnIdleShardsNewRecord is the Lambda-only
// as_of in normal operation: shard B had no counted impression for three
// minutes, then takes one, which its batch (the mapping's 1 s window, the
// stream's propagation) has not yet delivered, while shard A applies a
// newer one. as_of claims every impression acknowledged before it is in
// the counts, so it must not pass B's record. It once did, when a minimum
// over the shards moving in the last two minutes stood in for a reader;
// now as_of comes from live readers only, and with none it is absent.
func TestAsOfWithoutReaderNeverPassesAnIdleShardsNewRecord(t *testing.T) {
	t.Parallel()
	tg := newQuietTarget(t)
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	c := createCampaign(t, s, storetest.Epoch)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	earlier, err := dynamostore.NewAggregator(tg.client(t, nil), tg.table,
		dynamostore.WithAggregatorClock(func() time.Time { return now.Add(-3 * time.Minute) }))
	require.NoError(t, err)
	agg, err := dynamostore.NewAggregator(tg.client(t, nil), tg.table)
	require.NoError(t, err)
	recs := newRec(clock)

	b := recs.counted(c.ID, 1)
	b[0].Created = now.Add(-3 * time.Minute)
	_, err = earlier.Apply(ctx, "shard-B", b)
	require.NoError(t, err)
	pendingOnB := now.Add(-2 * time.Second) // acknowledged, in B's next batch
	a := recs.counted(c.ID, 1)
	a[0].Created = now.Add(-time.Second)
	_, err = agg.Apply(ctx, "shard-A", a)
	require.NoError(t, err)

	st, err := s.Stats(ctx, c.ID)
	require.NoError(t, err)
	assert.True(t, st.AsOf.Before(pendingOnB), "as_of %v claims B's impression of %v, which is not in the counts", st.AsOf, pendingOnB)
}
