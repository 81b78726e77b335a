package prommetrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/prommetrics"
)

// TestRecordsBecomeSamples: each record moves the request, latency,
// impression and store-error series by what it holds, a batch's counts per
// outcome included.
func TestRecordsBecomeSamples(t *testing.T) {
	t.Parallel()
	m := prommetrics.New(nil)
	m.Observe(context.Background(), httpapi.Record{Route: "POST /api/v1/impressions", Status: 200, Duration: time.Millisecond,
		Impressions: httpapi.Impressions{Counted: 3, Duplicate: 1, Filtered: 4, Rejected: []httpapi.Rejection{{Reason: "invalid", Count: 2}}}})
	m.Observe(context.Background(), httpapi.Record{Route: "POST /api/v1/impressions", Status: 503, ErrorKind: "unavailable", StoreError: true,
		Impressions: httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "unavailable", Count: 1}}}})
	m.Observe(context.Background(), httpapi.Record{Route: "POST /api/v1/impressions", Status: 499, ErrorKind: "client_closed",
		Impressions: httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "client_closed", Count: 1}}}})
	// A batch refused for each way a campaign is not live: a series each.
	m.Observe(context.Background(), httpapi.Record{Route: "POST /api/v1/impressions/batch", Status: 200,
		Impressions: httpapi.Impressions{Rejected: []httpapi.Rejection{{Reason: "not_started", Count: 1}, {Reason: "paused", Count: 2}, {Reason: "ended", Count: 3}}}})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	for _, want := range []string{
		`adcount_impressions_total{outcome="counted",reason=""} 3`,
		`adcount_impressions_total{outcome="duplicate",reason=""} 1`,
		`adcount_impressions_total{outcome="filtered",reason=""} 4`,
		`adcount_impressions_total{outcome="rejected",reason="invalid"} 2`,
		`adcount_impressions_total{outcome="rejected",reason="unavailable"} 1`,
		`adcount_impressions_total{outcome="rejected",reason="client_closed"} 1`,
		`adcount_impressions_total{outcome="rejected",reason="not_started"} 1`,
		`adcount_impressions_total{outcome="rejected",reason="paused"} 2`,
		`adcount_impressions_total{outcome="rejected",reason="ended"} 3`,
		`adcount_http_requests_total{route="POST /api/v1/impressions",status="200"} 1`,
		`adcount_http_requests_total{route="POST /api/v1/impressions",status="499"} 1`,
		`adcount_http_request_duration_seconds_count{route="POST /api/v1/impressions"} 3`,
		`adcount_store_errors_total{kind="unavailable"} 1`,
	} {
		assert.Contains(t, string(body), want+"\n")
	}
	assert.NotContains(t, string(body), `kind="client_closed"`, "a hang-up is no store error")
	assert.Equal(t, 1, strings.Count(string(body), "adcount_store_errors_total{"))
}

// TestDroppedLogLinesAreCounted: the dropped-line count is read at scrape
// time, so a scrape always shows what the log buffer has dropped so far.
func TestDroppedLogLinesAreCounted(t *testing.T) {
	t.Parallel()
	m := prommetrics.New(nil)
	var dropped atomic.Uint64
	require.NoError(t, m.CountDroppedLogLines(dropped.Load))
	require.Error(t, m.CountDroppedLogLines(dropped.Load), "the counter is registered once")
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	assert.Contains(t, scrape(), "adcount_log_lines_dropped_total 0\n")
	dropped.Add(7)
	assert.Contains(t, scrape(), "adcount_log_lines_dropped_total 7\n")
}

// TestSeriesAreKeptApart: concurrent requests on many routes and statuses,
// each series made on first use by whichever request comes first, all
// count; past the bound on kept series, a series still counts, looked up
// on every use.
func TestSeriesAreKeptApart(t *testing.T) {
	t.Parallel()
	m := prommetrics.New(nil)
	const workers, statuses = 4, 1100 // more statuses than the cache keeps
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for s := range statuses {
				m.Observe(context.Background(), httpapi.Record{Route: "r" + strconv.Itoa(s%3), Status: 1000 + s, Duration: time.Millisecond,
					Impressions: httpapi.Impressions{Counted: 1, Rejected: []httpapi.Rejection{{Reason: "k" + strconv.Itoa(s%5), Count: 2}}}})
			}
		})
	}
	wg.Wait()

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, s := range []int{0, 1, 1023, 1024, statuses - 1} {
		assert.Contains(t, body, fmt.Sprintf(`adcount_http_requests_total{route="r%d",status="%d"} %d`+"\n", s%3, 1000+s, workers))
	}
	for r := range 3 {
		n := statuses / 3
		if r < statuses%3 {
			n++
		}
		assert.Contains(t, body, fmt.Sprintf(`adcount_http_request_duration_seconds_count{route="r%d"} %d`+"\n", r, n*workers))
	}
	assert.Contains(t, body, fmt.Sprintf(`adcount_impressions_total{outcome="counted",reason=""} %d`+"\n", statuses*workers))
	assert.Contains(t, body, fmt.Sprintf(`adcount_impressions_total{outcome="rejected",reason="k4"} %d`+"\n", statuses/5*2*workers))
	assert.NotContains(t, body, `outcome="duplicate"`, "a series appears once used")
}

// BenchmarkObserve measures the sink's work for one request of the
// single route, from every core (run with -cpu 1,2).
func BenchmarkObserve(b *testing.B) {
	m := prommetrics.New(nil)
	rec := httpapi.Record{Method: "POST", Route: httpapi.RouteRecordImpression, Status: 200,
		Duration: 123456, Impressions: httpapi.Impressions{Counted: 1}}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(ctx, rec)
		}
	})
}
