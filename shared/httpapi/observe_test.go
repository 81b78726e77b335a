package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
}
