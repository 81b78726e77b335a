// Package stores opens the adcount.Store that a Config names. It is the one
// place that knows every store implementation, so that the local server and
// each Lambda function choose a store the same way.
package stores

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/memstore/wal"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// Open returns the store cfg names. Call it once at start-up: the memory
// store begins empty each time unless cfg.DataDir is set, in which case it
// restores its state from there. A store that holds files implements
// io.Closer; close it after the last request.
//
// The DynamoDB store reads its AWS settings through getenv, as the AWS
// variables that the SDK documents (see dynamoDBClient). Open makes no call
// to DynamoDB; a missing table shows in the store's readiness check
// (dynamostore.Store.Ping) and as 503s.
//
// logger receives what a persistent memory store reports as it opens, such
// as what it restored and a torn log tail it dropped.
func Open(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger) (adcount.Store, error) {
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
		db, err := dynamoDBClient(ctx, getenv)
		if err != nil {
			return nil, err
		}
		s, err := dynamostore.New(db, cfg.DynamoDBTable,
			dynamostore.WithDedupTTL(cfg.DedupTTL))
		if err != nil {
			return nil, fmt.Errorf("stores: open DynamoDB store: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("stores: unknown store %q", cfg.Store)
	}
}

// CreateTable creates the DynamoDB store's table, DYNAMODB_TABLE, with the
// key schema and TTL that dynamostore.Schema describes, for local use,
// reading the AWS settings through getenv as Open does. It reports whether
// it created the table; an existing one is left as it is.
func CreateTable(ctx context.Context, cfg config.Config, getenv func(string) string) (bool, error) {
	if cfg.DynamoDBTable == "" {
		return false, fmt.Errorf("stores: create table: DYNAMODB_TABLE is required")
	}
	db, err := dynamoDBClient(ctx, getenv)
	if err != nil {
		return false, err
	}
	return dynamostore.CreateTable(ctx, db, cfg.DynamoDBTable)
}

// OpenPoller returns a poller of the stream of the DynamoDB store's table,
// DYNAMODB_TABLE, that folds it into the counts with the aggregator the
// Lambda function runs, for the local server with STORE=dynamodb and
// DYNAMODB_AGGREGATOR=true. It reads the AWS settings through getenv as
// Open does, and the Streams API's endpoint as StreamsClient says. It
// makes no call: a table without a stream shows as the poller's failures.
func OpenPoller(ctx context.Context, cfg config.Config, getenv func(string) string, opts ...streampoll.Option) (*streampoll.Poller, error) {
	agg, err := OpenAggregator(ctx, cfg, getenv)
	if err != nil {
		return nil, err
	}
	streams, err := StreamsClient(ctx, getenv)
	if err != nil {
		return nil, err
	}
	return NewPoller(agg, streams, cfg.DynamoDBTable, opts...)
}

// NewPoller returns a poller of the stream of table, read through streams,
// that folds it into the counts through agg. It passes agg only the dedup
// markers' records (dynamostore.IsMarkerRecord), as the template's event
// source mapping's filter does, so that every reader of the stream keeps
// the same records. OpenPoller builds its poller with it; the aggregate
// function's scheduled reader builds one per invocation over the
// aggregator and Streams client it opened at init. It makes no call.
func NewPoller(agg *dynamostore.Aggregator, streams streampoll.Client, table string, opts ...streampoll.Option) (*streampoll.Poller, error) {
	if agg == nil {
		// A nil pointer would reach streampoll as a non-nil interface.
		return nil, fmt.Errorf("stores: open stream poller: an aggregator is required")
	}
	p, err := streampoll.New(streams, agg, table, append([]streampoll.Option{streampoll.WithFilter(dynamostore.IsMarkerRecord)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("stores: open stream poller: %w", err)
	}
	return p, nil
}

// dynamoDBClient builds a DynamoDB client from the AWS variables that
// getenv holds, so that the settings a caller passes in, not the process
// environment, decide where it connects and as whom:
//
//   - AWS_REGION, or else AWS_DEFAULT_REGION;
//   - AWS_ENDPOINT_URL_DYNAMODB, or else AWS_ENDPOINT_URL, for DynamoDB
//     Local or another endpoint;
//   - AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with AWS_SESSION_TOKEN
//     if set, as static credentials: how Lambda hands a function its role's
//     credentials, and how DynamoDB Local is reached;
//   - AWS_PROFILE, a profile of the shared config files.
//
// Whatever getenv leaves unset comes from the SDK's default chain as
// before: the shared config and credentials files, and the container or
// instance role. That chain reads its own few variables (such as
// AWS_CONTAINER_CREDENTIALS_FULL_URI or AWS_WEB_IDENTITY_TOKEN_FILE) from
// the process environment, which is the same as getenv in production.
func dynamoDBClient(ctx context.Context, getenv func(string) string) (*dynamodb.Client, error) {
	awsCfg, err := awsConfig(ctx, getenv)
	if err != nil {
		return nil, err
	}
	endpoint := firstSet(getenv, "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")
	return dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) {
		// Set on the client, this wins over any endpoint the SDK found in
		// the process environment or the config files.
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// StreamsClient builds a DynamoDB Streams client from the AWS variables
// that getenv holds, as dynamoDBClient does, with the endpoint from
// AWS_ENDPOINT_URL_DYNAMODB_STREAMS, or else AWS_ENDPOINT_URL: the SDK's
// own names. A server such as DynamoDB Local that serves both APIs on one
// port is reached by setting both endpoint variables to its URL.
func StreamsClient(ctx context.Context, getenv func(string) string) (*dynamodbstreams.Client, error) {
	awsCfg, err := awsConfig(ctx, getenv)
	if err != nil {
		return nil, err
	}
	endpoint := firstSet(getenv, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "AWS_ENDPOINT_URL")
	return dynamodbstreams.NewFromConfig(awsCfg, func(o *dynamodbstreams.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// firstSet returns the value of the first of names that getenv has set.
func firstSet(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// awsConfig loads the SDK's configuration with the region, profile and
// static credentials that getenv holds (see dynamoDBClient).
func awsConfig(ctx context.Context, getenv func(string) string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region := firstSet(getenv, "AWS_REGION", "AWS_DEFAULT_REGION"); region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	if profile := getenv("AWS_PROFILE"); profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(profile))
	}
	if id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("stores: load AWS configuration: %w", err)
	}
	return awsCfg, nil
}
