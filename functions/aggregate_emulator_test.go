//go:build linux

package functions_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/emf"
)

// TestAggregateUnderEmulator runs the aggregate function as Lambda runs
// it, against a table on the in-process DynamoDB server, with the stream
// samples of events/ and with generated batches delivered the ways Lambda
// delivers them: again whole, again in part, with a malformed marker, with
// a record the aggregator refuses, without a shard. Each case has its own shard and campaign, and reads its counts
// back through the store's Stats, as the admin function does.
func TestAggregateUnderEmulator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	endpoint := dynamotest.Start(t)
	const table = "impressions"
	db := dynamotest.Client(t, endpoint, nil)
	_, err := dynamostore.CreateTable(ctx, db, table)
	require.NoError(t, err)
	store, err := dynamostore.New(db, table)
	require.NoError(t, err)
	env := []string{"STORE=dynamodb", "DYNAMODB_TABLE=" + table}
	for k, v := range dynamotest.Env(endpoint) {
		env = append(env, k+"="+v)
	}
	f := startFunction(t, serve.Aggregate, env...)

	// invoke sends ev and returns the function's answer.
	invoke := func(t *testing.T, ev any) events.DynamoDBTimeWindowEventResponse {
		t.Helper()
		code, body := f.invoke(t, ev)
		require.Equal(t, 200, code, "%s", body)
		var resp events.DynamoDBTimeWindowEventResponse
		require.NoError(t, json.Unmarshal(body, &resp), "%s", body)
		require.NotNil(t, resp.State, "a tumbling window's answer carries a state: %s", body)
		return resp
	}
	failures := func(resp events.DynamoDBTimeWindowEventResponse) []string {
		var seqs []string
		for _, f := range resp.BatchItemFailures {
			seqs = append(seqs, f.ItemIdentifier)
		}
		return seqs
	}
	campaign := func(t *testing.T, id string) {
		t.Helper()
		c, err := adcount.NewCampaign(id, id, time.Now().Add(-2*time.Hour))
		require.NoError(t, err)
		require.NoError(t, store.CreateCampaign(ctx, c))
	}
	// counts returns what Stats report: total, last hour and filtered.
	counts := func(t *testing.T, id string) [3]int64 {
		t.Helper()
		s, err := store.Stats(ctx, id)
		require.NoError(t, err)
		return [3]int64{s.Total, s.LastHour, s.Filtered}
	}
	// users returns the unique users Stats report in each window.
	users := func(t *testing.T, id string) adcount.UniqueUsers {
		t.Helper()
		s, err := store.Stats(ctx, id)
		require.NoError(t, err)
		return s.UniqueUsers
	}
	seqOf := func(r events.DynamoDBEventRecord) string { return r.Change.SequenceNumber }

	// The emulator runs one invocation at a time, so the cases run in
	// order; their shards and campaigns keep them apart.
	t.Run("SampleEvents", func(t *testing.T) {
		campaign(t, streamSampleCampaign)
		// Every stream sample is invoked here, with what it must do.
		want := map[string]func(t *testing.T, resp events.DynamoDBTimeWindowEventResponse){
			// A new marker, a filtered one, a recount, a legacy marker and
			// a TTL deletion: two counted (in 2026, outside the last
			// hour), by two users, and one filtered, whose user adds no
			// reach.
			"aggregate-stream-markers.json": func(t *testing.T, resp events.DynamoDBTimeWindowEventResponse) {
				assert.Empty(t, failures(resp))
				assert.Equal(t, [3]int64{2, 0, 1}, counts(t, streamSampleCampaign))
				assert.Equal(t, adcount.UniqueUsers{Total: 2}, users(t, streamSampleCampaign))
			},
			// The end of the window, with no records: answered cleanly.
			"aggregate-stream-window-end.json": func(t *testing.T, resp events.DynamoDBTimeWindowEventResponse) {
				assert.Empty(t, failures(resp))
				assert.Empty(t, resp.State)
			},
		}
		samples := streamSamples(t)
		for _, name := range []string{"aggregate-stream-markers.json", "aggregate-stream-window-end.json"} {
			require.Contains(t, samples, name)
		}
		for name := range samples {
			check, ok := want[name]
			require.True(t, ok, "events/%s is not used: say here what it must do", name)
			raw, err := os.ReadFile(filepath.Join("..", "events", name))
			require.NoError(t, err)
			// Sent as written, not as decoded and encoded again.
			check(t, invoke(t, json.RawMessage(raw)))
		}
		// The samples delivered again count nothing more.
		raw, err := os.ReadFile("../events/aggregate-stream-markers.json")
		require.NoError(t, err)
		assert.Empty(t, failures(invoke(t, json.RawMessage(raw))))
		assert.Equal(t, [3]int64{2, 0, 1}, counts(t, streamSampleCampaign))
		assert.Equal(t, adcount.UniqueUsers{Total: 2}, users(t, streamSampleCampaign), "nor any user")
	})

	t.Run("WholeBatchRedeliveredCountsOnce", func(t *testing.T) {
		campaign(t, "whole")
		// Eight impressions count, by four users; two are filtered, by
		// two users no counted impression has, who add no reach.
		gen := &markers{campaign: "whole", now: time.Now(), users: 4}
		var recs []events.DynamoDBEventRecord
		for i := range 10 {
			recs = append(recs, gen.next(i%5 == 4))
		}
		for range 2 {
			assert.Empty(t, failures(invoke(t, streamEvent("shardId-whole", recs...))))
		}
		assert.Equal(t, [3]int64{8, 8, 2}, counts(t, "whole"))
		assert.Equal(t, adcount.UniqueUsers{LastHour: 4, LastDay: 4, Total: 4}, users(t, "whole"), "merging the users again adds none")
	})

	t.Run("PartialRedeliveryCountsOnce", func(t *testing.T) {
		campaign(t, "partial")
		gen := &markers{campaign: "partial", now: time.Now()}
		var recs []events.DynamoDBEventRecord
		for range 10 {
			recs = append(recs, gen.next(false))
		}
		// Lambda delivers from a checkpoint it moved less far than the
		// aggregator: the second batch starts inside the first.
		assert.Empty(t, failures(invoke(t, streamEvent("shardId-partial", recs[:6]...))))
		assert.Empty(t, failures(invoke(t, streamEvent("shardId-partial", recs[3:]...))))
		assert.Equal(t, [3]int64{10, 10, 0}, counts(t, "partial"))
		assert.Equal(t, adcount.UniqueUsers{LastHour: 10, LastDay: 10, Total: 10}, users(t, "partial"), "ten users, each once")
	})

	t.Run("MalformedMarkerIsPassedOver", func(t *testing.T) {
		campaign(t, "malformed")
		gen := &markers{campaign: "malformed", now: time.Now()}
		var recs []events.DynamoDBEventRecord
		for range 10 {
			recs = append(recs, gen.next(false))
		}
		// A counted marker without its minute: the table was edited by
		// hand, or a bug wrote it. It cannot be counted, and it must not
		// hold its shard up.
		delete(recs[4].Change.NewImage, "b")
		assert.Empty(t, failures(invoke(t, streamEvent("shardId-malformed", recs...))))
		assert.Equal(t, [3]int64{9, 9, 0}, counts(t, "malformed"), "every other record counts")
	})

	t.Run("FailureResumesAtItsRecord", func(t *testing.T) {
		campaign(t, "poison")
		gen := &markers{campaign: "poison", now: time.Now()}
		var recs []events.DynamoDBEventRecord
		for range 10 {
			recs = append(recs, gen.next(false))
		}
		// A record the aggregator refuses: no stream sends a sequence
		// number that is not decimal digits, but a failure of Apply at a
		// record is answered the same way whatever its cause.
		recs[4].Change.SequenceNumber = "not-a-sequence-number"
		resp := invoke(t, streamEvent("shardId-poison", recs...))
		assert.Equal(t, []string{seqOf(recs[4])}, failures(resp), "Lambda resumes from the refused record")
		assert.Equal(t, [3]int64{4, 4, 0}, counts(t, "poison"), "the records before it count")

		// Lambda retries from it, and bisects: it fails again alone...
		assert.Equal(t, []string{seqOf(recs[4])}, failures(invoke(t, streamEvent("shardId-poison", recs[4:7]...))))
		assert.Equal(t, []string{seqOf(recs[4])}, failures(invoke(t, streamEvent("shardId-poison", recs[4]))))
		// ...until its retries run out and it goes to the on-failure
		// destination; the shard goes on after it.
		assert.Empty(t, failures(invoke(t, streamEvent("shardId-poison", recs[5:]...))))
		assert.Equal(t, [3]int64{9, 9, 0}, counts(t, "poison"))
	})

	t.Run("NoShardIsRefused", func(t *testing.T) {
		campaign(t, "unsharded")
		gen := &markers{campaign: "unsharded", now: time.Now()}
		recs := []events.DynamoDBEventRecord{gen.next(false), gen.next(false)}
		resp := invoke(t, streamEvent("", recs...))
		assert.Equal(t, []string{seqOf(recs[0])}, failures(resp), "refused from the first record")
		assert.Equal(t, [3]int64{0, 0, 0}, counts(t, "unsharded"), "nothing applied")
	})

	t.Run("OneLinePerBatchWithItsMetrics", func(t *testing.T) {
		var lines []map[string]any
		require.Eventually(t, func() bool {
			lines = nil
			for _, doc := range emfDocuments(f.output.String()) {
				if doc["msg"] == "batch" {
					lines = append(lines, doc)
				}
			}
			// Every invocation above with records: 2 + 2 + 2 + 1 + 4 + 1.
			return len(lines) >= 12
		}, 10*time.Second, 10*time.Millisecond, "%s", f.output.String())
		require.Len(t, lines, 12, "one line per batch, none for the window's end")
		sum := map[string]float64{}
		var refused map[string]any
		for _, line := range lines {
			d := line["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
			assert.Equal(t, serve.MetricsNamespace, d["Namespace"])
			for _, m := range d["Metrics"].([]any) {
				name := m.(map[string]any)["Name"].(string)
				v, ok := line[name].(float64)
				require.True(t, ok, "metric %s is a member of the line", name)
				sum[name] += v
			}
			if err, _ := line["err"].(string); strings.Contains(err, "TumblingWindowInSeconds") {
				refused = line
			}
		}
		// Applied whole: the samples twice, two whole deliveries, two
		// partial ones, the malformed marker's batch, and the batch after
		// the refused record.
		assert.Equal(t, 8.0, sum[emf.MetricBatchesApplied])
		// The three invocations at the refused record, and the one
		// without a shard.
		assert.Equal(t, 4.0, sum[emf.MetricAggregatorFailures])
		// The samples' five, ten twice, three of the partial delivery.
		assert.Equal(t, 5.0+10+3, sum[emf.MetricRedeliveriesSkipped])
		// 5 samples, 10 whole, 10 partial, 10 with the malformed marker,
		// 4 + 5 around the refused record.
		assert.Equal(t, 5.0+10+10+10+9, sum[emf.MetricRecordsApplied])
		assert.Equal(t, 1.0, sum[emf.MetricMalformedRecords])
		assert.Positive(t, sum[emf.MetricAggregatorLag], "the lag of the batches that applied records")
		if assert.NotNil(t, refused, "the batch without a shard is logged with the setting to fix") {
			assert.Equal(t, "ERROR", refused["level"])
		}
		assert.Contains(t, f.output.String(), "malformed marker passed over", "the malformed marker is logged")
	})
}
