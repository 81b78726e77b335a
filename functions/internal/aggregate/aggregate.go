// Package aggregate is the aggregate function's Lambda handler: it takes a
// batch of the table's stream records, as the event source mapping delivers
// them, and folds it into the counts through dynamostore.Aggregator, which
// applies each record exactly once however often it is delivered. Once a
// minute an EventBridge schedule invokes it too: it then reads the whole
// stream itself, through the same aggregator, and advances the watermark
// that the stats' as_of reports (RunScheduled). Invoke tells the two
// events apart.
//
// The handler answers with a partial batch response. On a failure it names
// the first record that is not applied, so that Lambda delivers the batch
// again from there and no record after it is lost; with
// BisectBatchOnFunctionError a record that keeps failing is isolated and,
// after the mapping's retries, sent to its on-failure destination instead
// of holding its shard up for ever. A malformed marker is not a failure:
// the aggregator passes over it, and the handler logs and counts it.
// docs/lambda.md explains the mapping.
package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/emf"
)

// DefaultRetryPause is how long Handle waits before it answers that a
// batch failed because DynamoDB was unavailable, unless WithRetryPause says
// otherwise. Lambda retries a failed batch at once, and the mapping allows a
// bounded number of retries before it discards the batch, which is then
// never counted; pausing makes those retries outlast a DynamoDB outage of
// hours instead of minutes. The shard waits either way, so the pause costs
// only function time, and one throttled call delays its shard's counts by
// a few seconds at most.
const DefaultRetryPause = 5 * time.Second

// Applier applies consecutive records of one stream shard to the counts.
// *dynamostore.Aggregator implements it; see its Apply for the contract.
type Applier interface {
	Apply(ctx context.Context, shardID string, recs []dynamostore.StreamRecord) (dynamostore.Applied, error)
}

var _ Applier = (*dynamostore.Aggregator)(nil)

// BatchSink receives one record per invocation that carried records, and
// one per page or failure of a scheduled invocation's reader.
// *emf.Sink implements it.
type BatchSink interface {
	ObserveBatch(ctx context.Context, b emf.Batch)
}

var _ BatchSink = (*emf.Sink)(nil)

// ErrNoShard is the error of a batch whose event names no shard. Only an
// event source mapping with tumbling windows puts the shard id in the
// event, and the aggregator's exactly-once checkpoint is kept per shard,
// so such a batch is refused, never applied under a made-up shard.
var ErrNoShard = errors.New("aggregate: the event names no shardId: set TumblingWindowInSeconds on the event source mapping, which makes Lambda put the shard in each event; the records were not applied")

// Handler is the aggregate function's Lambda handler. It is safe for
// concurrent use, although Lambda gives an instance one event at a time.
type Handler struct {
	agg     Applier
	metrics BatchSink
	logger  *slog.Logger
	now     func() time.Time
	pause   time.Duration
	sleep   func(context.Context, time.Duration)
	// newReader builds a scheduled invocation's stream reader; nil
	// refuses scheduled events.
	newReader NewReader
}

// Option configures a Handler.
type Option func(*Handler)

// WithMetrics sets where each batch's record goes: its log line and
// metrics. The default drops them.
func WithMetrics(s BatchSink) Option { return func(h *Handler) { h.metrics = s } }

// WithLogger sets the logger of the lines that are not a batch's record:
// a malformed marker that the aggregator passed over, at ERROR, the end
// of a tumbling window, and a scheduled invocation's start and end. The
// default discards them.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.logger = l } }

// WithClock sets the clock the aggregator's lag is measured with; the
// default is time.Now.
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithRetryPause sets how long Handle waits before it answers a failure
// that DynamoDB's unavailability caused (DefaultRetryPause), and the
// function that waits, which must return early when ctx is done; nil
// waits on a timer.
func WithRetryPause(d time.Duration, sleep func(ctx context.Context, d time.Duration)) Option {
	return func(h *Handler) {
		h.pause = d
		if sleep != nil {
			h.sleep = sleep
		}
	}
}

// NewHandler returns a handler that applies batches through agg.
func NewHandler(agg Applier, opts ...Option) (*Handler, error) {
	if agg == nil {
		return nil, errors.New("aggregate: an aggregator is required")
	}
	h := &Handler{agg: agg, metrics: discard{}, logger: slog.New(slog.DiscardHandler), now: time.Now,
		pause: DefaultRetryPause, sleep: sleepCtx}
	for _, opt := range opts {
		opt(h)
	}
	if h.pause < 0 {
		return nil, errors.New("aggregate: the retry pause must not be negative")
	}
	return h, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// retryPause waits before a failure caused by DynamoDB's unavailability is
// answered, leaving a second of the invocation's time to answer in.
func (h *Handler) retryPause(ctx context.Context, err error) {
	if h.pause == 0 || !errors.Is(err, adcount.ErrUnavailable) {
		return
	}
	d := h.pause
	if deadline, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(deadline)-time.Second)
	}
	if d > 0 {
		h.sleep(ctx, d)
	}
}

type discard struct{}

func (discard) ObserveBatch(context.Context, emf.Batch) {}

// Handle applies the event's records and answers with the records Lambda
// must deliver again: none if all are applied, else the first one that is
// not. It returns an error, which makes Lambda retry the whole batch, only
// when that record has no sequence number to name.
//
// The mapping's tumbling window carries a state between invocations;
// Handle keeps none, and answers every invocation with an empty one,
// without which Lambda would count the invocation as failed. The final
// invocation of a window may carry no records; it is answered at once.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBTimeWindowEvent) (events.DynamoDBTimeWindowEventResponse, error) {
	resp := events.DynamoDBTimeWindowEventResponse{
		TimeWindowEventResponseProperties: events.TimeWindowEventResponseProperties{State: map[string]string{}},
		BatchItemFailures:                 []events.DynamoDBBatchItemFailure{},
	}
	if len(ev.Records) == 0 {
		h.logger.DebugContext(ctx, "window without records", "shard", ev.ShardID,
			"final", ev.IsFinalInvokeForWindow, "terminated_early", ev.IsWindowTerminatedEarly)
		return resp, nil
	}
	b := emf.Batch{Shard: ev.ShardID, Records: len(ev.Records)}
	if ev.ShardID == "" {
		b.Err = ErrNoShard
		return h.fail(ctx, resp, b, ev.Records[0])
	}

	// Convert up to the first record that cannot be; the records before
	// it are applied, and Lambda delivers the rest again from it.
	recs := make([]dynamostore.StreamRecord, 0, len(ev.Records))
	var convErr error
	for _, r := range ev.Records {
		rec, err := Record(r)
		if err != nil {
			convErr = err
			break
		}
		recs = append(recs, rec)
	}

	var (
		applied dynamostore.Applied
		err     error
	)
	if len(recs) > 0 {
		applied, err = h.agg.Apply(ctx, ev.ShardID, recs)
	}
	b.Skipped, b.Counted, b.Filtered, b.Transactions = applied.Skipped, applied.Counted, applied.Filtered, applied.Transactions
	b.Malformed = len(applied.Malformed)
	for _, m := range applied.Malformed {
		// Passed over for good: the line says which record to look at.
		h.logger.ErrorContext(ctx, "malformed marker passed over, not counted", "shard", ev.ShardID, "seq", m.Seq, "err", m.Err)
	}
	// handled is how many records, from the first, are applied now.
	handled := len(recs)
	if err != nil {
		handled = appliedThrough(recs, applied.Through)
		err = fmt.Errorf("aggregate: apply shard %s: %w", ev.ShardID, err)
	}
	if handled == len(recs) {
		err = errors.Join(err, convErr)
	}
	b.Applied = max(handled-applied.Skipped, 0)
	if handled > 0 {
		b.Through = recs[handled-1].Seq
		newest := recs[0].Created
		for _, r := range recs[1:handled] {
			if r.Created.After(newest) {
				newest = r.Created
			}
		}
		b.Lag, b.HasLag = h.now().Sub(newest), true
	}
	if handled == len(ev.Records) {
		// Every record is applied; an error after the last one changes
		// nothing that a redelivery could.
		if err != nil {
			h.logger.WarnContext(ctx, "every record is applied despite an error", "shard", ev.ShardID, "err", err)
		}
		h.metrics.ObserveBatch(ctx, b)
		return resp, nil
	}
	b.Err = err
	h.retryPause(ctx, err)
	return h.fail(ctx, resp, b, ev.Records[handled])
}

// fail answers that Lambda must deliver the batch again from rec, and
// records why.
func (h *Handler) fail(ctx context.Context, resp events.DynamoDBTimeWindowEventResponse, b emf.Batch, rec events.DynamoDBEventRecord) (events.DynamoDBTimeWindowEventResponse, error) {
	seq := rec.Change.SequenceNumber
	if seq == "" {
		// An empty itemIdentifier would fail the whole batch anyway; an
		// error says so plainly, and Lambda retries and bisects.
		b.Err = errors.Join(b.Err, fmt.Errorf("aggregate: record %q, where the batch must resume, has no sequence number", rec.EventID))
		h.metrics.ObserveBatch(ctx, b)
		return resp, b.Err
	}
	b.Failed = seq
	h.metrics.ObserveBatch(ctx, b)
	resp.BatchItemFailures = append(resp.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: seq})
	return resp, nil
}

// appliedThrough returns how many of recs, from the first, are applied when
// the shard is applied through the sequence number through: those whose
// sequence numbers are not greater. Sequence numbers are decimal digits of
// any length, so they compare as numbers, not as strings; one that is not
// decimal is never counted as applied.
func appliedThrough(recs []dynamostore.StreamRecord, through string) int {
	for i, r := range recs {
		if !seqAtMost(r.Seq, through) {
			return i
		}
	}
	return len(recs)
}

// seqAtMost reports whether a <= b as decimal numbers, false if either is
// not one.
func seqAtMost(a, b string) bool {
	if !decimal(a) || !decimal(b) {
		return false
	}
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a <= b
}

func decimal(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
