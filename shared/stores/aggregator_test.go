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
	a, err := stores.OpenAggregator(context.Background(), config.Config{Store: config.StoreMemory, DynamoDBTable: "impressions"}, getenv)
	require.NoError(t, err)
	assert.NotNil(t, a)
}
