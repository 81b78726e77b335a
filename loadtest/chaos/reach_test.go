package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reachFake is a server that holds every key already, so that the probe
// answers duplicate, and reports total impressions for one campaign, c1,
// with unique unique users (no unique_users when unique is negative).
func reachFake(t *testing.T, total, unique int64) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/impressions", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"message":"duplicate","counted":false}`))
	})
	mux.HandleFunc("GET /api/v1/campaigns/c1", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"id":"c1"}`))
	})
	mux.HandleFunc("GET /api/v1/campaigns/c1/stats", func(w http.ResponseWriter, _ *http.Request) {
		if unique < 0 {
			_, _ = fmt.Fprintf(w, `{"total":%d}`, total)
			return
		}
		_, _ = fmt.Fprintf(w, `{"total":%d,"unique_users":{"last_hour":%[2]d,"last_day":%[2]d,"total":%[2]d}}`, total, unique)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestVerifyChecksReach: after the probe, a campaign's unique users must
// be the users of the keys sent to it, exactly up to 1,000 users and
// within 5% above.
func TestVerifyChecksReach(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		users  int   // each sent two ads, both counted
		unique int64 // what the service reports; -1 for nothing
		want   string
		fails  bool
	}{
		// The control: 10 users of 20 keys, reported exactly.
		{"ExactSmall", 10, 10, "reach_off=0", false},
		// A user lost in a restart, where the service counts exactly.
		{"UserLost", 10, 9, "unique_users is 9, but it holds the keys of 10 distinct users", true},
		// A key counted as a user.
		{"KeyCountedAsUser", 10, 11, "reach_off=1", true},
		// Above 1,000 users an estimate within 5% passes...
		{"EstimateWithinTolerance", 2000, 2080, "reach_off=0", false},
		// ...and one further off fails.
		{"EstimateOff", 2000, 2120, "(1900 to 2100 allowed)", true},
		// A service without reach fails, by name.
		{"NoReach", 10, -1, "carry no unique_users", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var ledger strings.Builder
			ledger.WriteString("campaign\tc1\n")
			for u := range tc.users {
				for _, ad := range []string{"ad-1", "ad-2"} {
					fmt.Fprintf(&ledger, "imp\tcounted\tc1\tu-%d\t%s\n", u, ad)
				}
			}
			b, err := readBook(strings.NewReader(ledger.String()))
			require.NoError(t, err)
			c := newClient(reachFake(t, int64(2*tc.users), tc.unique), testKey, 4, 0)
			v, err := verify(context.Background(), c, b, 4)
			require.NoError(t, err)
			var out strings.Builder
			v.print(&out)
			assert.Contains(t, out.String(), tc.want)
			assert.Equal(t, !tc.fails, v.ok(), out.String())
			assert.Contains(t, out.String(), "lost=0 double=0", "reach is a problem of its own")
		})
	}
}
