package emf_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/shared/emf"
)

// observeBatch writes b through a sink whose log is at level and returns
// the one line it wrote.
func observeBatch(t *testing.T, level slog.Level, b emf.Batch) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	emf.NewSink(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}), "AdCount").ObserveBatch(context.Background(), b)
	lines := bufio.NewScanner(&buf)
	require.True(t, lines.Scan())
	var line map[string]any
	require.NoError(t, json.Unmarshal(lines.Bytes(), &line))
	require.False(t, lines.Scan(), "one line per batch")
	return line
}

func TestBatchLinesAreEMF(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		level  slog.Level
		batch  emf.Batch
		want   map[string]any
		absent []string
	}{
		// A batch applied whole, partly a redelivery.
		{"Applied", slog.LevelInfo,
			emf.Batch{Shard: "shard-1", Records: 5, Applied: 3, Skipped: 2, Malformed: 1, Counted: 1, Filtered: 1, Transactions: 1, Lag: 1500 * time.Millisecond, HasLag: true, Through: "105"},
			map[string]any{"msg": "batch", "level": "INFO", "shard": "shard-1", "records": 5.0, "counted": 1.0, "filtered": 1.0, "through": "105",
				emf.MetricBatchesApplied: 1.0, emf.MetricRecordsApplied: 3.0, emf.MetricRedeliveriesSkipped: 2.0, emf.MetricAggregatorFailures: 0.0,
				emf.MetricMalformedRecords: 1.0, emf.MetricAggregatorLag: 1.5},
			[]string{"err", "failed_at", "reader"}},
		// A failure is logged at ERROR, with where Lambda resumes.
		{"Failed", slog.LevelInfo,
			emf.Batch{Shard: "shard-1", Records: 5, Applied: 1, Lag: time.Second, HasLag: true, Through: "101", Failed: "102", Err: errors.New("boom")},
			map[string]any{"msg": "batch", "level": "ERROR", "failed_at": "102", "err": "boom",
				emf.MetricBatchesApplied: 0.0, emf.MetricRecordsApplied: 1.0, emf.MetricAggregatorFailures: 1.0, emf.MetricAggregatorLag: 1.0},
			nil},
		// A page that a Streams reader read itself names the reader; the
		// mapping's batches name none (the case above).
		{"ReadByAReader", slog.LevelInfo,
			emf.Batch{Reader: "aggregate-schedule", Shard: "shard-1", Records: 2, Applied: 2, Lag: time.Second, HasLag: true, Through: "102"},
			map[string]any{"msg": "batch", "reader": "aggregate-schedule", "shard": "shard-1", emf.MetricBatchesApplied: 1.0, emf.MetricRecordsApplied: 2.0},
			nil},
		// Nothing handled: no lag to report, rather than a made-up zero.
		{"NothingHandled", slog.LevelInfo,
			emf.Batch{Records: 2, Failed: "101", Err: errors.New("no shard")},
			map[string]any{emf.MetricAggregatorFailures: 1.0, emf.MetricRecordsApplied: 0.0},
			[]string{emf.MetricAggregatorLag}},
		// LOG_LEVEL=warn hides a good batch's line, not its metrics.
		{"WarnLevel", slog.LevelWarn,
			emf.Batch{Shard: "shard-1", Records: 5, Applied: 5, Lag: time.Second, HasLag: true, Through: "105"},
			map[string]any{"msg": "metrics", "level": "INFO", emf.MetricBatchesApplied: 1.0, emf.MetricRecordsApplied: 5.0},
			[]string{"shard", "records", "through"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			line := observeBatch(t, tc.level, tc.batch)
			validEMF(t, line)
			for k, v := range tc.want {
				assert.Equal(t, v, line[k], k)
			}
			for _, k := range tc.absent {
				assert.NotContains(t, line, k)
			}
			d := line["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
			assert.Equal(t, []any{[]any{}}, d["Dimensions"], "one series per metric, with no dimension")
		})
	}
}
