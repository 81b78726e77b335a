package main

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// conformanceKey is the admin key the servers under the suite require, so
// that every admin call of the client is checked to carry it.
const conformanceKey = "conformance-admin-key-0123456789"

// TestConformanceThroughTheClient runs the store conformance suite through
// apiclient over real HTTP, against the API handler the local server
// serves, over a memory store that reads the suite's clock. It checks the
// whole stack: the client's requests and error mapping, routing, JSON, the
// status mapping and the store.
func TestConformanceThroughTheClient(t *testing.T) {
	t.Parallel()
	ran := storetest.Run(t, func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store {
		store, err := memstore.New(memstore.WithClock(now), memstore.WithDedupTTL(ttl))
		require.NoError(t, err)
		srv := httptest.NewServer(httpapi.NewHandler(store,
			httpapi.WithAdminKeys([]string{conformanceKey}),
			httpapi.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))))
		t.Cleanup(srv.Close)
		c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()), apiclient.WithAdminKey(conformanceKey))
		require.NoError(t, err)
		return c
	}, storetest.StoreChoosesIDs())
	// Every case but the two that choose IDs and the reopen case runs:
	// the clock moves, because the store reads it directly.
	assert.GreaterOrEqual(t, len(ran), 13, "cases run: %v", ran)
	assert.Contains(t, ran, "WindowsSlideWithTheClock")
}
