//go:build linux

package functions_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/apigwtest"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
)

// TestMetricsAtWarnUnderEmulator: with LOG_LEVEL=warn a function logs no
// request lines, yet every request still writes its one EMF document, so
// CloudWatch keeps its metrics.
func TestMetricsAtWarnUnderEmulator(t *testing.T) {
	t.Parallel()
	gw := apigwtest.NewGateway(httpapi.Routes())
	// One request to a route of each function, answered below 500 so that
	// only the metrics document, not an error line, is written at warn.
	requests := map[serve.Function]struct {
		req    apigwtest.Request
		route  string
		status int
	}{
		serve.Admin: {apigwtest.Request{Method: "GET", Target: "/api/v1/campaigns/no-such-campaign/stats"}, "GET /api/v1/campaigns/{id}/stats", 401},
		serve.Ingest: {apigwtest.Request{Method: "POST", Target: "/api/v1/impressions", Body: `{"campaign_id":"no-such-campaign","user_id":"u","ad_id":"a"}`},
			"POST /api/v1/impressions", 404},
	}
	for _, fn := range serve.Functions() {
		t.Run(string(fn), func(t *testing.T) {
			t.Parallel()
			want, ok := requests[fn]
			require.True(t, ok, "a request for %s", fn)
			f := startFunction(t, fn, "LOG_LEVEL=warn", lambdaproxy.PayloadEnv+"="+string(lambdaproxy.PayloadV2))
			r := f.call(t, gw, lambdaproxy.PayloadV2, want.req)
			require.Equal(t, want.status, r.Status, r.Body)
			// The emulator relays the function's output on its own time.
			var docs []map[string]any
			require.Eventually(t, func() bool {
				docs = emfDocuments(f.output.String())
				return len(docs) > 0
			}, 10*time.Second, 10*time.Millisecond, "an EMF document: %s", f.output.String())
			for _, line := range docs {
				assert.Equal(t, "metrics", line["msg"], "the request line itself is hidden at warn")
				assert.Equal(t, want.route, line["route"])
				assert.Equal(t, strconv.Itoa(want.status), line["status_code"])
				assert.Equal(t, 1.0, line["requests"])
				assert.NotContains(t, line, "request_id", "log-only fields stay out")
			}
			assert.Len(t, docs, 1, "one EMF document per request: %s", f.output.String())
		})
	}
}

// emfDocuments returns the JSON lines of output that carry an EMF block.
func emfDocuments(output string) []map[string]any {
	var docs []map[string]any
	for _, raw := range strings.Split(output, "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(raw), &line) == nil && line["_aws"] != nil {
			docs = append(docs, line)
		}
	}
	return docs
}
