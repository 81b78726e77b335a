package stores_test

import (
	"context"
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
