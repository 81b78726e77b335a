// Package serve starts the API as a Lambda function. Every function under
// functions/ starts the same way, so the wiring lives here once and a new
// setting or store reaches all of them together.
package serve

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/emf"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/stores"
)

// errNoAdminKeys is returned by Run when ADMIN_API_KEYS holds no key. A
// function sits behind a public API, and every function serves the whole
// handler, admin routes included, so it refuses to start rather than serve
// campaigns and stats to anyone. The local server, which is for
// development, starts open instead and warns.
var errNoAdminKeys = errors.New("serve: ADMIN_API_KEYS holds no key: a Lambda function will not serve the admin routes open; set one or more comma-separated keys")

// MetricsNamespace is the CloudWatch namespace of the functions' metrics.
const MetricsNamespace = "AdCount"

// Run reads the settings through getenv once, at init, opens the store and
// serves the API handler on Lambda until Lambda stops the instance, with
// the admin routes behind the keys of ADMIN_API_KEYS. It logs JSON lines to
// stdout at LOG_LEVEL; each request's line is also a CloudWatch Embedded
// Metric Format document, so the function publishes its metrics with no API
// call, and that line is written at every LOG_LEVEL (see emf.Sink). It returns only an error: a bad setting, no admin key or a store
// that cannot be opened, which the caller reports before exiting.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	payload, err := lambdaproxy.ParsePayload(getenv(lambdaproxy.PayloadEnv))
	if err != nil {
		return err
	}
	if len(cfg.AdminKeys) == 0 {
		return errNoAdminKeys
	}
	store, err := stores.Open(ctx, cfg, getenv, logger)
	if err != nil {
		return err
	}
	// The EMF sink writes each request's one line, log and metrics
	// together, so that the metrics survive any LOG_LEVEL.
	metrics := emf.NewSink(logger.Handler(), MetricsNamespace)
	h := httpapi.NewHandler(store, httpapi.WithRequestLog(metrics), httpapi.WithAdminKeys(cfg.AdminKeys))
	return lambdaproxy.Start(h, payload)
}
