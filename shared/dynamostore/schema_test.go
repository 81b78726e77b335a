package dynamostore_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamostore"
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
