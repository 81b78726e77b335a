package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
	"github.com/adcount/impression-counter/shared/syncbuf"
)

func TestAdminKeys(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch)
	store, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	c, err := adcount.NewCampaign("c-1", "Keyed", storetest.Epoch)
	require.NoError(t, err)
	require.NoError(t, store.CreateCampaign(context.Background(), c))
	// Two active keys, as during a rotation; blanks in the list are ignored.
	h := httpapi.NewHandler(store, httpapi.WithAdminKeys([]string{"old-key", " new-key ", ""}),
		httpapi.WithLogger(slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s := &server{Server: srv, clock: clock}

	cases := []struct {
		name   string
		auth   string // Authorization header; empty sends none
		status int
	}{
		{"NoHeader", "", http.StatusUnauthorized},
		// Another scheme is no Bearer token at all.
		{"BasicScheme", "Basic b2xkLWtleQ==", http.StatusUnauthorized},
		{"EmptyBearer", "Bearer ", http.StatusUnauthorized},
		{"WrongKey", "Bearer not-a-key", http.StatusForbidden},
		// A prefix of a real key must not pass.
		{"PrefixOfKey", "Bearer old-", http.StatusForbidden},
		{"OldKey", "Bearer old-key", http.StatusOK},
		{"NewKey", "Bearer new-key", http.StatusOK},
		// The scheme is case-insensitive (RFC 9110).
		{"LowercaseScheme", "bearer new-key", http.StatusOK},
	}
	adminRoutes := []struct{ method, path, body string }{
		{"GET", "/api/v1/campaigns/c-1", ""},
		{"GET", "/api/v1/campaigns/c-1/stats", ""},
		{"POST", "/api/v1/campaigns", `{"name":"x","start_time":"2026-01-01T00:00:00Z"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, rt := range adminRoutes {
				req, err := http.NewRequest(rt.method, srv.URL+rt.path, strings.NewReader(rt.body))
				require.NoError(t, err)
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				require.NoError(t, resp.Body.Close())
				want := tc.status
				if want == http.StatusOK && rt.method == "POST" {
					want = http.StatusCreated
				}
				assert.Equal(t, want, resp.StatusCode, rt.path)
				if want == http.StatusUnauthorized {
					assert.Equal(t, `Bearer realm="adcount admin"`, resp.Header.Get("WWW-Authenticate"), rt.path)
				}
			}
		})
	}

	// Impressions need no key.
	r := s.do(t, "POST", "/api/v1/impressions", impression("c-1", "u", "a"))
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, true, r.body["counted"])
}

func TestCrossOriginImpressions(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	req, err := http.NewRequest("OPTIONS", s.URL+"/api/v1/impressions", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://publisher.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	assert.Equal(t, "Content-Type", resp.Header.Get("Access-Control-Allow-Headers"))
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"), "credentials are never allowed")

	// The POST itself, and its errors, are readable cross-origin.
	id := s.createCampaign(t, "CORS", storetest.Epoch)
	for _, body := range []string{impression(id, "u", "a"), `{}`} {
		req, err := http.NewRequest("POST", s.URL+"/api/v1/impressions", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Origin", "https://publisher.example")
		resp, err := s.Client().Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), body)
	}

	// Admin routes are not opened to other origins.
	req, err = http.NewRequest("GET", s.URL+"/api/v1/campaigns/"+id+"/stats", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://publisher.example")
	resp, err = s.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// panickingStore panics on every impression. No real store can be made to
// panic on demand, so this fake stands in for a bug.
type panickingStore struct{ adcount.Store }

var _ adcount.Store = (*panickingStore)(nil)

func (panickingStore) RecordImpression(context.Context, adcount.Impression) (adcount.Outcome, error) {
	panic("bug in the store")
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	mem, err := memstore.New()
	require.NoError(t, err)
	var logs syncbuf.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := httptest.NewServer(httpapi.NewHandler(panickingStore{mem}, httpapi.WithLogger(logger)))
	t.Cleanup(srv.Close)
	s := &server{Server: srv}

	r := s.do(t, "POST", "/api/v1/impressions", impression("c", "u", "a"))
	assert.Equal(t, http.StatusInternalServerError, r.status)
	assert.Equal(t, map[string]any{"error": "internal error", "code": "internal"}, r.body)

	// The server keeps serving.
	id := s.createCampaign(t, "After the panic", storetest.Epoch)
	assert.NotEmpty(t, id)
	out := logs.String()
	assert.Contains(t, out, "bug in the store")
	assert.Contains(t, out, "runtime/debug.Stack", "the log has the stack")
}

// TestMethodNotAllowedOnIngestIsCrossOrigin: docs/security.md promises
// Access-Control-Allow-Origin on every ingest response, so a browser's
// script can read even a 405.
func TestMethodNotAllowedOnIngestIsCrossOrigin(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	r := s.do(t, "GET", "/api/v1/impressions", "")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "*", r.header.Get("Access-Control-Allow-Origin"))
	// An admin path's 405 stays closed to other origins.
	r = s.do(t, "PUT", "/api/v1/campaigns", "")
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
}
