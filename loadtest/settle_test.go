package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSettledStatsWaitsForAsOf checks that the harness reads a campaign's
// stats again until the service says they are fresh past the attack's end.
func TestSettledStatsWaitsForAsOf(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		// asOf answers the nth read (from 1); the zero time leaves as_of out.
		asOf      func(n int64) time.Time
		wantReads int64
		wantErr   string
	}{
		// A store that counts synchronously says so at once.
		{"FreshAtOnce", func(int64) time.Time { return since.Add(time.Millisecond) }, 1, ""},
		// An aggregating store catches up on the third read; the first two
		// totals are stale and must not be verified.
		{"CatchesUp", func(n int64) time.Time { return since.Add(time.Duration(n-2) * time.Second) }, 3, ""},
		// A service without as_of is read once.
		{"NoAsOf", func(int64) time.Time { return time.Time{} }, 1, ""},
		// An aggregator that never catches up fails the run, by name.
		{"NeverCatchesUp", func(int64) time.Time { return since }, 0, "aggregator is behind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var reads atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := reads.Add(1)
				body := map[string]any{"total": n}
				if at := tc.asOf(n); !at.IsZero() {
					body["as_of"] = at.Format(time.RFC3339Nano)
				}
				_ = json.NewEncoder(w).Encode(body)
			}))
			t.Cleanup(srv.Close)
			c := newAPIClient(srv.URL, "", time.Second)
			s, err := c.settledStats(context.Background(), "c1", since, 300*time.Millisecond)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantReads, reads.Load())
			assert.Equal(t, tc.wantReads, s.Total, "the stats of the fresh read")
		})
	}
}
