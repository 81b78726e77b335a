package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/apiclient"
	"github.com/adcount/impression-counter/shared/botfilter"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// conformanceKey is the admin key the servers under the suite require, so
// that every admin call of the client is checked to carry it.
const conformanceKey = "conformance-admin-key-0123456789"

// serverBotFilter is the bot filter the server uses by default, so that
// the suite's filtered impressions, which the client sends with a
// crawler's User-Agent, are judged as the server would judge them.
func serverBotFilter(t *testing.T) httpapi.Option {
	t.Helper()
	isBot, err := botfilter.Judge(true)
	require.NoError(t, err)
	return httpapi.WithBotFilter(isBot)
}

// TestConformanceThroughTheClient runs the store conformance suite through
// apiclient over real HTTP, against the API handler the local server
// serves, over a memory store; both read the suite's clock, as the local
// server's handler and store read one clock. It checks the whole stack:
// the client's requests and error mapping, routing, JSON, the status
// mapping and the store.
func TestConformanceThroughTheClient(t *testing.T) {
	t.Parallel()
	bots := serverBotFilter(t)
	ran := storetest.Run(t, func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store {
		store, err := memstore.New(memstore.WithClock(now), memstore.WithDedupTTL(ttl))
		require.NoError(t, err)
		srv := httptest.NewServer(httpapi.NewHandler(store, bots, httpapi.WithClock(now),
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

// TestReopenConformanceThroughTheClient runs the suite through the client
// against a server over a store that persists to a directory, and adds the
// reopen cases: the store is closed and opened again on its directory, and
// a new handler over it takes the place of the old one behind the same URL,
// as a restarted server would. What the client saw acknowledged must
// survive.
func TestReopenConformanceThroughTheClient(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bots := serverBotFilter(t)
	type server struct {
		dir     string
		now     func() time.Time
		ttl     time.Duration
		store   *memstore.Store
		handler atomic.Pointer[http.Handler]
	}
	open := func(t *testing.T, s *server) {
		t.Helper()
		store, err := memstore.Open(s.dir, memstore.WithClock(s.now), memstore.WithDedupTTL(s.ttl),
			memstore.WithLogger(quiet), memstore.WithSnapshotInterval(time.Hour))
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, store.Close()) })
		h := httpapi.NewHandler(store, bots, httpapi.WithClock(s.now), httpapi.WithAdminKeys([]string{conformanceKey}), httpapi.WithLogger(quiet))
		s.store = store
		s.handler.Store(&h)
	}
	var servers sync.Map // *apiclient.Client -> *server
	newStore := func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store {
		s := &server{dir: t.TempDir(), now: now, ttl: ttl}
		open(t, s)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*s.handler.Load()).ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		c, err := apiclient.New(srv.URL, apiclient.WithHTTPClient(srv.Client()), apiclient.WithAdminKey(conformanceKey))
		require.NoError(t, err)
		servers.Store(c, s)
		return c
	}
	reopen := func(t *testing.T, store adcount.Store) adcount.Store {
		t.Helper()
		v, ok := servers.Load(store)
		require.True(t, ok, "reopen of a client this test did not make")
		s := v.(*server)
		require.NoError(t, s.store.Close())
		open(t, s)
		return store
	}
	ran := storetest.Run(t, newStore, storetest.StoreChoosesIDs(), storetest.WithReopen(reopen))
	assert.Contains(t, ran, "ReopenKeepsEverythingAcknowledged")
}
