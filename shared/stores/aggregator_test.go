package stores_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/stores"
)

// TestOpenAggregator opens the aggregator the way the aggregate function
// does: the table is required whatever the store, and the client reaches
// the endpoint in getenv.
func TestOpenAggregator(t *testing.T) {
	t.Parallel()
	getenv := mapEnv(dynamotest.Env(dynamotest.Start(t)))
	_, err := stores.OpenAggregator(context.Background(), config.Config{Store: config.StoreMemory}, getenv)
	assert.ErrorContains(t, err, "DYNAMODB_TABLE")
	cfg := config.Config{Store: config.StoreMemory, DynamoDBTable: "impressions"}
	_, err = stores.CreateTable(context.Background(), cfg, getenv)
	require.NoError(t, err)
	a, err := stores.OpenAggregator(context.Background(), cfg, getenv)
	require.NoError(t, err)
	seq, err := a.Checkpoint(context.Background(), "shardId-1")
	require.NoError(t, err, "the aggregator reaches the table at the endpoint in getenv")
	assert.Empty(t, seq, "nothing applied yet")
}
