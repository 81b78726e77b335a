// Package stores opens the adcount.Store that a Config names. It is the one
// place that knows every store implementation, so that the local server and
// each Lambda function choose a store the same way.
package stores

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/memstore/wal"
)

// Open returns the store cfg names. Call it once at start-up: the memory
// store begins empty each time unless cfg.DataDir is set, in which case it
// restores its state from there. A store that holds files implements
// io.Closer; close it after the last request.
//
// The DynamoDB store takes its AWS settings from the SDK's default chain:
// AWS_REGION, credentials, and AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local
// or another endpoint. Open makes no call to DynamoDB, so a missing table
// shows on the first request.
//
// logger receives what a persistent memory store reports as it opens, such
// as what it restored and a torn log tail it dropped.
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger) (adcount.Store, error) {
	switch cfg.Store {
	case config.StoreMemory:
		var s *memstore.Store
		var err error
		opts := []memstore.Option{memstore.WithDedupTTL(cfg.DedupTTL)}
		if cfg.MaxCampaigns != 0 {
			opts = append(opts, memstore.WithMaxCampaigns(cfg.MaxCampaigns))
		}
		if cfg.DataDir == "" {
			s, err = memstore.New(opts...)
		} else {
			s, err = memstore.Open(cfg.DataDir, append(opts,
				memstore.WithAcceptLoss(cfg.AcceptDataLoss),
				memstore.WithFsyncInterval(cfg.FsyncInterval),
				memstore.WithFsyncBatch(cfg.FsyncBatch),
				memstore.WithSnapshotInterval(cfg.SnapshotInterval),
				memstore.WithLogger(logger))...)
		}
		var loss *wal.LossError
		if errors.As(err, &loss) {
			return nil, fmt.Errorf("stores: open memory store: %w (the server's setting for that is ACCEPT_DATA_LOSS=true, for one start)", err)
		}
		if err != nil {
			return nil, fmt.Errorf("stores: open memory store: %w", err)
		}
		return s, nil
	case config.StoreDynamoDB:
		db, err := dynamoDBClient(ctx)
		if err != nil {
			return nil, err
		}
		s, err := dynamostore.New(db, cfg.DynamoDBTable,
			dynamostore.WithDedupTTL(cfg.DedupTTL),
			dynamostore.WithCounterShards(cfg.CounterShards))
		if err != nil {
			return nil, fmt.Errorf("stores: open DynamoDB store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("stores: unknown store %q", cfg.Store)
	}
}

// CreateTable creates the DynamoDB store's table, DYNAMODB_TABLE, with the
// key schema and TTL that dynamostore.Schema describes, for local use. It
// reports whether it created the table; an existing one is left as it is.
func CreateTable(ctx context.Context, cfg config.Config) (bool, error) {
	if cfg.DynamoDBTable == "" {
		return false, fmt.Errorf("stores: create table: DYNAMODB_TABLE is required")
	}
	db, err := dynamoDBClient(ctx)
	if err != nil {
		return false, err
	}
	return dynamostore.CreateTable(ctx, db, cfg.DynamoDBTable)
}

func dynamoDBClient(ctx context.Context) (*dynamodb.Client, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("stores: load AWS configuration: %w", err)
	}
	return dynamodb.NewFromConfig(awsCfg), nil
}
