package prommetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// AggregatorMetrics are the metrics of a stream poller that aggregates the
// DynamoDB table's stream in the server. It is safe for concurrent use.
type AggregatorMetrics struct {
	lag         prometheus.Gauge
	batches     prometheus.Counter
	records     prometheus.Counter
	skipped     prometheus.Counter
	counted     prometheus.Counter
	filtered    prometheus.Counter
	failures    *prometheus.CounterVec
	failedStage map[streampoll.Stage]prometheus.Counter
}

var _ streampoll.Observer = (*AggregatorMetrics)(nil)

// Aggregator registers the stream poller's metrics and returns them, for
// streampoll.WithObserver:
//
//   - adcount_aggregator_lag_seconds: the iterator age, how long before it
//     was applied the newest record of the last page was written; 0 once a
//     round finds nothing more. Alarm when it stays above a few seconds:
//     stats then lag behind impressions.
//   - adcount_aggregator_batches_total, adcount_aggregator_records_total:
//     pages and the records in them applied for the first time.
//   - adcount_aggregator_redeliveries_skipped_total: records another
//     delivery had applied already, as happens with several servers.
//   - adcount_aggregator_impressions_total{outcome}: counted and filtered
//     impressions folded into the counts.
//   - adcount_aggregator_failures_total{stage}: failed discover, read,
//     apply and advance steps. Alarm on a sustained rate: each is retried,
//     but a shard that keeps failing stops moving.
//
// Call it once, before serving; a second call returns the registry's error.
func (m *Metrics) Aggregator() (*AggregatorMetrics, error) {
	a := &AggregatorMetrics{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "adcount_aggregator_lag_seconds",
			Help: "Iterator age: seconds between the newest applied stream record's creation and its application; 0 when caught up.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "adcount_aggregator_batches_total",
			Help: "Pages of stream records applied to the counts.",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "adcount_aggregator_records_total",
			Help: "Stream records applied for the first time.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "adcount_aggregator_redeliveries_skipped_total",
			Help: "Stream records skipped because an earlier delivery had applied them.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "adcount_aggregator_failures_total",
			Help: "Failed steps of the stream poller by stage (discover, read, apply, advance); each is retried.",
		}, []string{"stage"}),
		failedStage: map[streampoll.Stage]prometheus.Counter{},
	}
	impressions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "adcount_aggregator_impressions_total",
		Help: "Impressions folded into the counts by the aggregator, by outcome (counted, filtered).",
	}, []string{"outcome"})
	a.counted, a.filtered = impressions.WithLabelValues("counted"), impressions.WithLabelValues("filtered")
	for _, s := range []streampoll.Stage{streampoll.StageDiscover, streampoll.StageRead, streampoll.StageApply, streampoll.StageAdvance} {
		a.failedStage[s] = a.failures.WithLabelValues(string(s))
	}
	for _, c := range []prometheus.Collector{a.lag, a.batches, a.records, a.skipped, impressions, a.failures} {
		if err := m.registry.Register(c); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Applied implements streampoll.Observer.
func (a *AggregatorMetrics) Applied(_ string, applied dynamostore.Applied, lag time.Duration) {
	a.batches.Inc()
	a.records.Add(float64(applied.Records - applied.Skipped))
	a.skipped.Add(float64(applied.Skipped))
	a.counted.Add(float64(applied.Counted))
	a.filtered.Add(float64(applied.Filtered))
	a.lag.Set(max(lag, 0).Seconds())
}

// Failed implements streampoll.Observer.
func (a *AggregatorMetrics) Failed(stage streampoll.Stage, _ error) {
	if c, ok := a.failedStage[stage]; ok {
		c.Inc()
		return
	}
	a.failures.WithLabelValues(string(stage)).Inc()
}

// CaughtUp implements streampoll.Observer.
func (a *AggregatorMetrics) CaughtUp() { a.lag.Set(0) }
