package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/docs"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
	"github.com/adcount/impression-counter/shared/storetest"
)

func init() {
	// The pixel's body is an image, which the contract describes but the
	// validator cannot read as JSON.
	openapi3filter.RegisterBodyDecoder("image/gif", openapi3filter.FileBodyDecoder)
}

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "docs/openapi.yaml is a valid OpenAPI document")
	require.True(t, doc.IsOpenAPI31OrLater())
	return doc
}

// TestOpenAPIRoutesMatchRouter: every route of the route table is in the
// contract, and every operation in the contract is in the table; the admin
// routes, and only they, require the admin key there.
func TestOpenAPIRoutesMatchRouter(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	var inSpec []string
	guarded := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			inSpec = append(inSpec, method+" "+path)
			guarded[method+" "+path] = op.Security != nil && len(*op.Security) > 0
		}
	}
	var served []string
	for _, rt := range httpapi.Table() {
		served = append(served, rt.Pattern)
		assert.Equal(t, rt.Access == httpapi.Admin, guarded[rt.Pattern], "%s (%s): the contract's security", rt.Pattern, rt.Access)
	}
	sort.Strings(inSpec)
	sort.Strings(served)
	assert.Equal(t, served, inSpec)
}

// pingFailStore is a memory store whose Ping fails, standing in for a store
// whose backing service is down.
type pingFailStore struct{ adcount.Store }

func (pingFailStore) Ping(context.Context) error { return errors.New("connection refused") }

// TestOpenAPIResponsesMatchSchemas drives every operation to every status
// the contract lists and validates each real response against it.
func TestOpenAPIResponsesMatchSchemas(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)

	mem, err := memstore.New(memstore.WithClock(storetest.NewClock(storetest.Epoch).Now))
	require.NoError(t, err)
	for id, start := range map[string]string{"live": "2026-01-01T00:00:00Z", "future": "2027-01-01T00:00:00Z"} {
		c, err := adcount.NewCampaign(id, id, mustTime(t, start))
		require.NoError(t, err)
		require.NoError(t, mem.CreateCampaign(context.Background(), c))
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "adcount_campaigns 2\n")
	})
	newServer := func(store adcount.Store) *httptest.Server {
		h := httpapi.NewHandler(store, httpapi.WithAdminKeys([]string{"k"}),
			httpapi.WithOperations(metrics, docs.OpenAPI), httpapi.WithLogger(slog.New(slog.DiscardHandler)))
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv
	}
	servers := map[string]*httptest.Server{
		"memory":      newServer(mem),
		"unavailable": newServer(&failingStore{err: adcount.ErrUnavailable}),
		"broken":      newServer(&failingStore{err: errors.New("bug")}),
		"full":        newServer(&failingStore{err: adcount.ErrLimit}),
		"unreachable": newServer(pingFailStore{mem}),
	}

	admin := "Bearer k"
	big := `{"name":"` + strings.Repeat("n", httpapi.MaxBodyBytes) + `"}`
	cases := []struct {
		server, method, path, body, auth string
		status                           int
	}{
		{"memory", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 201},
		{"memory", "POST", "/api/v1/campaigns", `{"name":""}`, admin, 400},
		{"memory", "POST", "/api/v1/campaigns", `{}`, "", 401},
		{"memory", "POST", "/api/v1/campaigns", `{}`, "Bearer x", 403},
		{"memory", "POST", "/api/v1/campaigns", big, admin, 413},
		{"full", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 409},
		{"broken", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 500},
		{"unavailable", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 503},
		{"memory", "GET", "/api/v1/campaigns/live", "", admin, 200},
		{"memory", "GET", "/api/v1/campaigns/live", "", "", 401},
		{"memory", "GET", "/api/v1/campaigns/live", "", "Bearer x", 403},
		{"memory", "GET", "/api/v1/campaigns/none", "", admin, 404},
		{"broken", "GET", "/api/v1/campaigns/live", "", admin, 500},
		{"unavailable", "GET", "/api/v1/campaigns/live", "", admin, 503},
		{"memory", "GET", "/api/v1/campaigns/live/stats", "", admin, 200},
		{"memory", "GET", "/api/v1/campaigns/live/stats", "", "", 401},
		{"memory", "GET", "/api/v1/campaigns/live/stats", "", "Bearer x", 403},
		{"memory", "GET", "/api/v1/campaigns/none/stats", "", admin, 404},
		{"broken", "GET", "/api/v1/campaigns/live/stats", "", admin, 500},
		{"unavailable", "GET", "/api/v1/campaigns/live/stats", "", admin, 503},
		{"memory", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 200},
		{"memory", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 200},
		{"memory", "POST", "/api/v1/impressions", `{"campaign_id":"live"}`, "", 400},
		{"memory", "POST", "/api/v1/impressions", impression("none", "u", "a"), "", 404},
		{"memory", "POST", "/api/v1/impressions", impression("future", "u", "a"), "", 409},
		{"memory", "POST", "/api/v1/impressions", big, "", 413},
		{"broken", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 500},
		{"unavailable", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 503},
		{"memory", "OPTIONS", "/api/v1/impressions", "", "", 204},
		{"memory", "POST", "/api/v1/impressions/batch", `{"impressions":[` + impression("live", "u", "a") + `,` + impression("none", "u", "a") + `,` + impression("future", "u", "a") + `,` + impression("live", "", "a") + `,7]}`, "", 200},
		{"memory", "POST", "/api/v1/impressions/batch", `{"impressions":[]}`, "", 400},
		{"memory", "POST", "/api/v1/impressions/batch", `{"impressions":[` + strings.Repeat(impression("live", "u", "a")+",", adcount.MaxBatch) + impression("live", "u", "a") + `]}`, "", 413},
		{"broken", "POST", "/api/v1/impressions/batch", `{"impressions":[` + impression("live", "u", "a") + `]}`, "", 500},
		{"unavailable", "POST", "/api/v1/impressions/batch", `{"impressions":[` + impression("live", "u", "a") + `]}`, "", 503},
		{"memory", "OPTIONS", "/api/v1/impressions/batch", "", "", 204},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p&ad_id=a", "", "", 200},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p", "", "", 400},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=none&user_id=p&ad_id=a", "", "", 404},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=future&user_id=p&ad_id=a", "", "", 409},
		{"broken", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p&ad_id=a", "", "", 500},
		{"unavailable", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p&ad_id=a", "", "", 503},
		{"memory", "GET", "/healthz", "", "", 200},
		{"memory", "GET", "/readyz", "", "", 200},
		{"unreachable", "GET", "/readyz", "", "", 503},
		{"memory", "GET", "/metrics", "", "", 200},
		{"memory", "GET", "/api/v1/openapi.yaml", "", "", 200},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		name := fmt.Sprintf("%s %s %d", tc.method, tc.path, tc.status)
		srv := servers[tc.server]
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		require.NoError(t, err)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, tc.status, resp.StatusCode, "%s: %s", name, body)

		// Validate the real response against the contract's route.
		specReq, err := http.NewRequest(tc.method, "http://localhost:8080"+tc.path, nil)
		require.NoError(t, err)
		route, params, err := router.FindRoute(specReq)
		require.NoError(t, err, name)
		err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{
				Request: specReq, PathParams: params, Route: route,
				Options: &openapi3filter.Options{IncludeResponseStatus: true},
			},
			Status: resp.StatusCode,
			Header: resp.Header,
			Body:   io.NopCloser(bytes.NewReader(body)),
			Options: &openapi3filter.Options{
				IncludeResponseStatus: true,
			},
		})
		assert.NoError(t, err, "%s: %s", name, body)
		covered[fmt.Sprintf("%s %s %d", tc.method, route.Path, tc.status)] = true
	}

	// Every status the contract lists for every operation was exercised.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				assert.True(t, covered[fmt.Sprintf("%s %s %s", method, path, code)], "%s %s %s is never exercised", method, path, code)
			}
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return tm
}
