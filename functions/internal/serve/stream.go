package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/adcount/impression-counter/functions/internal/aggregate"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/emf"
	"github.com/adcount/impression-counter/shared/stores"
	"github.com/adcount/impression-counter/shared/streampoll"
)

// runStream runs a stream function: it handles the batches of the table's
// stream that its event source mapping delivers, and its schedule's
// events (aggregate.Handler.Invoke), until Lambda stops the instance. It returns only an error from start-up, as Run does.
func runStream(ctx context.Context, fn Function, getenv func(string) string, stdout io.Writer) error {
	h, err := newStreamHandler(ctx, fn, getenv, stdout)
	if err != nil {
		return err
	}
	lambda.StartWithOptions(h.Invoke, lambda.WithContext(ctx))
	return errors.New("serve: the Lambda runtime loop returned")
}

// newStreamHandler is what runStream serves. The aggregate function reads
// the settings every function shares, needs DYNAMODB_TABLE whatever STORE
// says, and writes one JSON line per batch to stdout, which is also the
// batch's EMF document (emf.Sink.ObserveBatch), straight to stdout for the
// reason newHandler gives. Its scheduled invocations read the stream
// through the Streams API, at the endpoint the SDK's settings in getenv
// name (stores.StreamsClient), with the aggregator its batches use.
func newStreamHandler(ctx context.Context, fn Function, getenv func(string) string, stdout io.Writer) (*aggregate.Handler, error) {
	if fn != Aggregate {
		return nil, fmt.Errorf("serve: %q is not a stream function: want one of %q", fn, StreamFunctions())
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	agg, err := stores.OpenAggregator(ctx, cfg, getenv)
	if err != nil {
		return nil, err
	}
	streams, err := stores.StreamsClient(ctx, getenv)
	if err != nil {
		return nil, err
	}
	newReader := func(spec aggregate.ReaderSpec) (aggregate.Reader, error) {
		p, err := stores.NewPoller(agg, streams, cfg.DynamoDBTable,
			streampoll.WithReaderID(spec.ID),
			streampoll.WithInterval(spec.Interval),
			streampoll.WithObserver(spec.Observer),
			streampoll.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	return aggregate.NewHandler(agg,
		aggregate.WithLogger(logger),
		aggregate.WithMetrics(emf.NewSink(logger.Handler(), MetricsNamespace)),
		aggregate.WithScheduledReader(newReader))
}
