package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
)

// The one kind of EventBridge event the function takes: what an
// EventBridge rule's schedule sends (docs/lambda.md).
const (
	scheduleSource     = "aws.events"
	scheduleDetailType = "Scheduled Event"
)

// ErrUnknownEvent is Invoke's error for an EventBridge event that is not
// the schedule's: a rule wired to the function by mistake. Nothing is
// read or applied.
var ErrUnknownEvent = errors.New("aggregate: an EventBridge event that is not a scheduled event; the function takes its stream's batches and the schedule's events")

// Invoke is the aggregate function's Lambda handler: the one place that
// tells its two kinds of event apart, by their shape.
//
//   - An EventBridge scheduled event ("source": "aws.events",
//     "detail-type": "Scheduled Event") runs the scheduled reader
//     (RunScheduled), and is answered with its ScheduleResult.
//   - Any other EventBridge event (one with a source or a detail-type) is
//     refused with ErrUnknownEvent.
//   - Anything else is the event source mapping's batch of one shard
//     (events.DynamoDBTimeWindowEvent), which Handle applies and answers
//     with a partial batch response.
func (h *Handler) Invoke(ctx context.Context, raw json.RawMessage) (any, error) {
	var shape struct {
		Source     string `json:"source"`
		DetailType string `json:"detail-type"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		return nil, fmt.Errorf("aggregate: the event is not a JSON object: %w", err)
	}
	switch {
	case shape.Source == scheduleSource && shape.DetailType == scheduleDetailType:
		return h.RunScheduled(ctx)
	case shape.Source != "" || shape.DetailType != "":
		return nil, fmt.Errorf("%w: source %q, detail-type %q", ErrUnknownEvent, shape.Source, shape.DetailType)
	}
	var ev events.DynamoDBTimeWindowEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("aggregate: the event is not a stream batch: %w", err)
	}
	return h.Handle(ctx, ev)
}
