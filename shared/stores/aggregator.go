package stores

import (
	"context"
	"fmt"

	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/dynamostore"
)

// OpenAggregator returns the stream aggregator of the DynamoDB table that
// cfg names, with a client built from the AWS settings in getenv exactly
// as Open builds the store's, so that the aggregator and the store it
// aggregates for reach the same table as the same principal. It needs
// DYNAMODB_TABLE whatever STORE says: the table's stream is what it
// aggregates. It makes no call to DynamoDB.
func OpenAggregator(ctx context.Context, cfg config.Config, getenv func(string) string, opts ...dynamostore.AggregatorOption) (*dynamostore.Aggregator, error) {
	if cfg.DynamoDBTable == "" {
		return nil, fmt.Errorf("stores: open aggregator: DYNAMODB_TABLE is required: the aggregator folds that table's stream into its counts")
	}
	db, err := dynamoDBClient(ctx, getenv)
	if err != nil {
		return nil, err
	}
	a, err := dynamostore.NewAggregator(db, cfg.DynamoDBTable, opts...)
	if err != nil {
		return nil, fmt.Errorf("stores: open aggregator: %w", err)
	}
	return a, nil
}
