package emf_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/emf"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/memstore"
)

// downStore is a real memory store whose impressions fail as if its service
// were down; no real store fails on demand.
type downStore struct{ adcount.Store }

func (downStore) RecordImpression(context.Context, adcount.Impression) (bool, error) {
	return false, fmt.Errorf("down: %w", adcount.ErrUnavailable)
}

// serve sends one request through the API logging into an EMF handler and
// returns the one line it logged.
func serve(t *testing.T, store adcount.Store, method, path, body string) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(emf.NewHandler(slog.NewJSONHandler(&buf, nil), "AdCount"))
	h := httpapi.NewHandler(store, httpapi.WithLogger(logger))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, path, strings.NewReader(body)))
	lines := bufio.NewScanner(&buf)
	require.True(t, lines.Scan())
	var line map[string]any
	require.NoError(t, json.Unmarshal(lines.Bytes(), &line))
	require.False(t, lines.Scan(), "one line per request")
	return line
}

// validEMF checks a line against the EMF specification: an _aws block with
// a millisecond Timestamp and CloudWatchMetrics directives, each with a
// Namespace, dimension sets naming top-level string members, and metrics
// naming top-level numeric members with a CloudWatch unit.
func validEMF(t *testing.T, line map[string]any) {
	t.Helper()
	aws, ok := line["_aws"].(map[string]any)
	require.True(t, ok, "an _aws object")
	ts, ok := aws["Timestamp"].(float64)
	require.True(t, ok, "a numeric Timestamp")
	assert.InDelta(t, float64(time.Now().UnixMilli()), ts, 60_000, "Timestamp is in milliseconds")
	directives, ok := aws["CloudWatchMetrics"].([]any)
	require.True(t, ok)
	require.NotEmpty(t, directives)
	units := map[string]bool{"Count": true, "Milliseconds": true}
	for _, d := range directives {
		d := d.(map[string]any)
		assert.NotEmpty(t, d["Namespace"])
		dims := d["Dimensions"].([]any)
		require.NotEmpty(t, dims)
		for _, set := range dims {
			set := set.([]any)
			assert.LessOrEqual(t, len(set), 30)
			for _, name := range set {
				_, isString := line[name.(string)].(string)
				assert.True(t, isString, "dimension %s is a top-level string member", name)
			}
		}
		metrics := d["Metrics"].([]any)
		require.NotEmpty(t, metrics)
		for _, m := range metrics {
			m := m.(map[string]any)
			_, isNumber := line[m["Name"].(string)].(float64)
			assert.True(t, isNumber, "metric %s is a top-level number", m["Name"])
			assert.True(t, units[m["Unit"].(string)], "unit %s", m["Unit"])
		}
	}
}

func TestRequestLinesAreEMF(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mem, err := memstore.New()
	require.NoError(t, err)
	require.NoError(t, mem.CreateCampaign(context.Background(), adcount.Campaign{ID: "c", Name: "c", StartTime: start}))
	imp := `{"campaign_id":"c","user_id":"u","ad_id":"a"}`
	cases := []struct {
		name       string
		store      adcount.Store
		method     string
		path, body string
		want       map[string]any // members the line must have
		absent     []string
	}{
		{"Counted", mem, "POST", "/api/v1/impressions", imp,
			map[string]any{"impression_outcome": "counted", "impression_reason": "none", "impressions": 1.0, "requests": 1.0, "status_code": "200"}, []string{"store_errors"}},
		{"Duplicate", mem, "POST", "/api/v1/impressions", imp,
			map[string]any{"impression_outcome": "duplicate", "impressions": 1.0}, nil},
		{"Rejected", mem, "POST", "/api/v1/impressions", `{"campaign_id":"nope","user_id":"u","ad_id":"a"}`,
			map[string]any{"impression_outcome": "rejected", "impression_reason": "not_found", "status_code": "404"}, []string{"store_errors"}},
		{"StoreError", downStore{mem}, "POST", "/api/v1/impressions", imp,
			map[string]any{"impression_outcome": "rejected", "impression_reason": "unavailable", "store_error": "unavailable", "store_errors": 1.0, "status_code": "503"}, nil},
		// Other routes count requests and latency, not impressions.
		{"Stats", mem, "GET", "/api/v1/campaigns/c/stats", "",
			map[string]any{"route": "GET /api/v1/campaigns/{id}/stats", "requests": 1.0}, []string{"impressions", "impression_outcome"}},
	}
	for _, tc := range cases {
		line := serve(t, tc.store, tc.method, tc.path, tc.body)
		validEMF(t, line)
		for k, v := range tc.want {
			assert.Equal(t, v, line[k], "%s: %s", tc.name, k)
		}
		for _, k := range tc.absent {
			assert.NotContains(t, line, k, tc.name)
		}
		assert.Equal(t, "request", line["msg"], "still the request log line")
	}
}

func TestOtherLinesPassThrough(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(emf.NewHandler(slog.NewJSONHandler(&buf, nil), "AdCount")).With("fn", "get-stats")
	logger.Error("cannot start", "err", errors.New("bad config"))
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	assert.NotContains(t, line, "_aws")
	assert.Equal(t, "get-stats", line["fn"], "attributes added with With survive")
	assert.Equal(t, "bad config", line["err"])
	assert.True(t, logger.Enabled(context.Background(), slog.LevelInfo))
	assert.False(t, logger.Enabled(context.Background(), slog.LevelDebug), "levels come from the wrapped handler")
}
