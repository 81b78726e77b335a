package aggregate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// scriptedReader is a Reader that reports a script of what a stream reader
// does to its observer, then waits for its context to end, noting the
// spec it was built with and the deadline it was given.
type scriptedReader struct {
	script func(obs streampoll.Observer)
	err    error

	spec     aggregate.ReaderSpec
	deadline time.Time
	built    int
}

func (r *scriptedReader) newReader(spec aggregate.ReaderSpec) (aggregate.Reader, error) {
	r.spec = spec
	r.built++
	return r, nil
}

func (r *scriptedReader) Run(ctx context.Context) error {
	r.deadline, _ = ctx.Deadline()
	if r.script != nil {
		r.script(r.spec.Observer)
	}
	<-ctx.Done()
	return r.err
}

// scheduledEvent is the sample of the schedule's event, as written.
func scheduledEvent(t *testing.T) json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile("../../../events/aggregate-schedule.json")
	require.NoError(t, err)
	return raw
}

// shortDeadline is a context that ends a little after ScheduleMargin, so
// that the reader runs for a moment.
func shortDeadline(t *testing.T) (context.Context, time.Time) {
	t.Helper()
	deadline := time.Now().Add(aggregate.ScheduleMargin + 50*time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx, deadline
}

func TestInvokeDispatchesByShape(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		event string
		// scheduled: the reader ran; stream: the applier was called.
		scheduled, stream bool
		err               error
	}{
		// The schedule's event, as `sam local generate-event cloudwatch
		// scheduled-event` writes it.
		{name: "ScheduledEvent", event: "sample", scheduled: true},
		// A stream batch, as the mapping sends it.
		{name: "StreamBatch", event: `{"Records":[{"eventName":"INSERT","dynamodb":{"SequenceNumber":"101"}}],"shardId":"shard-1","state":{}}`, stream: true},
		// The end of a tumbling window: a stream event without records.
		{name: "WindowEnd", event: `{"Records":[],"shardId":"shard-1","isFinalInvokeForWindow":true}`},
		// Another rule's event wired to the function by mistake: refused,
		// not taken for a stream batch with no records.
		{name: "OtherEventBridgeEvent", event: `{"source":"aws.s3","detail-type":"Object Created","detail":{}}`, err: aggregate.ErrUnknownEvent},
		// A custom event that only claims the detail-type.
		{name: "ScheduledEventFromAnotherSource", event: `{"source":"my.app","detail-type":"Scheduled Event"}`, err: aggregate.ErrUnknownEvent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reader, applier := &scriptedReader{}, &fakeApplier{}
			h, err := aggregate.NewHandler(applier, aggregate.WithScheduledReader(reader.newReader))
			require.NoError(t, err)
			raw := json.RawMessage(tc.event)
			if tc.event == "sample" {
				raw = scheduledEvent(t)
			}
			ctx, _ := shortDeadline(t)
			out, err := h.Invoke(ctx, raw)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.scheduled, reader.built == 1, "the scheduled reader ran")
			assert.Equal(t, tc.stream, len(applier.calls) == 1, "the batch was applied")
			if tc.scheduled {
				assert.IsType(t, aggregate.ScheduleResult{}, out)
			}
		})
	}
}

func TestInvokeRefusesAScheduleWithoutAReader(t *testing.T) {
	t.Parallel()
	h, err := aggregate.NewHandler(&fakeApplier{})
	require.NoError(t, err)
	ctx, _ := shortDeadline(t)
	_, err = h.Invoke(ctx, scheduledEvent(t))
	require.ErrorContains(t, err, "WithScheduledReader")
}

func TestRunScheduled(t *testing.T) {
	t.Parallel()
	page := dynamostore.Applied{Records: 5, Skipped: 2, Counted: 2, Filtered: 1, Transactions: 1, Through: "105",
		Malformed: []dynamostore.Malformed{{Seq: "104", Err: dynamostore.ErrMalformedItem}}}

	t.Run("StopsTheMarginBeforeTheDeadline", func(t *testing.T) {
		t.Parallel()
		reader := &scriptedReader{}
		h, err := aggregate.NewHandler(&fakeApplier{}, aggregate.WithScheduledReader(reader.newReader))
		require.NoError(t, err)
		ctx, deadline := shortDeadline(t)
		_, err = h.RunScheduled(ctx)
		require.NoError(t, err)
		assert.Equal(t, deadline.Add(-aggregate.ScheduleMargin), reader.deadline, "the reader stops ScheduleMargin before Lambda's deadline")
		// One reader name for every invocation, so that READER items do
		// not pile up; a round a second.
		assert.Equal(t, aggregate.ScheduleReader, reader.spec.ID)
		assert.Equal(t, time.Second, reader.spec.Interval)
	})

	t.Run("ReportsEachPageAndTheSum", func(t *testing.T) {
		t.Parallel()
		reader := &scriptedReader{script: func(obs streampoll.Observer) {
			obs.Applied("shard-1", page, 1500*time.Millisecond)
			obs.Failed(streampoll.StageRead, errors.New("throttled"))
			obs.CaughtUp()
			obs.Applied("shard-2", page, time.Second)
			obs.CaughtUp()
		}}
		got := &batches{}
		var log bytes.Buffer
		h, err := aggregate.NewHandler(&fakeApplier{}, aggregate.WithScheduledReader(reader.newReader),
			aggregate.WithMetrics(got), aggregate.WithLogger(slog.New(slog.NewJSONHandler(&log, nil))))
		require.NoError(t, err)
		ctx, _ := shortDeadline(t)
		res, err := h.RunScheduled(ctx)
		require.NoError(t, err, "a failed round that a later one made good is no failure of the invocation")
		assert.Equal(t, aggregate.ScheduleResult{Reader: aggregate.ScheduleReader, Pages: 2, Applied: 6, Skipped: 4,
			Counted: 4, Filtered: 2, CaughtUp: 2, Failures: 1}, res)

		// A batch line per page, as the mapping's batches have, naming
		// the reader, and one for the failure, which counts in
		// aggregator_failures.
		require.Len(t, got.got, 3)
		first := got.got[0]
		assert.Equal(t, aggregate.ScheduleReader, first.Reader)
		assert.Equal(t, "shard-1", first.Shard)
		assert.Equal(t, [4]int{5, 3, 2, 1}, [4]int{first.Records, first.Applied, first.Skipped, first.Malformed})
		assert.True(t, first.HasLag)
		assert.Equal(t, 1500*time.Millisecond, first.Lag)
		assert.Equal(t, "105", first.Through)
		assert.ErrorContains(t, got.got[1].Err, "throttled")
		assert.Equal(t, aggregate.ScheduleReader, got.got[1].Reader)

		lines := log.String()
		assert.Contains(t, lines, `"msg":"scheduled reader start"`)
		assert.Contains(t, lines, `"msg":"scheduled reader end"`)
		assert.Contains(t, lines, `"caught_up_rounds":2`)
		assert.Contains(t, lines, `"msg":"malformed marker passed over, not counted"`)
	})

	t.Run("NeverCaughtUpIsAnError", func(t *testing.T) {
		t.Parallel()
		// Every round failed: as_of stood still for the whole
		// invocation, and the function's Errors metric must say so.
		reader := &scriptedReader{script: func(obs streampoll.Observer) {
			obs.Failed(streampoll.StageDiscover, errors.New("no stream"))
		}}
		h, err := aggregate.NewHandler(&fakeApplier{}, aggregate.WithScheduledReader(reader.newReader))
		require.NoError(t, err)
		ctx, _ := shortDeadline(t)
		res, err := h.RunScheduled(ctx)
		require.ErrorContains(t, err, "as_of did not advance")
		assert.Equal(t, 1, res.Failures)
	})

	t.Run("NoDeadlineIsRefused", func(t *testing.T) {
		t.Parallel()
		// Lambda always sets one; without it the reader would never stop.
		reader := &scriptedReader{}
		h, err := aggregate.NewHandler(&fakeApplier{}, aggregate.WithScheduledReader(reader.newReader))
		require.NoError(t, err)
		_, err = h.RunScheduled(context.Background())
		require.ErrorContains(t, err, "deadline")
		assert.Zero(t, reader.built, "no reader is built")
	})
}
