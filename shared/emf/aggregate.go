package emf

import (
	"context"
	"log/slog"
	"time"
)

// Batch is what one invocation of the stream aggregator did with the batch
// of one shard's records that it was given: the record that Sink.ObserveBatch
// writes as one log line and EMF document.
type Batch struct {
	// Reader names the Streams API reader that read the records itself,
	// such as the aggregate function's scheduled reader; empty for a batch
	// that Lambda's event source mapping delivered. It is logged, not a
	// dimension: the metrics are the aggregator's, whoever read the
	// records.
	Reader string
	// Shard is the stream shard the records came from; empty for a
	// reader's failure outside any shard, such as listing the shards.
	Shard string
	// Records is how many records the batch held.
	Records int
	// Applied is how many of them this invocation applied, moving the
	// shard's checkpoint over them; Skipped is how many an earlier
	// delivery had already applied, redeliveries.
	Applied, Skipped int
	// Malformed is how many of them were dedup markers that lacked what a
	// count needs, which the aggregator passed over: only a hand edit of
	// the table or a bug makes one.
	Malformed int
	// Counted and Filtered are the impressions folded into the counts.
	Counted, Filtered int64
	// Transactions is how many writes the aggregator committed.
	Transactions int
	// Lag is the aggregator's lag, how long ago the newest record handled
	// was written (its ApproximateCreationDateTime); HasLag is false when
	// no record was handled.
	Lag    time.Duration
	HasLag bool
	// Through is the sequence number through which the shard is applied.
	Through string
	// Failed is the sequence number of the record that Lambda must
	// deliver again from, empty if the batch succeeded; Err says why.
	Failed string
	Err    error
}

// Aggregator metric names, in the Sink's namespace, without dimensions:
// one aggregator serves the stack's one table.
const (
	// MetricAggregatorLag is the aggregator's lag in seconds: the
	// iterator age of the records it handled. Its Maximum is what to alarm
	// on, beside Lambda's own IteratorAge.
	MetricAggregatorLag = "aggregator_lag_seconds"
	// MetricBatchesApplied counts batches applied whole.
	MetricBatchesApplied = "aggregator_batches_applied"
	// MetricRecordsApplied counts records applied for the first time.
	MetricRecordsApplied = "aggregator_records_applied"
	// MetricRedeliveriesSkipped counts records delivered again after they
	// had been applied, and skipped.
	MetricRedeliveriesSkipped = "aggregator_redeliveries_skipped"
	// MetricAggregatorFailures counts batches that failed in whole or in
	// part and will be delivered again from their failed record.
	MetricAggregatorFailures = "aggregator_failures"
	// MetricMalformedRecords counts malformed markers passed over, never
	// counted: alarm on any.
	MetricMalformedRecords = "aggregator_malformed_records"
)

// ObserveBatch writes b as one JSON line through the Sink's handler: the
// batch's log line, at INFO, or ERROR if it failed, and its EMF document.
// As for a request, the metrics never depend on the log level: a line the
// level hides is still written, as "metrics", with only the metric values.
func (s *Sink) ObserveBatch(ctx context.Context, b Batch) {
	now := time.Now()
	level, msg := slog.LevelInfo, "batch"
	if b.Err != nil {
		level = slog.LevelError
	}
	failures, applied := 0, 0
	if b.Failed != "" || b.Err != nil {
		failures = 1
	} else {
		applied = 1
	}
	metrics := []metric{
		{MetricBatchesApplied, "Count"},
		{MetricRecordsApplied, "Count"},
		{MetricRedeliveriesSkipped, "Count"},
		{MetricAggregatorFailures, "Count"},
		{MetricMalformedRecords, "Count"},
	}
	attrs := make([]slog.Attr, 0, 16)
	if s.handler.Enabled(ctx, level) {
		if b.Reader != "" {
			attrs = append(attrs, slog.String("reader", b.Reader))
		}
		attrs = append(attrs,
			slog.String("shard", b.Shard),
			slog.Int("records", b.Records),
			slog.Int64("counted", b.Counted),
			slog.Int64("filtered", b.Filtered),
			slog.Int("transactions", b.Transactions),
			slog.String("through", b.Through))
		if b.Failed != "" {
			attrs = append(attrs, slog.String("failed_at", b.Failed))
		}
		if b.Err != nil {
			attrs = append(attrs, slog.String("err", b.Err.Error()))
		}
	} else {
		msg = "metrics"
	}
	attrs = append(attrs,
		slog.Int(MetricBatchesApplied, applied),
		slog.Int(MetricRecordsApplied, b.Applied),
		slog.Int(MetricRedeliveriesSkipped, b.Skipped),
		slog.Int(MetricAggregatorFailures, failures),
		slog.Int(MetricMalformedRecords, b.Malformed))
	if b.HasLag {
		metrics = append(metrics, metric{MetricAggregatorLag, "Seconds"})
		attrs = append(attrs, slog.Float64(MetricAggregatorLag, max(b.Lag, 0).Seconds()))
	}
	attrs = append(attrs, slog.Group("_aws",
		slog.Int64("Timestamp", now.UnixMilli()),
		slog.Any("CloudWatchMetrics", []directive{{s.namespace, [][]string{{}}, metrics}})))

	r := slog.NewRecord(now, level, msg, 0)
	r.AddAttrs(attrs...)
	// Straight to the handler, whatever its level, as Observe does.
	_ = s.handler.Handle(ctx, r)
}
