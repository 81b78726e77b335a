package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape reads /metrics and returns each sample by its name and labels, as
// written in the Prometheus text format.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	samples := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		samples[line[:i]] = v
	}
	require.NoError(t, lines.Err())
	return samples
}

// TestMetricsMoveWithTraffic drives requests through the real server and
// checks that the scraped metrics moved by exactly what was sent.
func TestMetricsMoveWithTraffic(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{}, nil)
	before := scrape(t, base)
	assert.Equal(t, 0.0, before["adcount_campaigns"])
	assert.Equal(t, 0.0, before["adcount_dedup_keys"])
	dropped, ok := before["adcount_log_lines_dropped_total"]
	assert.True(t, ok, "the server publishes the log lines its buffer dropped")
	assert.Equal(t, 0.0, dropped)

	id := post(t, base+"/api/v1/campaigns", `{"name":"Metered","start_time":"2020-01-01T00:00:00Z"}`)["id"].(string)
	for _, body := range []string{
		fmt.Sprintf(`{"campaign_id":%q,"user_id":"u1","ad_id":"a"}`, id), // counted
		fmt.Sprintf(`{"campaign_id":%q,"user_id":"u2","ad_id":"a"}`, id), // counted
		fmt.Sprintf(`{"campaign_id":%q,"user_id":"u1","ad_id":"a"}`, id), // duplicate
		`{"campaign_id":"nope","user_id":"u","ad_id":"a"}`,               // rejected: not_found
		`{"campaign_id":"nope"}`, // rejected: invalid
		`{"campaign_id":`,        // rejected: malformed
	} {
		post(t, base+"/api/v1/impressions", body)
	}
	after := scrape(t, base)

	cases := []struct {
		sample string
		delta  float64
	}{
		{`adcount_impressions_total{outcome="counted",reason=""}`, 2},
		{`adcount_impressions_total{outcome="duplicate",reason=""}`, 1},
		{`adcount_impressions_total{outcome="rejected",reason="not_found"}`, 1},
		{`adcount_impressions_total{outcome="rejected",reason="invalid"}`, 1},
		{`adcount_impressions_total{outcome="rejected",reason="malformed"}`, 1},
		{`adcount_http_requests_total{route="POST /api/v1/impressions",status="200"}`, 3},
		{`adcount_http_requests_total{route="POST /api/v1/impressions",status="404"}`, 1},
		{`adcount_http_requests_total{route="POST /api/v1/impressions",status="400"}`, 2},
		{`adcount_http_requests_total{route="POST /api/v1/campaigns",status="201"}`, 1},
		{`adcount_http_request_duration_seconds_count{route="POST /api/v1/impressions"}`, 6},
		{`adcount_campaigns`, 1},
		{`adcount_dedup_keys`, 2},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.delta, after[tc.sample]-before[tc.sample], tc.sample)
	}
	_, anyStoreError := after[`adcount_store_errors_total{kind="unavailable"}`]
	assert.False(t, anyStoreError, "no store error happened")
}

func TestOperationsRoutes(t *testing.T) {
	t.Parallel()
	base := startServer(t, map[string]string{"ADMIN_API_KEYS": "ops-test-key-0123456789"}, nil)
	cases := []struct {
		path        string
		contentType string
		contains    string
	}{
		{"/healthz", "application/json", `"status":"ok"`},
		// The memory store is always reachable.
		{"/readyz", "application/json", `"status":"ready"`},
		// The contract is public, like the API it describes.
		{"/api/v1/openapi.yaml", "application/yaml", "openapi: 3.1.0"},
		{"/metrics", "text/plain", "adcount_http_requests_total"},
	}
	for _, tc := range cases {
		resp, err := http.Get(base + tc.path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusOK, resp.StatusCode, tc.path)
		assert.Contains(t, resp.Header.Get("Content-Type"), tc.contentType, tc.path)
		assert.Contains(t, string(body), tc.contains, tc.path)
	}
}
