package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/docs"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
)

// records is a sink that keeps every record it is given.
type records struct {
	mu  sync.Mutex
	got []httpapi.Record
}

var _ httpapi.Sink = (*records)(nil)

func (s *records) Observe(_ context.Context, rec httpapi.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, rec)
}

// last returns the latest record.
func (s *records) last(t *testing.T) httpapi.Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.got)
	return s.got[len(s.got)-1]
}

// sample turns a pattern into a request path, with "x" for each wildcard.
func sample(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	for {
		i := strings.IndexByte(path, '{')
		if i < 0 {
			return method, path
		}
		j := strings.IndexByte(path[i:], '}')
		path = path[:i] + "x" + path[i+j+1:]
	}
}

// TestRouteTable checks that every entry of the route table is registered
// under its own pattern, guarded or opened as its access class says, and
// that the lists derived from it agree with it.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	mem, err := memstore.New()
	require.NoError(t, err)
	sink := &records{}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "m 1\n") })
	srv := httptest.NewServer(httpapi.NewHandler(mem, httpapi.WithAdminKeys([]string{"k"}),
		httpapi.WithOperations(metrics, docs.OpenAPI), httpapi.WithDashboard(testDashboard), httpapi.WithMetrics(sink),
		httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	lambda := httptest.NewServer(httpapi.NewHandler(mem, httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(lambda.Close)

	send := func(base, method, path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader("{}"))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		// Sinks run before the handler returns, so once the whole body
		// is read the request's record is in.
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp
	}
	table := httpapi.Table()
	require.NotEmpty(t, table)
	for _, rt := range table {
		t.Run(rt.Pattern, func(t *testing.T) {
			method, path := sample(rt.Pattern)
			resp := send(srv.URL, method, path)
			assert.Equal(t, rt.Pattern, sink.last(t).Route, "served under its own pattern")
			switch rt.Access {
			case httpapi.Admin:
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "an admin route needs a key")
				assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
			case httpapi.Ingest:
				assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), "ingest is open to other origins")
			case httpapi.Operations:
				assert.Less(t, resp.StatusCode, 300)
				assert.Equal(t, http.StatusNotFound, send(lambda.URL, method, path).StatusCode, "only WithOperations adds operations routes")
			case httpapi.Dashboard:
				assert.Equal(t, http.StatusOK, resp.StatusCode, "the dashboard needs no key")
				assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
				assert.Equal(t, http.StatusNotFound, send(lambda.URL, method, path).StatusCode, "only WithDashboard adds the dashboard")
			default:
				t.Errorf("unknown access class %v", rt.Access)
			}
		})
	}

	// Routes and OperationsRoutes are the table, split by access class.
	var api, ops []string
	for _, rt := range table {
		if rt.Access == httpapi.Operations {
			ops = append(ops, rt.Pattern)
		} else {
			api = append(api, rt.Pattern)
		}
	}
	assert.Equal(t, api, httpapi.Routes())
	assert.Equal(t, ops, httpapi.OperationsRoutes())
	patterns := append(slices.Clone(api), ops...)
	slices.Sort(patterns)
	assert.Len(t, slices.Compact(patterns), len(table), "no pattern twice")
}

// TestWithOnlyServesOneAccessClass: a handler limited to one access class,
// as each Lambda function is, answers the other class's routes as routes it
// does not have, before any key check or store call.
func TestWithOnlyServesOneAccessClass(t *testing.T) {
	t.Parallel()
	store, err := memstore.New()
	require.NoError(t, err)
	cases := []struct {
		name         string
		only         httpapi.Access
		method, path string
		want         int
		noRoute      bool // answered as a route the handler lacks
	}{
		// An ingest handler counts impressions (404: no such campaign)...
		{"IngestRecords", httpapi.Ingest, "POST", "/api/v1/impressions", http.StatusNotFound, false},
		{"IngestPreflight", httpapi.Ingest, "OPTIONS", "/api/v1/impressions", http.StatusNoContent, false},
		// ...and has no admin route at all: not even a 401 leaks one.
		{"IngestHasNoStats", httpapi.Ingest, "GET", "/api/v1/campaigns/c/stats", http.StatusNotFound, true},
		{"IngestHasNoCreate", httpapi.Ingest, "POST", "/api/v1/campaigns", http.StatusNotFound, true},
		// An admin handler guards its routes with the key...
		{"AdminNeedsKey", httpapi.Admin, "GET", "/api/v1/campaigns/c/stats", http.StatusUnauthorized, false},
		// ...and has no ingest route.
		{"AdminHasNoIngest", httpapi.Admin, "POST", "/api/v1/impressions", http.StatusNotFound, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := httpapi.NewHandler(store, httpapi.WithOnly(tc.only), httpapi.WithAdminKeys([]string{"admin-key-0123456789"}),
				httpapi.WithLogger(slog.New(slog.DiscardHandler)))
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(`{"campaign_id":"c","user_id":"u","ad_id":"a"}`))
			require.NoError(t, err)
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tc.want, resp.StatusCode, string(body))
			if tc.noRoute {
				assert.Contains(t, string(body), "no route for", "answered as a route the handler lacks")
			} else {
				assert.NotContains(t, string(body), "no route for")
			}
		})
	}
}

// TestUnroutedNeedsNoKey: with admin keys set, a path the API lacks is a
// 404 and a wrong method a 405, as without keys: the router's catch-all
// belongs to no access class, so it never asks for a key.
func TestUnroutedNeedsNoKey(t *testing.T) {
	t.Parallel()
	store, err := memstore.New()
	require.NoError(t, err)
	srv := httptest.NewServer(httpapi.NewHandler(store, httpapi.WithAdminKeys([]string{"admin-key-0123456789"}),
		httpapi.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/nothing-here", http.StatusNotFound},
		{"DELETE", "/api/v1/campaigns/c", http.StatusMethodNotAllowed},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		require.NoError(t, err)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, tc.want, resp.StatusCode, "%s %s", tc.method, tc.path)
	}
}
