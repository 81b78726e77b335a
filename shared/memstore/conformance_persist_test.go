package memstore_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// TestReopenConformance runs the conformance suite against stores made by
// Open, with the reopen cases: a store is closed and opened again on its
// directory, with the same clock and TTL, as a restarted server would.
func TestReopenConformance(t *testing.T) {
	t.Parallel()
	type opened struct {
		dir string
		now func() time.Time
		ttl time.Duration
	}
	var stores sync.Map // *memstore.Store -> opened
	open := func(t *testing.T, o opened) adcount.Store {
		t.Helper()
		s, err := openStore(t, o.dir, o.now, o.ttl)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		stores.Store(s, o)
		return s
	}
	newStore := func(t *testing.T, now func() time.Time, ttl time.Duration) adcount.Store {
		return open(t, opened{dir: t.TempDir(), now: now, ttl: ttl})
	}
	reopen := func(t *testing.T, s adcount.Store) adcount.Store {
		t.Helper()
		v, ok := stores.LoadAndDelete(s)
		require.True(t, ok, "reopen of a store this test did not open")
		require.NoError(t, s.(*memstore.Store).Close())
		return open(t, v.(opened))
	}
	ran := storetest.Run(t, newStore, storetest.WithReopen(reopen))
	assert.Contains(t, ran, "ReopenKeepsEverythingAcknowledged")
}
