package dynamostore_test

import (
	"context"
	"fmt"
	"strconv"
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
