package dynamostore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestCreateTable creates a table through the create-table path and reads
// back its key schema and TTL, and checks that running it again is
// harmless.
func TestCreateTable(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	db := tg.client(t, nil)
	ctx := context.Background()
	name := tg.table
	if tg.endpoint != "" {
		// In process: a second, fresh table on the same server.
		name = "created-" + uuid.NewString()[:8]
		created, err := dynamostore.CreateTable(ctx, db, name)
		require.NoError(t, err)
		assert.True(t, created)
	}
	created, err := dynamostore.CreateTable(ctx, db, name)
	require.NoError(t, err)
	assert.False(t, created, "an existing table is left as it is")

	schema := dynamostore.Schema()
	desc, err := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	require.NoError(t, err)
	assert.Equal(t, keyNames(schema.KeySchema), keyNames(desc.Table.KeySchema))
	ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	require.NoError(t, err)
	// DynamoDB reports ENABLING for up to an hour after the switch.
	assert.Contains(t, []types.TimeToLiveStatus{types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling}, ttl.TimeToLiveDescription.TimeToLiveStatus)
	assert.Equal(t, dynamostore.TTLAttribute, aws.ToString(ttl.TimeToLiveDescription.AttributeName))
}

func keyNames(ks []types.KeySchemaElement) map[string]types.KeyType {
	m := map[string]types.KeyType{}
	for _, k := range ks {
		m[aws.ToString(k.AttributeName)] = k.KeyType
	}
	return m
}

// TestCreateTableMigratesEarlierItems runs create-table on a table that an
// earlier store wrote: campaigns without list entries, and day items with
// a TTL. The campaigns join the list (last: they have no creation time)
// and the day items lose their TTL, and running it again changes nothing.
func TestCreateTableMigratesEarlierItems(t *testing.T) {
	t.Parallel()
	tg := newQuietTarget(t)
	db := tg.client(t, nil)
	ctx := context.Background()
	clock := storetest.NewClock(storetest.Epoch)
	s := tg.store(t, nil, dynamostore.WithClock(clock.Now))
	current, err := adcount.NewCampaign(uuid.NewString(), "Current", storetest.Epoch)
	require.NoError(t, err)
	current.CreatedAt = storetest.Epoch
	require.NoError(t, s.CreateCampaign(ctx, current))
	earlier := []string{"earlier-" + uuid.NewString(), "earlier-" + uuid.NewString()}
	for _, id := range earlier {
		putEarlierCampaign(t, tg, id)
	}
	day := fmt.Sprintf("DAY#%016x", uint64(storetest.Epoch.Unix()/86400)^(1<<63))
	for _, it := range []map[string]types.AttributeValue{
		// A day item of a campaign, as the earlier aggregator wrote it.
		{"pk": str("CAMPAIGN#" + earlier[0]), "sk": str(day), "h10": num("4"), "ttl": num("1767000000")},
		// An ad's day item keeps its TTL: ad day points are kept 90 days.
		{"pk": str(fmt.Sprintf("AD#%d#%s#a", len(earlier[0]), earlier[0])), "sk": str(day), "h10": num("4"), "ttl": num("1767000000")},
	} {
		_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tg.table), Item: it})
		require.NoError(t, err)
	}
	listed := func() []string {
		t.Helper()
		p, err := s.ListCampaigns(ctx, adcount.CampaignQuery{Limit: adcount.MaxPageLimit, Now: clock.Now()})
		require.NoError(t, err)
		var ids []string
		for _, c := range p.Campaigns {
			ids = append(ids, c.ID)
		}
		return ids
	}
	require.Equal(t, []string{current.ID}, listed(), "before the migration only the campaign the store made is listed")

	for run := range 2 {
		created, err := dynamostore.CreateTable(ctx, db, tg.table)
		require.NoError(t, err)
		require.False(t, created)
		got := listed()
		require.Len(t, got, 3, "run %d", run)
		assert.Equal(t, current.ID, got[0], "campaigns with a creation time list first")
		assert.ElementsMatch(t, earlier, got[1:], "run %d", run)
		items := map[string]map[string]types.AttributeValue{}
		for _, pk := range []string{"CAMPAIGN#" + earlier[0], fmt.Sprintf("AD#%d#%s#a", len(earlier[0]), earlier[0])} {
			out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tg.table), Key: itemKey(pk, day), ConsistentRead: aws.Bool(true)})
			require.NoError(t, err)
			items[pk] = out.Item
		}
		assert.NotContains(t, items["CAMPAIGN#"+earlier[0]], "ttl", "the campaign's day is kept for good")
		assert.Contains(t, items["CAMPAIGN#"+earlier[0]], "h10")
		assert.Contains(t, items[fmt.Sprintf("AD#%d#%s#a", len(earlier[0]), earlier[0])], "ttl", "an ad's day still expires")
	}
	c, err := s.Campaign(ctx, earlier[1])
	require.NoError(t, err)
	assert.Equal(t, "Earlier", c.Name)
	assert.True(t, c.StartTime.Equal(storetest.Epoch))
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
