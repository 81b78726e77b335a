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
	"slices"
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
	// Nor can it read the dashboard's files, which are text.
	for _, t := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(t, openapi3filter.FileBodyDecoder)
	}
}

// specPattern is a route table pattern as the contract writes its path:
// OpenAPI has no greedy {file...}, only {file}.
func specPattern(pattern string) string { return strings.ReplaceAll(pattern, "...}", "}") }

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
// routes, and only they, require the admin key there; and each route's
// query parameters are exactly the ones the contract documents.
func TestOpenAPIRoutesMatchRouter(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	var inSpec []string
	guarded := map[string]bool{}
	query := map[string][]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			pattern := method + " " + path
			inSpec = append(inSpec, pattern)
			guarded[pattern] = op.Security != nil && len(*op.Security) > 0
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				require.NotNil(t, p.Value, "%s: a parameter that does not resolve", pattern)
				if p.Value.In == openapi3.ParameterInQuery {
					query[pattern] = append(query[pattern], p.Value.Name)
				}
			}
		}
	}
	var served []string
	for _, rt := range httpapi.Table() {
		pattern := specPattern(rt.Pattern)
		served = append(served, pattern)
		assert.Equal(t, rt.Access == httpapi.Admin, guarded[pattern], "%s (%s): the contract's security", rt.Pattern, rt.Access)
		assert.ElementsMatch(t, rt.Query, query[pattern], "%s: the query parameters the route reads and the contract's", rt.Pattern)
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

	clock := storetest.NewClock(storetest.Epoch)
	mem, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	for _, c := range []adcount.Campaign{
		{ID: "live", StartTime: mustTime(t, "2026-01-01T00:00:00Z")},
		{ID: "future", StartTime: mustTime(t, "2027-01-01T00:00:00Z")},
		{ID: "paused", StartTime: mustTime(t, "2026-01-01T00:00:00Z"), Paused: true},
		{ID: "ended", StartTime: mustTime(t, "2026-01-01T00:00:00Z"), EndTime: mustTime(t, "2026-01-02T00:00:00Z")},
		{ID: "patched", StartTime: mustTime(t, "2026-01-01T00:00:00Z")},
	} {
		c.Name, c.CreatedAt = c.ID, clock.Now()
		require.NoError(t, mem.CreateCampaign(context.Background(), c))
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "adcount_campaigns 2\n")
	})
	newHandler := func(store adcount.Store) http.Handler {
		return httpapi.NewHandler(store, httpapi.WithAdminKeys([]string{"k"}), httpapi.WithClock(clock.Now),
			httpapi.WithOperations(metrics, docs.OpenAPI), httpapi.WithDashboard(testDashboard),
			httpapi.WithLogger(slog.New(slog.DiscardHandler)))
	}
	newServer := func(store adcount.Store) *httptest.Server {
		srv := httptest.NewServer(newHandler(store))
		t.Cleanup(srv.Close)
		return srv
	}
	// A browser that has every dashboard file cached: its requests carry
	// If-None-Match: *, which any ETag matches.
	cached := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("If-None-Match", "*")
		newHandler(mem).ServeHTTP(w, r)
	}))
	t.Cleanup(cached.Close)
	servers := map[string]*httptest.Server{
		"memory":      newServer(mem),
		"cached":      cached,
		"unavailable": newServer(&failingStore{err: adcount.ErrUnavailable}),
		"broken":      newServer(&failingStore{err: errors.New("bug")}),
		"full":        newServer(&failingStore{err: adcount.ErrLimit}),
		"unreachable": newServer(pingFailStore{mem}),
		// A store answering reach in every form the contract allows:
		// estimates, a frequency with decimals, and points with and
		// without unique users.
		"reach": newServer(&fixedStore{
			stats: adcount.Stats{CampaignID: "live", LastHour: 10, LastDay: 2500, Total: 2_000_000, Filtered: 3,
				UniqueUsers: adcount.UniqueUsers{LastHour: 3, LastDay: 1200, Total: 1_523_911}, AsOf: clock.Now()},
			series: adcount.Series{Points: []adcount.Point{
				{Start: mustTime(t, "2026-01-04T09:00:00Z"), Count: 4},
				{Start: mustTime(t, "2026-01-04T10:00:00Z"), Count: 0, HasUniqueUsers: true},
				{Start: mustTime(t, "2026-01-04T11:00:00Z"), Count: 9, UniqueUsers: 2, HasUniqueUsers: true},
			}, AsOf: clock.Now()},
		}),
	}

	admin := "Bearer k"
	big := `{"name":"` + strings.Repeat("n", httpapi.MaxBodyBytes) + `"}`
	cases := []struct {
		server, method, path, body, auth string
		status                           int
		// lenientBody marks a request the API answers 2xx though the
		// contract's schema does not describe its body: a batch whose
		// bad items fail only their own results.
		lenientBody bool
	}{
		{"memory", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 201, false},
		{"memory", "POST", "/api/v1/campaigns", `{"name":""}`, admin, 400, false},
		{"memory", "POST", "/api/v1/campaigns", `{}`, "", 401, false},
		{"memory", "POST", "/api/v1/campaigns", `{}`, "Bearer x", 403, false},
		{"memory", "POST", "/api/v1/campaigns", big, admin, 413, false},
		{"full", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 409, false},
		{"broken", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 500, false},
		{"unavailable", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z"}`, admin, 503, false},
		{"memory", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z","end_time":"2026-02-01T00:00:00Z"}`, admin, 201, false},
		{"memory", "POST", "/api/v1/campaigns", `{"name":"n","start_time":"2026-01-01T00:00:00Z","end":"2026-02-01T00:00:00Z"}`, admin, 400, false},
		{"memory", "GET", "/api/v1/campaigns", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns?limit=2&status=active", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns?limit=0", "", admin, 400, false},
		{"memory", "GET", "/api/v1/campaigns?status=done", "", admin, 400, false},
		{"memory", "GET", "/api/v1/campaigns?limit=2&status=active&name=LIV", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns?name=" + strings.Repeat("n", adcount.MaxNameRunes+1), "", admin, 400, false},
		{"memory", "GET", "/api/v1/campaigns", "", "", 401, false},
		{"memory", "GET", "/api/v1/campaigns", "", "Bearer x", 403, false},
		{"broken", "GET", "/api/v1/campaigns", "", admin, 500, false},
		{"unavailable", "GET", "/api/v1/campaigns", "", admin, 503, false},
		{"memory", "PATCH", "/api/v1/campaigns/patched", `{"name":"renamed","end_time":"2027-01-01T00:00:00Z","paused":true}`, admin, 200, false},
		{"memory", "PATCH", "/api/v1/campaigns/patched", `{"end_time":null,"paused":false}`, admin, 200, false},
		{"memory", "PATCH", "/api/v1/campaigns/patched", `{}`, admin, 400, false},
		{"memory", "PATCH", "/api/v1/campaigns/patched", `{"end_time":"2025-01-01T00:00:00Z"}`, admin, 400, false},
		{"memory", "PATCH", "/api/v1/campaigns/patched", `{"paused":true}`, "", 401, false},
		{"memory", "PATCH", "/api/v1/campaigns/patched", `{"paused":true}`, "Bearer x", 403, false},
		{"memory", "PATCH", "/api/v1/campaigns/none", `{"paused":true}`, admin, 404, false},
		{"memory", "PATCH", "/api/v1/campaigns/patched", big, admin, 413, false},
		{"broken", "PATCH", "/api/v1/campaigns/patched", `{"paused":true}`, admin, 500, false},
		{"unavailable", "PATCH", "/api/v1/campaigns/patched", `{"paused":true}`, admin, 503, false},
		{"memory", "GET", "/api/v1/campaigns/live/timeseries", "", admin, 200, false},
		{"reach", "GET", "/api/v1/campaigns/live/timeseries", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns/live/timeseries?interval=minute&from=2026-01-05T09:30:00Z&to=2026-01-05T10:00:00Z&ad_id=a", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns/live/timeseries?interval=week", "", admin, 400, false},
		{"memory", "GET", "/api/v1/campaigns/live/timeseries?interval=minute&from=2026-01-01T00:00:00Z", "", admin, 400, false},
		{"memory", "GET", "/api/v1/campaigns/live/timeseries", "", "", 401, false},
		{"memory", "GET", "/api/v1/campaigns/live/timeseries", "", "Bearer x", 403, false},
		{"memory", "GET", "/api/v1/campaigns/none/timeseries", "", admin, 404, false},
		{"broken", "GET", "/api/v1/campaigns/live/timeseries", "", admin, 500, false},
		{"unavailable", "GET", "/api/v1/campaigns/live/timeseries", "", admin, 503, false},
		{"memory", "GET", "/api/v1/campaigns/live/ads", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns/live/ads?limit=1", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns/live/ads?cursor=nonsense", "", admin, 400, false},
		{"memory", "GET", "/api/v1/campaigns/live/ads", "", "", 401, false},
		{"memory", "GET", "/api/v1/campaigns/live/ads", "", "Bearer x", 403, false},
		{"memory", "GET", "/api/v1/campaigns/none/ads", "", admin, 404, false},
		{"broken", "GET", "/api/v1/campaigns/live/ads", "", admin, 500, false},
		{"unavailable", "GET", "/api/v1/campaigns/live/ads", "", admin, 503, false},
		{"memory", "GET", "/api/v1/campaigns/live", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns/live", "", "", 401, false},
		{"memory", "GET", "/api/v1/campaigns/live", "", "Bearer x", 403, false},
		{"memory", "GET", "/api/v1/campaigns/none", "", admin, 404, false},
		{"broken", "GET", "/api/v1/campaigns/live", "", admin, 500, false},
		{"unavailable", "GET", "/api/v1/campaigns/live", "", admin, 503, false},
		{"memory", "GET", "/api/v1/campaigns/live/stats", "", admin, 200, false},
		{"reach", "GET", "/api/v1/campaigns/live/stats", "", admin, 200, false},
		{"memory", "GET", "/api/v1/campaigns/live/stats", "", "", 401, false},
		{"memory", "GET", "/api/v1/campaigns/live/stats", "", "Bearer x", 403, false},
		{"memory", "GET", "/api/v1/campaigns/none/stats", "", admin, 404, false},
		{"broken", "GET", "/api/v1/campaigns/live/stats", "", admin, 500, false},
		{"unavailable", "GET", "/api/v1/campaigns/live/stats", "", admin, 503, false},
		{"memory", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 200, false},
		{"memory", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 200, false},
		{"memory", "POST", "/api/v1/impressions", `{"campaign_id":"live"}`, "", 400, false},
		{"memory", "POST", "/api/v1/impressions", impression("none", "u", "a"), "", 404, false},
		{"memory", "POST", "/api/v1/impressions", impression("future", "u", "a"), "", 409, false},
		{"memory", "POST", "/api/v1/impressions", impression("paused", "u", "a"), "", 409, false},
		{"memory", "POST", "/api/v1/impressions", impression("ended", "u", "a"), "", 409, false},
		{"memory", "POST", "/api/v1/impressions", big, "", 413, false},
		{"broken", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 500, false},
		{"unavailable", "POST", "/api/v1/impressions", impression("live", "u", "a"), "", 503, false},
		{"memory", "OPTIONS", "/api/v1/impressions", "", "", 204, false},
		{"memory", "POST", "/api/v1/impressions/batch", `{"impressions":[` + impression("live", "u", "a") + `,` + impression("none", "u", "a") + `,` + impression("future", "u", "a") + `,` + impression("paused", "u", "a") + `,` + impression("ended", "u", "a") + `,` + impression("live", "", "a") + `,7]}`, "", 200, true},
		{"memory", "POST", "/api/v1/impressions/batch", `{"impressions":[]}`, "", 400, false},
		{"memory", "POST", "/api/v1/impressions/batch", `{"impressions":[` + strings.Repeat(impression("live", "u", "a")+",", adcount.MaxBatch) + impression("live", "u", "a") + `]}`, "", 413, false},
		{"broken", "POST", "/api/v1/impressions/batch", `{"impressions":[` + impression("live", "u", "a") + `]}`, "", 500, false},
		{"unavailable", "POST", "/api/v1/impressions/batch", `{"impressions":[` + impression("live", "u", "a") + `]}`, "", 503, false},
		{"memory", "OPTIONS", "/api/v1/impressions/batch", "", "", 204, false},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p&ad_id=a", "", "", 200, false},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p", "", "", 400, false},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=none&user_id=p&ad_id=a", "", "", 404, false},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=future&user_id=p&ad_id=a", "", "", 409, false},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=paused&user_id=p&ad_id=a", "", "", 409, false},
		{"memory", "GET", "/api/v1/pixel.gif?campaign_id=ended&user_id=p&ad_id=a", "", "", 409, false},
		{"broken", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p&ad_id=a", "", "", 500, false},
		{"unavailable", "GET", "/api/v1/pixel.gif?campaign_id=live&user_id=p&ad_id=a", "", "", 503, false},
		{"memory", "GET", "/healthz", "", "", 200, false},
		{"memory", "GET", "/readyz", "", "", 200, false},
		{"unreachable", "GET", "/readyz", "", "", 503, false},
		{"memory", "GET", "/metrics", "", "", 200, false},
		{"memory", "GET", "/api/v1/openapi.yaml", "", "", 200, false},
		{"memory", "GET", "/dashboard", "", "", 200, false},
		{"cached", "GET", "/dashboard", "", "", 304, false},
		{"memory", "GET", "/dashboard/app.js", "", "", 200, false},
		{"memory", "GET", "/dashboard/style.css", "", "", 200, false},
		{"memory", "GET", "/dashboard/index.html", "", "", 302, false},
		{"cached", "GET", "/dashboard/app.js", "", "", 304, false},
		{"memory", "GET", "/dashboard/nothing.js", "", "", 404, false},
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
		// The redirect is the answer under test, not where it leads.
		client := *srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := client.Do(req)
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

		// A request the API accepted is one the contract describes: its
		// query parameters and body have the types, ranges and fields it
		// documents.
		if resp.StatusCode < 300 && !tc.lenientBody {
			valReq, err := http.NewRequest(tc.method, "http://localhost:8080"+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.body != "" {
				valReq.Header.Set("Content-Type", "application/json")
			}
			err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
				Request: valReq, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			})
			assert.NoError(t, err, "%s: the request, as the contract describes it", name)
		}
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

// TestOpenAPIDescribesReach: the contract documents the reach fields as the
// API writes them: unique users and frequency per window, always in the
// stats; unique users optional on a point, and said when it is there; none
// per ad; and the descriptions state the windows, the exactness and the
// rounding a client must know to read them.
func TestOpenAPIDescribesReach(t *testing.T) {
	t.Parallel()
	schemas := loadSpec(t).Components.Schemas
	schema := func(name string) *openapi3.Schema {
		t.Helper()
		ref, ok := schemas[name]
		require.True(t, ok, "the contract has a %s schema", name)
		require.NotNil(t, ref.Value, name)
		return ref.Value
	}
	prop := func(s *openapi3.Schema, name string) *openapi3.Schema {
		t.Helper()
		ref, ok := s.Properties[name]
		require.True(t, ok, "a %s property", name)
		require.NotNil(t, ref.Value, name)
		return ref.Value
	}
	windows := []string{"last_hour", "last_day", "total"}

	stats := schema("Stats")
	assert.Subset(t, stats.Required, []string{"unique_users", "frequency"}, "every stats answer carries its reach")
	users, freq := prop(stats, "unique_users"), prop(stats, "frequency")
	assert.Equal(t, schema("UniqueUsers"), users)
	assert.Equal(t, schema("Frequency"), freq)
	for _, s := range []*openapi3.Schema{users, freq} {
		assert.ElementsMatch(t, windows, s.Required)
		assert.Len(t, s.Properties, len(windows))
		require.NotNil(t, s.AdditionalProperties.Has)
		assert.False(t, *s.AdditionalProperties.Has, "no field the API does not write")
	}
	for _, w := range windows {
		assert.True(t, prop(users, w).Type.Is("integer"), "users are whole: %s", w)
		assert.True(t, prop(freq, w).Type.Is("number"), "a frequency has decimals: %s", w)
	}
	for _, want := range []string{"1,000", "2%", "HyperLogLog", "duplicate", "filtered", "last_hour ≤ last_day ≤ total"} {
		assert.Contains(t, oneLine(users.Description), want, "unique_users says how exact it is and what counts")
	}
	assert.Contains(t, oneLine(prop(users, "last_hour").Description), "50 to 60 minutes", "the edge of the hour's reach")
	assert.Contains(t, oneLine(prop(users, "last_day").Description), "23 to 24 hours", "the edge of the day's reach")
	for _, want := range []string{"two decimals", "0 for a window without users"} {
		assert.Contains(t, oneLine(freq.Description), want, "frequency says how it is rounded")
	}

	point := prop(prop(schema("Series"), "points").Items.Value, "unique_users")
	assert.True(t, point.Type.Is("integer"))
	assert.NotContains(t, prop(schema("Series"), "points").Items.Value.Required, "unique_users", "only some points carry it")
	for _, want := range []string{"hour points of the last 24 hours", "day points of the last 7 days", "minute points", "ad_id", "1,000", "2%"} {
		assert.Contains(t, oneLine(point.Description), want, "a point's unique_users says where it is kept")
	}

	ad := schema("AdStats")
	assert.NotContains(t, ad.Properties, "unique_users", "the per-ad breakdown carries no reach")
	assert.Contains(t, oneLine(ad.Description), "No unique users", "and says so")
}

// oneLine joins a folded description's lines, so that a phrase can be
// found whatever the line breaks in the YAML.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
