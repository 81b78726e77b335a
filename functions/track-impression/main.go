// Command track-impression is the Lambda function behind
// POST /api/v1/impressions. It serves the whole API handler, so a request
// routed to it by mistake still gets the API's own JSON answer; the SAM
// template routes only its route here.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/stores"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(context.Background(), os.Getenv, logger); err != nil {
		logger.Error("track-impression cannot start", "err", err)
		os.Exit(1)
	}
}

// run reads the environment once, at init, and serves invocations until
// Lambda stops the instance. It returns only on a bad configuration.
func run(ctx context.Context, getenv func(string) string, logger *slog.Logger) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	payload, err := lambdaproxy.ParsePayload(getenv(lambdaproxy.PayloadEnv))
	if err != nil {
		return err
	}
	store, err := stores.Open(ctx, cfg)
	if err != nil {
		return err
	}
	return lambdaproxy.Start(httpapi.NewHandler(store, httpapi.WithLogger(logger)), payload)
}
