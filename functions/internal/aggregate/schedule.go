package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/adcount/impression-counter/shared/dynamostore"
	"github.com/adcount/impression-counter/shared/emf"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// The scheduled reader. The event source mapping gives the function one
// shard's batch at a time, so no invocation of it can tell that every
// shard is read to its end, which is what the stats' as_of needs (a reader
// watermark, dynamostore.Aggregator.Advance). An EventBridge schedule
// therefore also invokes the function once a minute, and each such
// invocation reads the whole stream through the Streams API, with the same
// aggregator, for as long as it may.
const (
	// ScheduleReader is the name the scheduled reader records its
	// watermark under. It is fixed, so that every scheduled invocation
	// advances the one READER item rather than leave one behind a minute.
	ScheduleReader = "aggregate-schedule"
	// ScheduleInterval is the pause between the scheduled reader's rounds:
	// it advances the watermark about once a second.
	ScheduleInterval = time.Second
	// ScheduleMargin is how long before the invocation's deadline the
	// scheduled reader stops, so that a round in flight can finish and the
	// invocation returns before Lambda times it out.
	ScheduleMargin = 2 * time.Second
)

// Reader reads the table's stream, round after round, until ctx ends, and
// then returns nil; it reports what it does to the Observer it was built
// with. *streampoll.Poller implements it.
type Reader interface {
	Run(ctx context.Context) error
}

var _ Reader = (*streampoll.Poller)(nil)

// ReaderSpec is what a scheduled invocation asks of the reader it builds.
type ReaderSpec struct {
	// ID is the name to record the watermark under: ScheduleReader.
	ID string
	// Interval is the pause between rounds: ScheduleInterval.
	Interval time.Duration
	// Observer receives the reader's pages, failures and caught-up
	// rounds, for the invocation's metrics and its answer.
	Observer streampoll.Observer
}

// NewReader builds the reader of one scheduled invocation. It must read
// through the same aggregator as the stream batches, keeping only the
// records the event source mapping's filter keeps.
type NewReader func(ReaderSpec) (Reader, error)

// WithScheduledReader lets the handler answer the schedule's events (see
// Invoke) with a reader that newReader builds for each. Without it a
// scheduled event is refused.
func WithScheduledReader(newReader NewReader) Option {
	return func(h *Handler) { h.newReader = newReader }
}

// ScheduleResult is what one scheduled invocation did: its answer, and the
// members of its last log line.
type ScheduleResult struct {
	// Reader is the name the watermark was recorded under.
	Reader string `json:"reader"`
	// Pages is how many pages of records the reader applied; Applied and
	// Skipped the records in them applied for the first time and those
	// already applied, by the mapping as a rule.
	Pages   int `json:"pages"`
	Applied int `json:"records_applied"`
	Skipped int `json:"redeliveries_skipped"`
	// Counted and Filtered are the impressions folded into the counts.
	Counted  int64 `json:"counted"`
	Filtered int64 `json:"filtered"`
	// CaughtUp is how many rounds read every shard to its end: each
	// advanced the watermark, or found it advanced less than a second ago.
	CaughtUp int `json:"caught_up_rounds"`
	// Failures is how many steps of a round failed; each is retried on
	// the next round.
	Failures int `json:"failures"`
}

// errNoDeadline is RunScheduled's error for a context without a deadline,
// which Lambda always sets: the reader would never stop.
var errNoDeadline = errors.New("aggregate: a scheduled invocation needs a deadline to stop its reader before")

// errNoReader is RunScheduled's error when the handler was built without
// WithScheduledReader.
var errNoReader = errors.New("aggregate: a scheduled event, but the handler has no stream reader (WithScheduledReader)")

// RunScheduled answers one of the schedule's invocations: it builds a
// reader and runs it until ScheduleMargin before ctx's deadline. The
// reader applies whatever the event source mapping has not applied yet,
// exactly once, since the aggregator's checkpoint makes concurrent
// readers of a shard safe, and after each round that read every shard to
// its end it advances the ScheduleReader watermark that the stats'
// as_of is. Each page it applies is written as a batch's line and EMF
// document (BatchSink), naming the reader, and so is each failure; a
// line at the start and one at the end say what the invocation did.
//
// It returns an error if the reader cannot be built or fails, if ctx has
// no deadline, and if every round failed somewhere and none read every
// shard to its end, so that the function's Errors metric shows an as_of
// that has stopped advancing.
func (h *Handler) RunScheduled(ctx context.Context) (ScheduleResult, error) {
	res := ScheduleResult{Reader: ScheduleReader}
	if h.newReader == nil {
		return res, errNoReader
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return res, errNoDeadline
	}
	obs := &scheduleObserver{ctx: ctx, h: h, res: &res}
	r, err := h.newReader(ReaderSpec{ID: ScheduleReader, Interval: ScheduleInterval, Observer: obs})
	if err != nil {
		return res, fmt.Errorf("aggregate: scheduled reader: %w", err)
	}
	until := deadline.Add(-ScheduleMargin)
	runCtx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	start := h.now()
	h.logger.InfoContext(ctx, "scheduled reader start", "reader", ScheduleReader, "until", until.UTC())
	err = r.Run(runCtx)
	if err == nil && res.CaughtUp == 0 && res.Failures > 0 {
		err = errors.New("aggregate: scheduled reader: every round failed and none read every shard to its end, so as_of did not advance")
	}
	level := slog.LevelInfo
	switch {
	case err != nil:
		level = slog.LevelError
	case res.Failures > 0:
		level = slog.LevelWarn
	}
	attrs := []any{"reader", res.Reader, "duration_ms", h.now().Sub(start).Milliseconds(),
		"pages", res.Pages, "records_applied", res.Applied, "redeliveries_skipped", res.Skipped,
		"counted", res.Counted, "filtered", res.Filtered, "caught_up_rounds", res.CaughtUp, "failures", res.Failures}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	h.logger.Log(ctx, level, "scheduled reader end", attrs...)
	if err != nil {
		return res, fmt.Errorf("aggregate: scheduled reader: %w", err)
	}
	return res, nil
}

// scheduleObserver turns what the scheduled reader does into the
// invocation's batch lines and its result. The reader calls it from the
// goroutine that runs RunScheduled, one call at a time.
type scheduleObserver struct {
	ctx context.Context
	h   *Handler
	res *ScheduleResult
}

var _ streampoll.Observer = (*scheduleObserver)(nil)

// Applied writes the page's line, as the mapping's batches have, and logs
// each malformed marker the aggregator passed over.
func (o *scheduleObserver) Applied(shardID string, a dynamostore.Applied, lag time.Duration) {
	o.res.Pages++
	o.res.Applied += a.Records - a.Skipped
	o.res.Skipped += a.Skipped
	o.res.Counted += a.Counted
	o.res.Filtered += a.Filtered
	for _, m := range a.Malformed {
		o.h.logger.ErrorContext(o.ctx, "malformed marker passed over, not counted", "reader", ScheduleReader, "shard", shardID, "seq", m.Seq, "err", m.Err)
	}
	o.h.metrics.ObserveBatch(o.ctx, emf.Batch{
		Reader: ScheduleReader, Shard: shardID, Records: a.Records,
		Applied: a.Records - a.Skipped, Skipped: a.Skipped, Malformed: len(a.Malformed),
		Counted: a.Counted, Filtered: a.Filtered, Transactions: a.Transactions,
		Lag: lag, HasLag: true, Through: a.Through,
	})
}

// Failed writes a failure's line, which counts in aggregator_failures as a
// failed batch of the mapping does.
func (o *scheduleObserver) Failed(stage streampoll.Stage, err error) {
	o.res.Failures++
	o.h.metrics.ObserveBatch(o.ctx, emf.Batch{Reader: ScheduleReader, Err: fmt.Errorf("aggregate: scheduled reader, %s: %w", stage, err)})
}

// CaughtUp counts a round that read every shard to its end.
func (o *scheduleObserver) CaughtUp() { o.res.CaughtUp++ }
