// Package serve starts the API as a Lambda function. Every function under
// functions/ starts the same way, so the wiring lives here once and a new
// setting or store reaches all of them together.
package serve

import (
	"context"
	"log/slog"

	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/stores"
)

// Run reads the settings through getenv once, at init, opens the store and
// serves the API handler on Lambda until Lambda stops the instance. It
// returns only an error: a bad setting or a store that cannot be opened,
// which the caller reports before exiting.
func Run(ctx context.Context, getenv func(string) string, logger *slog.Logger) error {
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
