package dynamotest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUpdateRemovesAttributes checks that an update's REMOVE clause takes
// the attributes off the item, alone or beside other clauses, named or by
// placeholder, in a single update and in a transaction, and that the
// stream shows the item without them, as DynamoDB does. minidyn itself
// leaves them in place.
func TestUpdateRemovesAttributes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		expr  string
		names map[string]string
		txn   bool
		want  []string // the attributes left besides the key
	}{
		// Why: the aggregator removes a day item's TTL beside its ADD.
		{"PlaceholderAfterAdd", "ADD n :one REMOVE #ttl", map[string]string{"#ttl": "ttl"}, true, []string{"keep", "n"}},
		// Why: the clause may come first, and name several attributes.
		{"SeveralBeforeSet", "REMOVE #ttl, keep SET v = :one", map[string]string{"#ttl": "ttl"}, false, []string{"n", "v"}},
		// Why: a REMOVE of an attribute the item lacks changes nothing.
		{"Absent", "REMOVE nothing", nil, false, []string{"keep", "n", "ttl"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := context.Background()
			f.put(t, "a", map[string]types.AttributeValue{"n": n("1"), "ttl": n("5"), "keep": s("x")})
			up := &types.Update{
				TableName: aws.String(tableName), Key: key("a"),
				UpdateExpression: aws.String(tc.expr), ExpressionAttributeNames: tc.names,
			}
			if tc.expr != "REMOVE nothing" {
				up.ExpressionAttributeValues = map[string]types.AttributeValue{":one": n("1")}
			}
			var err error
			if tc.txn {
				_, err = f.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{{Update: up}}})
			} else {
				_, err = f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
					TableName: up.TableName, Key: up.Key, UpdateExpression: up.UpdateExpression,
					ExpressionAttributeNames: up.ExpressionAttributeNames, ExpressionAttributeValues: up.ExpressionAttributeValues,
				})
			}
			require.NoError(t, err)
			out, err := f.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tableName), Key: key("a"), ConsistentRead: aws.Bool(true)})
			require.NoError(t, err)
			var got []string
			for name := range out.Item {
				if name != "pk" && name != "sk" {
					got = append(got, name)
				}
			}
			slices.Sort(got)
			assert.Equal(t, tc.want, got)
			recs := f.records(t)
			last := recs[len(recs)-1].Dynamodb.NewImage
			assert.Len(t, last, len(tc.want)+2, "the stream shows the item as it is")
		})
	}
}
