package dynamotest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamotest"
)

// TestUsageBillsAsDynamoDB runs one request against known items and checks
// what the server counts and bills for it. Items are key("x") plus "v":
// pk (2+1) and sk (2+1) make 6 bytes, v 1 more than its string.
func TestUsageBillsAsDynamoDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tbl := aws.String(tableName)
	withV := func(pk string, size int) map[string]types.AttributeValue {
		it := key(pk)
		it["v"] = s(strings.Repeat("x", size))
		return it
	}
	small := func(f fixture) { f.put(t, "a", map[string]types.AttributeValue{"v": s("1")}) }
	cases := []struct {
		name  string
		setup func(f fixture)
		do    func(t *testing.T, f fixture)
		op    string
		want  dynamotest.Counts
	}{
		{
			// Why: a marker-sized put is one WRU, the hot path's cost.
			name: "SmallPut",
			do:   func(t *testing.T, f fixture) { small(f) },
			op:   "PutItem",
			want: dynamotest.Counts{Requests: 1, ItemsWritten: 1, Changes: 1, WriteUnits: 1},
		},
		{
			// Why: 1 KB is the unit: 6+1+1017 = 1024 bytes is one, one
			// byte more is two.
			name: "PutAtAndOverOneKB",
			do: func(t *testing.T, f fixture) {
				_, err := f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: withV("a", 1017)})
				require.NoError(t, err)
				_, err = f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: withV("b", 1018)})
				require.NoError(t, err)
			},
			op:   "PutItem",
			want: dynamotest.Counts{Requests: 2, ItemsWritten: 2, Changes: 2, WriteUnits: 3},
		},
		{
			// Why: an update bills the larger of the item before and after.
			name: "UpdateBillsTheLargerImage",
			setup: func(f fixture) {
				_, _ = f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: withV("a", 3000)})
			},
			do: func(t *testing.T, f fixture) {
				_, err := f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: tbl, Key: key("a"),
					UpdateExpression: aws.String("SET v = :v"), ExpressionAttributeValues: map[string]types.AttributeValue{":v": s("1")}})
				require.NoError(t, err)
			},
			op:   "UpdateItem",
			want: dynamotest.Counts{Requests: 1, ItemsWritten: 1, Changes: 1, WriteUnits: 3},
		},
		{
			// Why: a duplicate's refused marker write still costs a WRU.
			name:  "FailedConditionCostsOne",
			setup: small,
			do: func(t *testing.T, f fixture) {
				_, err := f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: withV("a", 5),
					ConditionExpression: aws.String("attribute_not_exists(pk)")})
				require.Error(t, err)
			},
			op:   "PutItem",
			want: dynamotest.Counts{Requests: 1, Errors: 1, ItemsWritten: 1, WriteUnits: 1},
		},
		{
			// Why: a transaction bills each action twice, a ConditionCheck
			// included; this is the old hot path's price.
			name:  "TransactionCostsTwicePerAction",
			setup: small,
			do: func(t *testing.T, f fixture) {
				_, err := f.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
					{Put: &types.Put{TableName: tbl, Item: withV("b", 1500)}},
					{Update: &types.Update{TableName: tbl, Key: key("c"), UpdateExpression: aws.String("ADD n :one"),
						ExpressionAttributeValues: map[string]types.AttributeValue{":one": n("1")}}},
					{ConditionCheck: &types.ConditionCheck{TableName: tbl, Key: key("a"), ConditionExpression: aws.String("attribute_exists(pk)")}},
				}})
				require.NoError(t, err)
			},
			op:   "TransactWriteItems",
			want: dynamotest.Counts{Requests: 1, ItemsWritten: 2, Changes: 2, WriteUnits: 2*2 + 2*1 + 2*1},
		},
		{
			// Why: a strongly consistent read is one RRU per 4 KB.
			name: "ConsistentGet",
			setup: func(f fixture) {
				_, _ = f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl, Item: withV("a", 5000)})
			},
			do: func(t *testing.T, f fixture) {
				_, err := f.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: tbl, Key: key("a"), ConsistentRead: aws.Bool(true),
					ProjectionExpression: aws.String("pk")})
				require.NoError(t, err)
			},
			op:   "GetItem",
			want: dynamotest.Counts{Requests: 1, ItemsRead: 1, ReadUnits: 2},
		},
		{
			// Why: an eventually consistent read is half, even of nothing.
			name: "EventuallyConsistentGetOfNothing",
			do: func(t *testing.T, f fixture) {
				_, err := f.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: tbl, Key: key("none")})
				require.NoError(t, err)
			},
			op:   "GetItem",
			want: dynamotest.Counts{Requests: 1, ReadUnits: 0.5},
		},
		{
			// Why: a query rounds all the items it returns up once.
			name: "Query",
			setup: func(f fixture) {
				for _, sk := range []string{"1", "2", "3"} {
					_, _ = f.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: tbl,
						Item: map[string]types.AttributeValue{"pk": s("q"), "sk": s(sk), "v": s(strings.Repeat("x", 2000))}})
				}
			},
			do: func(t *testing.T, f fixture) {
				_, err := f.db.Query(ctx, &dynamodb.QueryInput{TableName: tbl, KeyConditionExpression: aws.String("pk = :p"),
					ExpressionAttributeValues: map[string]types.AttributeValue{":p": s("q")}, ConsistentRead: aws.Bool(true)})
				require.NoError(t, err)
			},
			op:   "Query",
			want: dynamotest.Counts{Requests: 1, ItemsRead: 3, ReadUnits: 2},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			f.srv.ResetUsage()
			tc.do(t, f)
			u := f.srv.Usage()
			assert.Equal(t, tc.want, u.Operations[tc.op], "\n%s", u)
			assert.Equal(t, tc.want, u.Counts, "only %s was sent", tc.op)
		})
	}
}

// TestUsageByCaller tells two clients' requests apart by their labels,
// and counts the Streams API's requests too.
func TestUsageByCaller(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.srv.ResetUsage()
	store := dynamotest.Client(t, f.srv.URL, dynamotest.Label("store"))
	agg := dynamotest.Client(t, f.srv.URL, dynamotest.Label("aggregator"))
	for _, pk := range []string{"a", "b"} {
		_, err := store.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tableName), Item: key(pk)})
		require.NoError(t, err)
	}
	_, err := agg.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(tableName), Key: key("c"),
		UpdateExpression: aws.String("ADD n :one"), ExpressionAttributeValues: map[string]types.AttributeValue{":one": n("1")}})
	require.NoError(t, err)
	f.records(t) // unlabelled Streams API requests

	u := f.srv.Usage()
	assert.Equal(t, dynamotest.Counts{Requests: 2, ItemsWritten: 2, Changes: 2, WriteUnits: 2}, u.Callers["store"])
	assert.Equal(t, dynamotest.Counts{Requests: 1, ItemsWritten: 1, Changes: 1, WriteUnits: 1}, u.Callers["aggregator"])
	assert.Positive(t, u.Operations["GetRecords"].Requests)
	assert.Positive(t, u.Operations["DescribeStream"].Requests)
	assert.Equal(t, int64(3), u.WriteUnits)

	mine := f.srv.CallerUsage("store")
	assert.Equal(t, int64(2), mine.Operations["PutItem"].Requests)
	assert.Len(t, mine.Operations, 1)
}
