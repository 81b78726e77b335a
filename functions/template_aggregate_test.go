package functions_test

import (
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/functions/internal/serve"
	"github.com/adcount/impression-counter/shared/dynamostore"
)

// parseResources reads template.yaml's resources with every intrinsic
// function left as written, as generic JSON values, for properties that
// rawTemplate does not name.
var parseResources = sync.OnceValues(func() (map[string]map[string]any, error) {
	b, err := os.ReadFile("../template.yaml")
	if err != nil {
		return nil, err
	}
	goformationMu.Lock()
	j, err := intrinsics.ProcessYAML(b, &intrinsics.ProcessorOptions{NoProcess: true})
	goformationMu.Unlock()
	if err != nil {
		return nil, err
	}
	var doc struct{ Resources map[string]map[string]any }
	if err := json.Unmarshal(j, &doc); err != nil {
		return nil, err
	}
	return doc.Resources, nil
})

// resourceProperties returns the properties of the template's resource
// name, as written.
func resourceProperties(t *testing.T, name string) map[string]any {
	t.Helper()
	resources, err := parseResources()
	require.NoError(t, err)
	r, ok := resources[name]
	require.True(t, ok, "template.yaml has no %s", name)
	props, _ := r["Properties"].(map[string]any)
	return props
}

// getAtt returns the logical ID and attribute that v, a GetAtt in its short
// (!GetAtt Table.Arn) or long form, names; empty if v is anything else.
func getAtt(v any) (id, attr string) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", ""
	}
	switch att := m["Fn::GetAtt"].(type) {
	case string:
		for i := len(att) - 1; i >= 0; i-- {
			if att[i] == '.' {
				return att[:i], att[i+1:]
			}
		}
	case []any:
		if len(att) == 2 {
			id, _ := att[0].(string)
			attr, _ := att[1].(string)
			return id, attr
		}
	}
	return "", ""
}

// TestTemplateStreamAggregation checks what the template deploys for the
// stream aggregator (docs/lambda.md says why each setting is what it is):
// the table's stream with both images, one event source mapping from it to
// the aggregate function, and an on-failure queue.
func TestTemplateStreamAggregation(t *testing.T) {
	t.Parallel()
	tmpl := openTemplate(t)
	table := tableName(t, tmpl)
	fn := logicalID(serve.Aggregate)

	spec := tmpl.GetAllDynamoDBTableResources()[table].StreamSpecification
	if assert.NotNil(t, spec, "the table has a stream") {
		// A marker whose owner changed is a counted impression: the old
		// image is needed to tell. The store creates its tables so too.
		assert.Equal(t, "NEW_AND_OLD_IMAGES", spec.StreamViewType)
		assert.Equal(t, string(dynamostore.Schema().StreamViewType), spec.StreamViewType)
	}

	mappings := tmpl.GetAllLambdaEventSourceMappingResources()
	require.Len(t, mappings, 1, "one event source mapping: the stream's to the aggregator")
	var name string
	for n := range mappings {
		name = n
	}
	m := mappings[name]
	props := resourceProperties(t, name)
	assert.Equal(t, map[string]any{"Ref": fn}, props["FunctionName"], "the mapping invokes the aggregate function")
	id, attr := getAtt(props["EventSourceArn"])
	assert.Equal(t, [2]string{table, "StreamArn"}, [2]string{id, attr}, "the mapping reads the table's stream")

	intOf := func(p *int) int {
		t.Helper()
		require.NotNil(t, p)
		return *p
	}
	boolOf := func(p *bool) bool {
		t.Helper()
		require.NotNil(t, p)
		return *p
	}
	require.NotNil(t, m.StartingPosition)
	cases := []struct {
		name      string
		got, want any
	}{
		// No marker written before the mapping first ran is missed.
		{"StartingPosition", *m.StartingPosition, "TRIM_HORIZON"},
		// Stats within 2 s: gather for 1 s at most, in batches large
		// enough to amortise the counter writes.
		{"BatchSize", intOf(m.BatchSize), 1000},
		{"MaximumBatchingWindowInSeconds", intOf(m.MaximumBatchingWindowInSeconds), 1},
		// Each event carries its shard only with a tumbling window.
		{"TumblingWindowInSeconds", intOf(m.TumblingWindowInSeconds), 900},
		// One batch of a shard at a time, in order.
		{"ParallelizationFactor", intOf(m.ParallelizationFactor), 1},
		// One bad record cannot wedge a shard.
		{"BisectBatchOnFunctionError", boolOf(m.BisectBatchOnFunctionError), true},
		{"FunctionResponseTypes", m.FunctionResponseTypes, []string{"ReportBatchItemFailures"}},
		{"MaximumRetryAttempts", intOf(m.MaximumRetryAttempts), 1000},
		// Discarded, and announced, before the stream's 24 h retention
		// would trim them unannounced.
		{"MaximumRecordAgeInSeconds", intOf(m.MaximumRecordAgeInSeconds), 82800},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, tc.got, tc.name)
	}
	assert.Less(t, intOf(m.MaximumRecordAgeInSeconds), 24*60*60, "within the stream's retention")
	assert.Nil(t, m.Enabled, "enabled, the default")
	// Only dedup markers' records invoke the function: the others count
	// nothing, and the aggregator's own writes come back through the
	// stream.
	if assert.NotNil(t, m.FilterCriteria) && assert.Len(t, m.FilterCriteria.Filters, 1) {
		var pattern any
		require.NoError(t, json.Unmarshal([]byte(*m.FilterCriteria.Filters[0].Pattern), &pattern))
		assert.Equal(t, map[string]any{"dynamodb": map[string]any{"Keys": map[string]any{
			dynamostore.PartitionKey: map[string]any{"S": []any{map[string]any{"prefix": dynamostore.MarkerKeyPrefix}}}}}}, pattern)
	}

	// Nothing is dropped silently: a discarded batch is described to a
	// queue of the stack.
	dest, _ := props["DestinationConfig"].(map[string]any)
	onFailure, _ := dest["OnFailure"].(map[string]any)
	queue, attr := getAtt(onFailure["Destination"])
	require.Equal(t, "Arn", attr, "the on-failure destination is a resource of the stack")
	q, ok := tmpl.GetAllSQSQueueResources()[queue]
	require.True(t, ok, "the on-failure destination %s is an SQS queue of the template", queue)
	require.NotNil(t, q.MessageRetentionPeriod)
	assert.Equal(t, 14*24*60*60, *q.MessageRetentionPeriod, "kept as long as SQS allows")
	assert.Contains(t, tmpl.Outputs, "AggregateFailureQueueUrl", "the queue to watch is named")

	// The stream is no SAM event of the function, which would attach a
	// managed policy that reads every stream in the account; its own
	// policy reads the table's
	// (TestTemplatePoliciesAllowExactlyWhatEachFunctionCalls).
	f := tmpl.GetAllServerlessFunctionResources()[fn]
	require.NotNil(t, f, "template.yaml has %s", fn)
	assert.Nil(t, f.Role, "%s has the role SAM makes from its inline policy", fn)
}

// TestTemplateScheduledReader checks the schedule that keeps a reader of
// the whole stream live on Lambda (docs/lambda.md): the mapping gives the
// aggregate function one shard's batch at a time, so only a reader that
// reads every shard can advance the watermark that the stats' as_of
// reports.
func TestTemplateScheduledReader(t *testing.T) {
	t.Parallel()
	tmpl, raw := openTemplate(t), openRawTemplate(t)
	fn := logicalID(serve.Aggregate)
	f := tmpl.GetAllServerlessFunctionResources()[fn]
	require.NotNil(t, f, "template.yaml has %s", fn)

	// One SAM event, a schedule: SAM makes the EventBridge rule, its
	// target, the function, and the permission for that rule alone to
	// invoke it. No other function is scheduled.
	require.Len(t, f.Events, 1, "%s's one SAM event is its schedule", fn)
	for name, ev := range f.Events {
		assert.Equal(t, "Schedule", ev.Type, "%s.%s", fn, name)
		events, _ := resourceProperties(t, fn)["Events"].(map[string]any)
		props, _ := events[name].(map[string]any)["Properties"].(map[string]any)
		// Each invocation reads for all but 2 s of its minute, so one a
		// minute keeps a reader live nearly always.
		assert.Equal(t, "rate(1 minute)", props["Schedule"], "%s.%s", fn, name)
		assert.NotEqual(t, false, props["Enabled"], "%s.%s is enabled", fn, name)
		assert.Nil(t, props["Input"], "%s.%s sends the scheduled event itself, which the handler tells from a batch by its shape", fn, name)
	}
	for name, other := range tmpl.GetAllServerlessFunctionResources() {
		if name == fn {
			continue
		}
		for eventName, ev := range other.Events {
			assert.NotEqual(t, "Schedule", ev.Type, "%s.%s", name, eventName)
		}
	}

	// A scheduled invocation reads until ScheduleMargin before the
	// timeout, so the next minute's does not overlap it: with the mapping,
	// two readers a shard, as many as DynamoDB Streams serves without
	// throttling.
	timeout := raw.Resources[fn].Properties.Timeout
	require.NotNil(t, timeout, "%s sets its own timeout", fn)
	assert.Equal(t, 60, *timeout, "%s's timeout is the schedule's minute", fn)
	assert.Less(t, time.Duration(*timeout)*time.Second-aggregate.ScheduleMargin, time.Minute, "a scheduled invocation ends before the next begins")

	// Asynchronous: a failed or late scheduled invocation is not retried,
	// since the next one comes within the minute.
	if cfg := f.EventInvokeConfig; assert.NotNil(t, cfg, "%s's asynchronous invocations are configured", fn) {
		require.NotNil(t, cfg.MaximumRetryAttempts)
		assert.Equal(t, 0, *cfg.MaximumRetryAttempts)
		require.NotNil(t, cfg.MaximumEventAgeInSeconds)
		assert.Equal(t, 60, *cfg.MaximumEventAgeInSeconds)
	}
}
