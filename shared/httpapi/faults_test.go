package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

// faultyStore wraps a real store and, while a fault is on, fails
// RecordImpression and RecordImpressions with ErrUnavailable, either before the real store sees
// the impression or after it has recorded it (a lost acknowledgement). The
// in-memory store cannot fail by itself, so this fake injects the fault.
type faultyStore struct {
	adcount.Store
	fault atomic.Int32 // one of the fault constants
}

const (
	noFault = iota
	failBefore
	failAfter
)

var _ adcount.Store = (*faultyStore)(nil)

func (f *faultyStore) RecordImpression(ctx context.Context, imp adcount.Impression) (adcount.Outcome, error) {
	switch f.fault.Load() {
	case failBefore:
		return 0, fmt.Errorf("faulty: record %s: %w", imp.UserID, adcount.ErrUnavailable)
	case failAfter:
		if _, err := f.Store.RecordImpression(ctx, imp); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("faulty: record %s: reply lost: %w", imp.UserID, adcount.ErrUnavailable)
	}
	return f.Store.RecordImpression(ctx, imp)
}

func (f *faultyStore) RecordImpressions(ctx context.Context, imps []adcount.Impression) ([]adcount.Result, error) {
	switch f.fault.Load() {
	case failBefore:
		return nil, fmt.Errorf("faulty: record batch of %d: %w", len(imps), adcount.ErrUnavailable)
	case failAfter:
		if _, err := f.Store.RecordImpressions(ctx, imps); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("faulty: record batch of %d: reply lost: %w", len(imps), adcount.ErrUnavailable)
	}
	return f.Store.RecordImpressions(ctx, imps)
}

// newFaultyServer serves the API over a memory store, on the suite's
// clock, whose faults the test switches on and off.
func newFaultyServer(t *testing.T) (*server, *faultyStore) {
	t.Helper()
	clock := storetest.NewClock(storetest.Epoch)
	mem, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	store := &faultyStore{Store: mem}
	srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	return &server{Server: srv, clock: clock}, store
}

// TestRetryAfterFaultCountsOnce: clients whose impressions failed with 503
// retry once the fault clears, and every impression counts exactly once,
// whether the fault struck before or after the store recorded it.
func TestRetryAfterFaultCountsOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault int32
	}{
		{"FailBeforeRecording", failBefore},
		{"FailAfterRecording", failAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, store := newFaultyServer(t)
			id := s.createCampaign(t, "Faults", storetest.Epoch)

			const users = 20
			store.fault.Store(tc.fault)
			for u := range users {
				r := s.do(t, "POST", "/api/v1/impressions", impression(id, fmt.Sprint("u", u), "a"))
				require.Equal(t, http.StatusServiceUnavailable, r.status)
				assert.Equal(t, "1", r.header.Get("Retry-After"))
			}
			store.fault.Store(noFault)
			counted := 0
			for u := range users {
				r := s.do(t, "POST", "/api/v1/impressions", impression(id, fmt.Sprint("u", u), "a"))
				require.Equal(t, http.StatusOK, r.status)
				if r.body["counted"] == true {
					counted++
				}
			}
			assert.Equal(t, float64(users), s.stats(t, id)["total"], "each impression counted once")
			if tc.fault == failBefore {
				assert.Equal(t, users, counted, "nothing was recorded during the fault")
			} else {
				assert.Zero(t, counted, "the retries find the impressions already counted")
			}
		})
	}
}
