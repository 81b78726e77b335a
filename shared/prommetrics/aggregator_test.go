package prommetrics_test

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/prommetrics"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// TestAggregatorMetrics: what the poller reports becomes the aggregator's
// series, and the lag drops to zero once it catches up.
func TestAggregatorMetrics(t *testing.T) {
	t.Parallel()
	m := prommetrics.New(nil)
	a, err := m.Aggregator()
	require.NoError(t, err)
	_, err = m.Aggregator()
	require.Error(t, err, "registered once")
	scrape := func() string {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	a.Applied("s1", dynamostore.Applied{Records: 10, Skipped: 3, Counted: 5, Filtered: 1}, 1500*time.Millisecond)
	a.Applied("s2", dynamostore.Applied{Records: 2}, 250*time.Millisecond)
	a.Failed(streampoll.StageApply, errors.New("x"))
	a.Failed(streampoll.Stage("other"), errors.New("x"))
	body := scrape()
	for _, want := range []string{
		"adcount_aggregator_lag_seconds 0.25",
		"adcount_aggregator_batches_total 2",
		"adcount_aggregator_records_total 9",
		"adcount_aggregator_redeliveries_skipped_total 3",
		`adcount_aggregator_impressions_total{outcome="counted"} 5`,
		`adcount_aggregator_impressions_total{outcome="filtered"} 1`,
		`adcount_aggregator_failures_total{stage="apply"} 1`,
		`adcount_aggregator_failures_total{stage="read"} 0`,
		`adcount_aggregator_failures_total{stage="other"} 1`,
	} {
		assert.Contains(t, body, want+"\n")
	}
	a.CaughtUp()
	assert.Contains(t, scrape(), "adcount_aggregator_lag_seconds 0\n")
}
