package stores_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/stores"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	s, err := stores.Open(context.Background(), config.Config{Store: config.StoreMemory, DedupTTL: time.Hour})
	require.NoError(t, err)
	assert.IsType(t, &memstore.Store{}, s)

	_, err = stores.Open(context.Background(), config.Config{Store: "nope", DedupTTL: time.Hour})
	assert.ErrorContains(t, err, "unknown store")
	_, err = stores.Open(context.Background(), config.Config{Store: config.StoreMemory})
	assert.ErrorContains(t, err, "TTL", "the store's own limits are enforced")
}

func TestOpenWithDataDirPersists(t *testing.T) {
	t.Parallel()
	cfg := config.Config{Store: config.StoreMemory, DedupTTL: time.Hour, DataDir: t.TempDir(), FsyncBatch: 16, SnapshotInterval: time.Minute}
	s, err := stores.Open(context.Background(), cfg)
	require.NoError(t, err)
	c, ok := s.(io.Closer)
	require.True(t, ok, "a store with files to close says so")
	_, err = stores.Open(context.Background(), cfg)
	assert.ErrorContains(t, err, "in use", "the settings reached the store")
	require.NoError(t, c.Close())
}
