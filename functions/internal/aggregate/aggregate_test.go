package aggregate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/emf"
)

// fakeApplier applies records until the one whose sequence number is
// failAt, and reports an earlier delivery of those up to skipThrough.
type fakeApplier struct {
	failAt      string
	skipThrough int
	err         error
	// malformed is a record passed over as a malformed marker.
	malformed string

	mu    sync.Mutex
	calls [][]dynamostore.StreamRecord
	shard string
}

var _ aggregate.Applier = (*fakeApplier)(nil)

func (f *fakeApplier) Apply(_ context.Context, shard string, recs []dynamostore.StreamRecord) (dynamostore.Applied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, recs)
	f.shard = shard
	a := dynamostore.Applied{Records: len(recs), Transactions: 1}
	for i, r := range recs {
		if r.Seq == f.failAt {
			return a, fmt.Errorf("%w: record %s", f.err, r.Seq)
		}
		a.Through = r.Seq
		switch {
		case i < f.skipThrough:
			a.Skipped++
		case r.Seq == f.malformed:
			a.Malformed = append(a.Malformed, dynamostore.Malformed{Seq: r.Seq, Err: fmt.Errorf("%w: no minute", dynamostore.ErrMalformedItem)})
		default:
			a.Counted++
		}
	}
	return a, nil
}

// batches records what the handler reports.
type batches struct {
	mu  sync.Mutex
	got []emf.Batch
}

func (b *batches) ObserveBatch(_ context.Context, batch emf.Batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, batch)
}

// marker is a stream record of a counted marker, written at created.
func marker(seq string, created time.Time) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{EventID: "e" + seq, EventName: "INSERT", EventSource: "aws:dynamodb",
		Change: events.DynamoDBStreamRecord{
			SequenceNumber:              seq,
			ApproximateCreationDateTime: events.SecondsEpochTime{Time: created},
			StreamViewType:              "NEW_AND_OLD_IMAGES",
			NewImage: map[string]events.DynamoDBAttributeValue{
				"pk": events.NewStringAttribute("DEDUP#" + seq), "sk": events.NewStringAttribute("MARKER"),
				"c": events.NewStringAttribute("c1"), "a": events.NewStringAttribute("a1"),
				"b": events.NewNumberAttribute("29453760"), "owner": events.NewStringAttribute("o" + seq),
			},
		}}
}

func window(shard string, recs ...events.DynamoDBEventRecord) events.DynamoDBTimeWindowEvent {
	var ev events.DynamoDBTimeWindowEvent
	ev.Records = recs
	ev.ShardID = shard
	ev.Window = events.Window{Start: events.RFC3339EpochTime{Time: time.Unix(0, 0)}, End: events.RFC3339EpochTime{Time: time.Unix(900, 0)}}
	return ev
}

func TestHandle(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	unavailable := adcount.ErrUnavailable
	// A record that cannot be converted: an attribute with no value.
	unconvertible := marker("103", at(time.Second))
	unconvertible.Change.NewImage["c"] = events.DynamoDBAttributeValue{}
	noSeq := marker("", at(time.Second))

	cases := []struct {
		name    string
		event   events.DynamoDBTimeWindowEvent
		applier *fakeApplier
		// failed is the one itemIdentifier of the answer, if any; errs
		// whether the invocation itself fails.
		failed string
		errs   bool
		// applied is the sequence numbers given to Apply, nil if it is
		// never called.
		applied []string
		want    emf.Batch
	}{
		// Everything applies: no failures, and the lag is that of the
		// newest record, not the last.
		{"AllApplied", window("shard-1", marker("101", at(3*time.Second)), marker("102", at(time.Second)), marker("103", at(2*time.Second))),
			&fakeApplier{}, "", false, []string{"101", "102", "103"},
			emf.Batch{Shard: "shard-1", Records: 3, Applied: 3, Counted: 3, Transactions: 1, Lag: time.Second, HasLag: true, Through: "103"}},
		// A whole batch delivered again: applied, all skipped.
		{"Redelivered", window("shard-1", marker("101", at(time.Second)), marker("102", at(time.Second))),
			&fakeApplier{skipThrough: 2}, "", false, []string{"101", "102"},
			emf.Batch{Shard: "shard-1", Records: 2, Skipped: 2, Transactions: 1, Lag: time.Second, HasLag: true, Through: "102"}},
		// A malformed marker is passed over for good, not failed: it is
		// reported, and the batch applies.
		{"MalformedMarkerPassedOver", window("shard-1", marker("101", at(time.Second)), marker("102", at(time.Second)), marker("103", at(time.Second))),
			&fakeApplier{malformed: "102"}, "", false, []string{"101", "102", "103"},
			emf.Batch{Shard: "shard-1", Records: 3, Applied: 3, Malformed: 1, Counted: 2, Transactions: 1, Lag: time.Second, HasLag: true, Through: "103"}},
		// The aggregator stops at a record: Lambda resumes from it, and
		// the records before it count.
		{"ApplyFailsMidBatch", window("shard-1", marker("101", at(time.Second)), marker("102", at(time.Second)), marker("103", at(time.Second))),
			&fakeApplier{failAt: "102", err: dynamostore.ErrMalformedItem}, "102", false, []string{"101", "102", "103"},
			emf.Batch{Shard: "shard-1", Records: 3, Applied: 1, Counted: 1, Transactions: 1, Lag: time.Second, HasLag: true, Through: "101", Failed: "102"}},
		// Nothing applied: Lambda resumes from the first record, and no
		// lag is reported.
		{"ApplyFailsAtFirst", window("shard-1", marker("101", at(time.Second)), marker("102", at(time.Second))),
			&fakeApplier{failAt: "101", err: unavailable}, "101", false, []string{"101", "102"},
			emf.Batch{Shard: "shard-1", Records: 2, Transactions: 1, Failed: "101"}},
		// Sequence numbers compare as numbers: 99 is before 100 although
		// "99" > "100" as strings.
		{"SequenceNumbersGrowInLength", window("shard-1", marker("98", at(time.Second)), marker("99", at(time.Second)), marker("100", at(time.Second))),
			&fakeApplier{failAt: "100", err: unavailable}, "100", false, []string{"98", "99", "100"},
			emf.Batch{Shard: "shard-1", Records: 3, Applied: 2, Counted: 2, Transactions: 1, Lag: time.Second, HasLag: true, Through: "99", Failed: "100"}},
		// A record that cannot be converted fails at its position; the
		// records before it are applied, none after it is.
		{"UnconvertibleRecordMidBatch", window("shard-1", marker("101", at(time.Second)), marker("102", at(time.Second)), unconvertible, marker("104", at(time.Second))),
			&fakeApplier{}, "103", false, []string{"101", "102"},
			emf.Batch{Shard: "shard-1", Records: 4, Applied: 2, Counted: 2, Transactions: 1, Lag: time.Second, HasLag: true, Through: "102", Failed: "103"}},
		// The first record cannot be converted: Apply is never called.
		{"UnconvertibleFirstRecord", window("shard-1", unconvertible, marker("104", at(time.Second))),
			&fakeApplier{}, "103", false, nil,
			emf.Batch{Shard: "shard-1", Records: 2, Failed: "103"}},
		// A record with no sequence number cannot be named in a partial
		// batch response: the invocation fails, and Lambda retries.
		{"NoSequenceNumber", window("shard-1", marker("101", at(time.Second)), noSeq),
			&fakeApplier{}, "", true, []string{"101"},
			emf.Batch{Shard: "shard-1", Records: 2, Applied: 1, Counted: 1, Transactions: 1, Lag: time.Second, HasLag: true, Through: "101"}},
		// No shard id, no tumbling window: refused whole, never applied.
		{"NoShard", window("", marker("101", at(time.Second)), marker("102", at(time.Second))),
			&fakeApplier{}, "101", false, nil,
			emf.Batch{Records: 2, Failed: "101", Err: aggregate.ErrNoShard}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := &batches{}
			var paused []time.Duration
			var logged bytes.Buffer
			h, err := aggregate.NewHandler(tc.applier, aggregate.WithMetrics(got), aggregate.WithClock(func() time.Time { return now }),
				aggregate.WithLogger(slog.New(slog.NewJSONHandler(&logged, nil))),
				aggregate.WithRetryPause(time.Minute, func(_ context.Context, d time.Duration) { paused = append(paused, d) }))
			require.NoError(t, err)
			resp, err := h.Handle(context.Background(), tc.event)
			if tc.errs {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			assert.NotNil(t, resp.State, "a tumbling window needs a state in every answer")
			if tc.failed == "" {
				assert.Empty(t, resp.BatchItemFailures)
			} else {
				assert.Equal(t, []events.DynamoDBBatchItemFailure{{ItemIdentifier: tc.failed}}, resp.BatchItemFailures)
			}
			if tc.applied == nil {
				assert.Empty(t, tc.applier.calls, "Apply is not called")
			} else {
				require.Len(t, tc.applier.calls, 1)
				var seqs []string
				for _, r := range tc.applier.calls[0] {
					seqs = append(seqs, r.Seq)
				}
				assert.Equal(t, tc.applied, seqs)
				assert.Equal(t, tc.event.ShardID, tc.applier.shard)
			}
			require.Len(t, got.got, 1, "one record per invocation")
			b := got.got[0]
			if tc.failed != "" || tc.errs {
				require.Error(t, b.Err, "a failure says why")
				if errors.Is(tc.want.Err, aggregate.ErrNoShard) {
					assert.ErrorIs(t, b.Err, aggregate.ErrNoShard)
					assert.ErrorContains(t, b.Err, "TumblingWindowInSeconds")
				}
			} else {
				assert.NoError(t, b.Err)
			}
			// Only a failure for want of DynamoDB waits before it answers.
			if errors.Is(b.Err, adcount.ErrUnavailable) {
				assert.Equal(t, []time.Duration{time.Minute}, paused)
			} else {
				assert.Empty(t, paused)
			}
			b.Err, tc.want.Err = nil, nil
			assert.Equal(t, tc.want, b)
			// A malformed marker gets an ERROR line that names it.
			if tc.applier.malformed != "" {
				assert.Contains(t, logged.String(), `"level":"ERROR"`)
				assert.Contains(t, logged.String(), `"seq":"`+tc.applier.malformed+`"`)
			} else {
				assert.Empty(t, logged.String())
			}
		})
	}
}

// TestWindowWithoutRecords: the final invocation of a tumbling window may
// carry no records, and an answer without a state would count as failed.
func TestWindowWithoutRecords(t *testing.T) {
	t.Parallel()
	applier, got := &fakeApplier{}, &batches{}
	h, err := aggregate.NewHandler(applier, aggregate.WithMetrics(got))
	require.NoError(t, err)
	ev := window("shard-1")
	ev.IsFinalInvokeForWindow = true
	resp, err := h.Handle(context.Background(), ev)
	require.NoError(t, err)
	b, err := json.Marshal(resp)
	require.NoError(t, err)
	assert.JSONEq(t, `{"state":{},"batchItemFailures":[]}`, string(b))
	assert.Empty(t, applier.calls)
	assert.Empty(t, got.got, "no batch, no metrics")
}

func TestNewHandlerNeedsAnAggregator(t *testing.T) {
	t.Parallel()
	_, err := aggregate.NewHandler(nil)
	assert.ErrorContains(t, err, "aggregator is required")
}

// TestRetryPauseLeavesTimeToAnswer: the pause before a failure caused by
// DynamoDB's unavailability never runs into the invocation's deadline, or
// Lambda would count a timeout, not the partial batch response.
func TestRetryPauseLeavesTimeToAnswer(t *testing.T) {
	t.Parallel()
	var paused []time.Duration
	applier := &fakeApplier{failAt: "102", err: adcount.ErrUnavailable}
	h, err := aggregate.NewHandler(applier, aggregate.WithRetryPause(time.Minute, func(_ context.Context, d time.Duration) { paused = append(paused, d) }))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := h.Handle(ctx, window("shard-1", marker("101", time.Now()), marker("102", time.Now())))
	require.NoError(t, err)
	assert.Equal(t, []events.DynamoDBBatchItemFailure{{ItemIdentifier: "102"}}, resp.BatchItemFailures)
	require.Len(t, paused, 1)
	assert.LessOrEqual(t, paused[0], 2*time.Second, "a second is left to answer in")
	assert.Positive(t, paused[0])

	_, err = aggregate.NewHandler(applier, aggregate.WithRetryPause(-time.Second, nil))
	assert.ErrorContains(t, err, "negative")
}
