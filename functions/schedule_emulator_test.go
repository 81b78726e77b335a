//go:build linux

package functions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/dynamotest"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// scheduleTimeout is the function's timeout in the emulator: a scheduled
// invocation reads for it less aggregate.ScheduleMargin, some rounds of a
// second, enough for the watermark, a second behind the round that
// advances it, to pass a moment before the invocation on a loaded machine.
const scheduleTimeout = 8 * time.Second

// mappingOnly is the aggregator as the event source mapping uses it: it
// applies records, and never advances a reader watermark.
type mappingOnly struct{ *dynamostore.Aggregator }

func (mappingOnly) Advance(context.Context, string, time.Time) error { return nil }

// TestScheduledReaderUnderEmulator runs the aggregate function as Lambda
// runs it, against a table and its stream on the in-process DynamoDB
// server, and invokes it with the schedule's event, events/
// aggregate-schedule.json as written. The invocation reads the stream
// through the Streams API: it applies, exactly once, the markers that the
// mapping has not, and advances the one reader watermark that the stats'
// as_of reports, so that the store's Settle returns during it.
func TestScheduledReaderUnderEmulator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	endpoint := dynamotest.Start(t)
	const table, id = "impressions", "scheduled"
	db := dynamotest.Client(t, endpoint, nil)
	_, err := dynamostore.CreateTable(ctx, db, table)
	require.NoError(t, err)
	store, err := dynamostore.New(db, table)
	require.NoError(t, err)
	c, err := adcount.NewCampaign(id, id, time.Now().Add(-2*time.Hour))
	require.NoError(t, err)
	require.NoError(t, store.CreateCampaign(ctx, c))

	env := []string{"STORE=dynamodb", "DYNAMODB_TABLE=" + table,
		fmt.Sprintf("AWS_LAMBDA_FUNCTION_TIMEOUT=%d", int(scheduleTimeout.Seconds()))}
	for k, v := range dynamotest.Env(endpoint) {
		env = append(env, k+"="+v)
	}
	f := startFunction(t, serve.Aggregate, env...)
	sample, err := os.ReadFile("../events/aggregate-schedule.json")
	require.NoError(t, err)

	// record writes five counted impressions of users prefix0…4, a repeat
	// of the first, which is a duplicate, and a filtered one: six markers.
	record := func(t *testing.T, prefix string) {
		t.Helper()
		for i := range 5 {
			_, err := store.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: fmt.Sprint(prefix, i), AdID: "ad"})
			require.NoError(t, err)
		}
		out, err := store.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: prefix + "0", AdID: "ad"})
		require.NoError(t, err)
		require.Equal(t, adcount.Duplicate, out)
		_, err = store.RecordImpression(ctx, adcount.Impression{CampaignID: id, UserID: prefix + "bot", AdID: "ad", Filtered: true})
		require.NoError(t, err)
	}
	stats := func(t *testing.T) adcount.Stats {
		t.Helper()
		s, err := store.Stats(ctx, id)
		require.NoError(t, err)
		return s
	}
	// invoke sends the schedule's event as written and returns what the
	// scheduled reader did, checking that Settle, called before it,
	// returned during it: the reader watermark passed the call.
	invoke := func(t *testing.T) aggregate.ScheduleResult {
		t.Helper()
		settled := make(chan error, 1)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		go func() { settled <- store.Settle(sctx) }()
		began := time.Now()
		code, body, err := f.post(sample)
		require.NoError(t, err)
		require.Equal(t, 200, code, "%s", body)
		took := time.Since(began)
		assert.Less(t, took, scheduleTimeout, "the invocation returns before its deadline: %s", body)
		assert.Greater(t, took, scheduleTimeout-aggregate.ScheduleMargin-2*time.Second, "the reader ran until near the deadline")
		var res aggregate.ScheduleResult
		require.NoError(t, json.Unmarshal(body, &res), "%s", body)
		select {
		case err := <-settled:
			require.NoError(t, err)
		case <-time.After(time.Second):
			t.Fatalf("Settle has not returned after the scheduled invocation; it answered %s", body)
		}
		return res
	}
	// readers lists the reader watermarks' items (docs/dynamodb.md).
	readers := func(t *testing.T) []string {
		t.Helper()
		out, err := db.Query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(table),
			KeyConditionExpression: aws.String("#pk = :pk AND begins_with(#sk, :reader)"),
			ExpressionAttributeNames: map[string]string{
				"#pk": dynamostore.PartitionKey, "#sk": dynamostore.SortKey},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": &types.AttributeValueMemberS{Value: "STREAM"}, ":reader": &types.AttributeValueMemberS{Value: "READER#"}},
			ConsistentRead: aws.Bool(true),
		})
		require.NoError(t, err)
		var sks []string
		for _, item := range out.Items {
			if sk, ok := item[dynamostore.SortKey].(*types.AttributeValueMemberS); ok {
				sks = append(sks, sk.Value)
			}
		}
		return sks
	}

	// The mapping has applied the first markers, and no reader has run:
	// the counts hold them, and there is no as_of.
	record(t, "mapped-")
	agg, err := dynamostore.NewAggregator(db, table)
	require.NoError(t, err)
	mapping, err := streampoll.New(dynamotest.StreamsClient(t, endpoint, nil), mappingOnly{agg}, table,
		streampoll.WithFilter(dynamostore.IsMarkerRecord))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		caughtUp, err := mapping.Poll(ctx)
		return err == nil && caughtUp
	}, 10*time.Second, 10*time.Millisecond)
	// Written after the mapping's last read: only the schedule's reader
	// applies these.
	record(t, "unmapped-")
	s := stats(t)
	require.Equal(t, [2]int64{5, 1}, [2]int64{s.Total, s.Filtered}, "the mapping applied the first six markers")
	require.True(t, s.AsOf.IsZero(), "no reader has advanced a watermark: as_of is absent, not guessed")

	t.Run("AppliesWhatTheMappingHasNotAndSettles", func(t *testing.T) {
		before := time.Now()
		res := invoke(t)
		assert.Equal(t, aggregate.ScheduleReader, res.Reader)
		assert.Zero(t, res.Failures, "%+v", res)
		assert.Positive(t, res.CaughtUp, "%+v", res)
		// The six markers written after the mapping read, once; none of
		// the mapping's again, since the checkpoint is past them.
		assert.Equal(t, [3]int64{6, 5, 1}, [3]int64{int64(res.Applied), res.Counted, res.Filtered}, "%+v", res)

		s := stats(t)
		assert.Equal(t, [3]int64{10, 10, 2}, [3]int64{s.Total, s.LastHour, s.Filtered}, "every counted impression exactly once")
		assert.True(t, s.AsOf.After(before), "as_of %v passed the moment before the invocation, %v", s.AsOf, before)
		assert.Equal(t, []string{"READER#" + aggregate.ScheduleReader}, readers(t))
	})

	t.Run("NextInvocationAdvancesTheSameReader", func(t *testing.T) {
		record(t, "later-")
		res := invoke(t)
		assert.Zero(t, res.Failures, "%+v", res)
		assert.Equal(t, [3]int64{6, 5, 1}, [3]int64{int64(res.Applied), res.Counted, res.Filtered}, "%+v", res)
		s := stats(t)
		assert.Equal(t, [2]int64{15, 3}, [2]int64{s.Total, s.Filtered})
		// One READER item however many minutes the schedule runs.
		assert.Equal(t, []string{"READER#" + aggregate.ScheduleReader}, readers(t))
	})

	t.Run("LogsItsStartEndAndPages", func(t *testing.T) {
		var starts, ends, pages int
		require.Eventually(t, func() bool {
			starts, ends, pages = 0, 0, 0
			for _, raw := range strings.Split(f.output.String(), "\n") {
				var doc map[string]any
				if json.Unmarshal([]byte(raw), &doc) != nil {
					continue
				}
				switch {
				case doc["msg"] == "scheduled reader start":
					starts++
				case doc["msg"] == "scheduled reader end":
					ends++
				case doc["msg"] == "batch" && doc["reader"] == aggregate.ScheduleReader:
					pages++
					_, ok := doc["_aws"]
					assert.True(t, ok, "a page's line is an EMF document, as a batch's is")
				}
			}
			return ends == 2
		}, 10*time.Second, 10*time.Millisecond, "%s", f.output.String())
		assert.Equal(t, 2, starts)
		assert.GreaterOrEqual(t, pages, 2, "a batch line for each page applied")
	})
}

// startSchedule does for the aggregate function what the template's
// ReadStream schedule does on AWS, until the test ends: it invokes the
// function, under an emulator of its own as Lambda gives a scheduled
// invocation an execution environment of its own beside the mapping's,
// with the schedule's event, one invocation after another. Each reads the
// stream for the function's timeout less aggregate.ScheduleMargin; the
// minute's gap on AWS is left out, so that as_of never stands still.
func startSchedule(t *testing.T, env []string) {
	t.Helper()
	// A short timeout, so that the invocation in flight when the test
	// ends does not hold its cleanup up for long.
	f := startFunction(t, serve.Aggregate, append(env, "AWS_LAMBDA_FUNCTION_TIMEOUT=4")...)
	sample, err := os.ReadFile("../events/aggregate-schedule.json")
	require.NoError(t, err)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, body, err := f.post(sample); err != nil || code != 200 {
				// Reported, not fatal: a test that needs as_of fails on
				// its own, and says why here.
				t.Logf("scheduled invocation: %d %s %v", code, body, err)
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}()
	// Registered after startFunction's, so it runs first: the invocation
	// in flight ends before the emulator is stopped.
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}
