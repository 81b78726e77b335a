package stores_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/stores"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	s, err := stores.Open(context.Background(), config.Config{Store: config.StoreMemory, DedupTTL: time.Hour}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.IsType(t, &memstore.Store{}, s)

	_, err = stores.Open(context.Background(), config.Config{Store: "nope", DedupTTL: time.Hour}, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "unknown store")
	_, err = stores.Open(context.Background(), config.Config{Store: config.StoreMemory}, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "dedup_ttl", "the store's own limits are enforced")
}

func TestOpenWithDataDirPersists(t *testing.T) {
	t.Parallel()
	cfg := config.Config{Store: config.StoreMemory, DedupTTL: time.Hour, DataDir: t.TempDir(), FsyncBatch: 16, SnapshotInterval: time.Minute}
	s, err := stores.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	c, ok := s.(io.Closer)
	require.True(t, ok, "a store with files to close says so")
	_, err = stores.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "in use", "the settings reached the store")
	require.NoError(t, c.Close())
}

// TestOpenDynamoDB opens the DynamoDB store the way every entry point does,
// through the AWS SDK's default configuration, pointed at an in-process
// server, and counts an impression through it. It sets the process
// environment, so it cannot run in parallel.
func TestOpenDynamoDB(t *testing.T) {
	for k, v := range dynamotest.Env(dynamotest.Start(t)) {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	cfg := config.Config{Store: config.StoreDynamoDB, DynamoDBTable: "impressions", DedupTTL: time.Hour, CounterShards: 2}
	created, err := stores.CreateTable(ctx, cfg)
	require.NoError(t, err)
	assert.True(t, created)

	s, err := stores.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.IsType(t, &dynamostore.Store{}, s)
	c, err := adcount.NewCampaign("c1", "Launch", time.Now().Add(-time.Minute))
	require.NoError(t, err)
	require.NoError(t, s.CreateCampaign(ctx, c))
	counted, err := s.RecordImpression(ctx, adcount.Impression{CampaignID: c.ID, UserID: "u", AdID: "a"})
	require.NoError(t, err)
	assert.True(t, counted)

	_, err = stores.Open(ctx, config.Config{Store: config.StoreDynamoDB, DynamoDBTable: "impressions", DedupTTL: time.Hour, CounterShards: 1000}, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "shards", "the store's own limits are enforced")
	_, err = stores.CreateTable(ctx, config.Config{Store: config.StoreDynamoDB})
	assert.ErrorContains(t, err, "DYNAMODB_TABLE")
}

// TestOpenAppliesTheCampaignLimit checks that MAX_CAMPAIGNS reaches the
// memory store, with and without a data directory.
func TestOpenAppliesTheCampaignLimit(t *testing.T) {
	t.Parallel()
	for name, dir := range map[string]string{"InMemory": "", "WithDataDir": t.TempDir()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Config{Store: config.StoreMemory, DedupTTL: time.Hour, DataDir: dir, FsyncBatch: 1, SnapshotInterval: time.Minute, MaxCampaigns: 1}
			s, err := stores.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			if c, ok := s.(io.Closer); ok {
				t.Cleanup(func() { assert.NoError(t, c.Close()) })
			}
			for i, want := range []error{nil, adcount.ErrLimit} {
				c, err := adcount.NewCampaign(fmt.Sprint("c", i), "n", time.Now())
				require.NoError(t, err)
				err = s.CreateCampaign(context.Background(), c)
				if want == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, want)
				}
			}
		})
	}
}
