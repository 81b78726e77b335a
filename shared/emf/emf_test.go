package emf_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

func (downStore) RecordImpression(context.Context, adcount.Impression) (adcount.Outcome, error) {
	return 0, fmt.Errorf("down: %w", adcount.ErrUnavailable)
}

// serve sends one request through the API whose request lines the EMF sink
// writes, with the log at level, and returns the one line it wrote.
func serve(t *testing.T, store adcount.Store, level slog.Level, method, path, body string) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	sink := emf.NewSink(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}), "AdCount")
	h := httpapi.NewHandler(store, httpapi.WithRequestLog(sink))
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
	units := map[string]bool{"Count": true, "Milliseconds": true, "Seconds": true}
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
	require.NoError(t, mem.CreateCampaign(context.Background(), adcount.Campaign{ID: "paused", Name: "p", StartTime: start, Paused: true}))
	require.NoError(t, mem.CreateCampaign(context.Background(), adcount.Campaign{ID: "ended", Name: "e", StartTime: start, EndTime: start.Add(time.Hour)}))
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
		// A campaign that is not live refuses with a reason of its own.
		{"Paused", mem, "POST", "/api/v1/impressions", `{"campaign_id":"paused","user_id":"u","ad_id":"a"}`,
			map[string]any{"impression_outcome": "rejected", "impression_reason": "paused", "status_code": "409"}, []string{"store_errors"}},
		{"Ended", mem, "GET", "/api/v1/pixel.gif?campaign_id=ended&user_id=u&ad_id=a", "",
			map[string]any{"impression_outcome": "rejected", "impression_reason": "ended", "status_code": "409"}, []string{"store_errors"}},
		{"StoreError", downStore{mem}, "POST", "/api/v1/impressions", imp,
			map[string]any{"impression_outcome": "rejected", "impression_reason": "unavailable", "store_error": "unavailable", "store_errors": 1.0, "status_code": "503"}, nil},
		// Other routes count requests and latency, not impressions.
		{"Stats", mem, "GET", "/api/v1/campaigns/c/stats", "",
			map[string]any{"route": "GET /api/v1/campaigns/{id}/stats", "requests": 1.0}, []string{"impressions", "impression_outcome"}},
	}
	for _, tc := range cases {
		line := serve(t, tc.store, slog.LevelInfo, tc.method, tc.path, tc.body)
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

// TestMetricsSurviveWarnLevel: at LOG_LEVEL=warn the request line is not
// logged, but its metrics still reach CloudWatch, in a line that leaves out
// what only the log wanted. A 5xx is logged at that level, in full.
func TestMetricsSurviveWarnLevel(t *testing.T) {
	t.Parallel()
	mem, err := memstore.New()
	require.NoError(t, err)
	rejected := `{"campaign_id":"nope","user_id":"u","ad_id":"a"}`

	line := serve(t, mem, slog.LevelWarn, "POST", "/api/v1/impressions", rejected)
	validEMF(t, line)
	assert.Equal(t, "metrics", line["msg"], "not the request line the level hides")
	assert.Equal(t, "INFO", line["level"])
	assert.Equal(t, map[string]any{"route": "POST /api/v1/impressions", "status_code": "404", "requests": 1.0,
		"impression_outcome": "rejected", "impression_reason": "not_found", "impressions": 1.0}, pick(line, "route", "status_code", "requests", "impression_outcome", "impression_reason", "impressions"))
	assert.Contains(t, line, "duration_ms")
	for _, k := range []string{"request_id", "method", "status", "err", "error_kind"} {
		assert.NotContains(t, line, k, "log-only fields stay out at warn")
	}

	line = serve(t, downStore{mem}, slog.LevelWarn, "POST", "/api/v1/impressions", rejected)
	validEMF(t, line)
	assert.Equal(t, "request", line["msg"], "a 5xx is logged at warn")
	assert.Equal(t, "ERROR", line["level"])
	assert.Equal(t, "unavailable", line["store_error"])
	assert.Equal(t, 1.0, line["store_errors"])
	assert.Contains(t, line, "err")
}

// pick returns the members of line named by keys.
func pick(line map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := line[k]; ok {
			out[k] = v
		}
	}
	return out
}

// TestMixedBatchOutcomes: a record whose impressions had several outcomes,
// as a batch will, is counted per outcome, since a dimension holds one
// value per document.
func TestMixedBatchOutcomes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	sink := emf.NewSink(slog.NewJSONHandler(&buf, nil), "AdCount")
	sink.Observe(context.Background(), httpapi.Record{Route: "POST /api/v1/impressions/batch", Status: 200,
		Impressions: httpapi.Impressions{Counted: 3, Duplicate: 1, Filtered: 5, Rejected: []httpapi.Rejection{{Reason: "invalid", Count: 2}, {Reason: "not_found", Count: 1}}}})
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	validEMF(t, line)
	assert.Equal(t, map[string]any{"impressions_counted": 3.0, "impressions_duplicate": 1.0, "impressions_filtered": 5.0, "impressions_rejected": 3.0},
		pick(line, "impressions_counted", "impressions_duplicate", "impressions_filtered", "impressions_rejected"))
	assert.NotContains(t, line, "impression_outcome")
}

// TestFilteredOutcome: impressions filtered as invalid traffic are an
// outcome of their own, one pixel's or a whole batch's.
func TestFilteredOutcome(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 40} {
		var buf bytes.Buffer
		sink := emf.NewSink(slog.NewJSONHandler(&buf, nil), "AdCount")
		sink.Observe(context.Background(), httpapi.Record{Route: "GET /api/v1/pixel.gif", Status: 200, Impressions: httpapi.Impressions{Filtered: n}})
		var line map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
		validEMF(t, line)
		assert.Equal(t, map[string]any{"impression_outcome": "filtered", "impression_reason": "none", "impressions": float64(n)},
			pick(line, "impression_outcome", "impression_reason", "impressions"))
	}
}
