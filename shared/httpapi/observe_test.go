package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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

// TestRequestLog checks the one line written per request: its fields, the
// request ID's origin, and that secrets and bodies never reach it.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch)
	store, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	var buf syncbuf.Buffer
	logs := &buf
	h := httpapi.NewHandler(store, httpapi.WithAdminKeys([]string{"s3cret-key"}),
		httpapi.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))

	send := func(method, path, body string, header http.Header) (*httptest.ResponseRecorder, map[string]any) {
		t.Helper()
		buf.Reset()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var line map[string]any
		require.NoError(t, json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line), "exactly one JSON line: %q", buf.String())
		return rec, line
	}
	admin := http.Header{"Authorization": {"Bearer s3cret-key"}}

	rec, line := send("POST", "/api/v1/campaigns", `{"name":"Logged","start_time":"2026-01-01T00:00:00Z"}`, admin)
	require.Equal(t, http.StatusCreated, rec.Code)
	var created map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &created))
	id := created["id"].(string)
	assert.Equal(t, "request", line["msg"])
	assert.Equal(t, "INFO", line["level"])
	assert.Equal(t, "POST", line["method"])
	assert.Equal(t, "POST /api/v1/campaigns", line["route"])
	assert.Equal(t, 201.0, line["status"])
	assert.Contains(t, line, "duration_ms")
	assert.Regexp(t, `^[0-9a-f]{16}-[0-9a-z]+$`, line["request_id"], "generated when the client sent none")
	assert.Equal(t, line["request_id"], rec.Header().Get("X-Request-Id"), "echoed")
	first := line["request_id"]

	cases := []struct {
		name      string
		method    string
		path      string
		body      string
		header    http.Header
		route     string
		outcome   string
		errorKind string
		requestID string // empty: a generated one
	}{
		// The route pattern is logged, never the campaign ID in the path.
		{"StatsByPattern", "GET", "/api/v1/campaigns/" + id + "/stats", "", admin, "GET /api/v1/campaigns/{id}/stats", "", "", ""},
		{"Counted", "POST", "/api/v1/impressions", impression(id, "private-user", "a"), http.Header{"X-Request-Id": {"edge-123"}}, "POST /api/v1/impressions", "counted", "", "edge-123"},
		{"Duplicate", "POST", "/api/v1/impressions", impression(id, "private-user", "a"), nil, "POST /api/v1/impressions", "duplicate", "", ""},
		// A request ID that could forge log content is replaced.
		{"BadRequestID", "POST", "/api/v1/impressions", impression(id, "u2", "a"), http.Header{"X-Request-Id": {"a\"b"}}, "POST /api/v1/impressions", "counted", "", ""},
		{"Rejected", "POST", "/api/v1/impressions", `{"campaign_id":"` + id + `"}`, nil, "POST /api/v1/impressions", "", "invalid", ""},
		{"WrongKey", "GET", "/api/v1/campaigns/" + id, "", http.Header{"Authorization": {"Bearer guess"}}, "GET /api/v1/campaigns/{id}", "", "forbidden", ""},
		// A paused and an ended campaign's refusals are kinds of their own.
		{"Pause", "PATCH", "/api/v1/campaigns/" + id, `{"paused":true}`, admin, "PATCH /api/v1/campaigns/{id}", "", "", ""},
		{"Paused", "POST", "/api/v1/impressions", impression(id, "u3", "a"), nil, "POST /api/v1/impressions", "", "paused", ""},
		{"End", "PATCH", "/api/v1/campaigns/" + id, `{"paused":false,"end_time":"2026-01-02T00:00:00Z"}`, admin, "PATCH /api/v1/campaigns/{id}", "", "", ""},
		{"Ended", "POST", "/api/v1/impressions", impression(id, "u3", "a"), nil, "POST /api/v1/impressions", "", "ended", ""},
		{"Unmatched", "GET", "/nowhere", "", nil, "unmatched", "", "", ""},
	}
	for _, tc := range cases {
		rec, line := send(tc.method, tc.path, tc.body, tc.header)
		assert.Equal(t, tc.route, line["route"], tc.name)
		if tc.outcome != "" {
			assert.Equal(t, tc.outcome, line["outcome"], tc.name)
		} else {
			assert.NotContains(t, line, "outcome", tc.name)
		}
		if tc.errorKind != "" {
			assert.Equal(t, tc.errorKind, line["error_kind"], tc.name)
			assert.NotEmpty(t, line["err"], tc.name)
		}
		if tc.requestID != "" {
			assert.Equal(t, tc.requestID, line["request_id"], tc.name)
		} else {
			assert.Regexp(t, `^[0-9a-f]{16}-[0-9a-z]+$`, line["request_id"], tc.name)
			assert.NotEqual(t, first, line["request_id"], "%s: every request gets its own ID", tc.name)
		}
		assert.Equal(t, line["request_id"], rec.Header().Get("X-Request-Id"), tc.name)
		raw, err := json.Marshal(line)
		require.NoError(t, err)
		assert.NotContains(t, string(raw), "s3cret", "%s: the admin key is never logged", tc.name)
		assert.NotContains(t, string(raw), "guess", "%s: a presented key is never logged", tc.name)
		assert.NotContains(t, string(raw), "private-user", "%s: bodies are never logged", tc.name)
	}
	// A batch's line counts its refusals by kind.
	_, line = send("POST", "/api/v1/impressions/batch", batchOf(impression(id, "u4", "a"), impression(id, "u5", "a"), impression("none", "u", "a")), nil)
	assert.Equal(t, 2.0, line["rejected_ended"])
	assert.Equal(t, 1.0, line["rejected_not_found"])
}

// TestOneRecordPerRequest checks the record every sink gets: one per
// request, whatever the log level, with the facts of the request.
func TestOneRecordPerRequest(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(storetest.Epoch)
	mem, err := memstore.New(memstore.WithClock(clock.Now))
	require.NoError(t, err)
	var logs syncbuf.Buffer
	sink := &records{}
	// The log hides everything below warn; the sink must not care.
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := httpapi.NewHandler(mem, httpapi.WithLogger(logger), httpapi.WithMetrics(sink))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s := &server{Server: srv, clock: clock}
	id := s.createCampaign(t, "Recorded", storetest.Epoch)
	down := httptest.NewServer(httpapi.NewHandler(&failingStore{err: adcount.ErrUnavailable}, httpapi.WithLogger(logger), httpapi.WithMetrics(sink)))
	t.Cleanup(down.Close)

	cases := []struct {
		name        string
		base        string
		method      string
		path, body  string
		route       string
		status      int
		kind        string
		store       bool
		impressions httpapi.Impressions
		outcome     string
	}{
		{"Counted", srv.URL, "POST", "/api/v1/impressions", impression(id, "u", "a"), "POST /api/v1/impressions", 200, "", false, httpapi.Impressions{Counted: 1}, "counted"},
		{"Duplicate", srv.URL, "POST", "/api/v1/impressions", impression(id, "u", "a"), "POST /api/v1/impressions", 200, "", false, httpapi.Impressions{Duplicate: 1}, "duplicate"},
		// The store's validation is the only one, and its answer the same.
		{"Invalid", srv.URL, "POST", "/api/v1/impressions", impression(id, "", "a"), "POST /api/v1/impressions", 400, "invalid", false, httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "invalid", Count: 1}}}, ""},
		{"StoreDown", down.URL, "POST", "/api/v1/impressions", impression(id, "u", "a"), "POST /api/v1/impressions", 503, "unavailable", true, httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "unavailable", Count: 1}}}, ""},
		// Other routes carry no impressions.
		{"Stats", srv.URL, "GET", "/api/v1/campaigns/" + id + "/stats", "", "GET /api/v1/campaigns/{id}/stats", 200, "", false, httpapi.Impressions{}, ""},
		{"WrongMethod", srv.URL, "GET", "/api/v1/impressions", "", "unmatched", 405, "method_not_allowed", false, httpapi.Impressions{}, ""},
		{"NoRoute", srv.URL, "GET", "/nowhere", "", "unmatched", 404, "no_route", false, httpapi.Impressions{}, ""},
		{"NonCanonical", srv.URL, "GET", "/api//v1/campaigns", "", "unmatched", 404, "no_route", false, httpapi.Impressions{}, ""},
	}
	for _, tc := range cases {
		sink.mu.Lock()
		before := len(sink.got)
		sink.mu.Unlock()
		req, err := http.NewRequest(tc.method, tc.base+tc.path, strings.NewReader(tc.body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		// Once the whole body is read, the handler, sinks included, is done.
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		sink.mu.Lock()
		assert.Len(t, sink.got, before+1, "%s: one record per request", tc.name)
		sink.mu.Unlock()
		rec := sink.last(t)
		assert.Equal(t, tc.status, resp.StatusCode, tc.name)
		assert.Equal(t, tc.status, rec.Status, tc.name)
		assert.Equal(t, tc.method, rec.Method, tc.name)
		assert.Equal(t, tc.route, rec.Route, tc.name)
		assert.Equal(t, resp.Header.Get("X-Request-Id"), rec.RequestID, tc.name)
		assert.Equal(t, tc.kind, rec.ErrorKind, tc.name)
		assert.Equal(t, tc.kind != "", rec.Err != nil, tc.name)
		assert.Equal(t, tc.store, rec.StoreError, tc.name)
		assert.Equal(t, tc.impressions, rec.Impressions, tc.name)
		assert.Equal(t, tc.outcome, rec.Outcome(), tc.name)
		assert.Positive(t, rec.Duration, tc.name)
		assert.False(t, rec.Time.IsZero(), tc.name)
	}
	// At warn only the 5xx reached the log.
	out := strings.TrimSpace(logs.String())
	require.Equal(t, 1, strings.Count(out, "\n")+1, out)
	assert.Contains(t, out, `"status":503`)
}

// TestRecordOutcome: a request with one recorded impression names its
// outcome; one with several (a batch) logs its counts by outcome instead.
func TestRecordOutcome(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		n       httpapi.Impressions
		outcome string
		counts  map[string]any // the log line's counts; nil when it has none
	}{
		{"Counted", httpapi.Impressions{Counted: 1}, "counted", nil},
		{"Duplicate", httpapi.Impressions{Duplicate: 1}, "duplicate", nil},
		{"Filtered", httpapi.Impressions{Filtered: 1}, "filtered", nil},
		// A rejection's reason is the error kind, not an outcome.
		{"Rejected", httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "invalid", Count: 1}}}, "", nil},
		{"None", httpapi.Impressions{}, "", nil},
		{"Batch", httpapi.Impressions{Counted: 3, Duplicate: 2, Filtered: 1, Rejected: []httpapi.Rejection{{Reason: "not_found", Count: 4}}}, "",
			map[string]any{"counted": 3.0, "duplicate": 2.0, "filtered": 1.0, "rejected_not_found": 4.0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httpapi.Record{Route: httpapi.RouteRecordBatch, Status: 200, Impressions: tc.n}
			assert.Equal(t, tc.outcome, rec.Outcome())
			var buf bytes.Buffer
			httpapi.LogSink(slog.New(slog.NewJSONHandler(&buf, nil))).Observe(context.Background(), rec)
			var line map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
			if tc.outcome != "" {
				assert.Equal(t, tc.outcome, line["outcome"])
			} else {
				assert.NotContains(t, line, "outcome")
			}
			for k, v := range tc.counts {
				assert.Equal(t, v, line[k], k)
			}
		})
	}
}
