// Package serve starts the API as a Lambda function. Every function under
// functions/ starts the same way, so the wiring, the "cannot start" log and
// the exit code live here once, each main is one line, and a new setting or
// store reaches every function together.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"

	"github.com/adcount/impression-counter/shared/botfilter"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/emf"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/lambdaproxy"
	"github.com/adcount/impression-counter/shared/stores"
)

// Function names one Lambda function. Functions are grouped by what they
// are allowed to do, not one per route: each function's IAM role allows
// exactly the store calls of its routes, and its routes share one access
// class, concurrency and blast radius (docs/lambda.md).
type Function string

// The functions template.yaml deploys; each is the directory of its main
// under functions/.
const (
	// Ingest serves the open impression routes that ad tags call: it may
	// only record impressions.
	Ingest Function = "ingest"
	// Admin serves the routes behind ADMIN_API_KEYS, campaigns and stats:
	// it may create and read campaigns and read counts, never count.
	Admin Function = "admin"
	// Aggregate is triggered by the table's stream, not by HTTP: it folds
	// the counted dedup markers into the counter items. It serves no
	// route.
	Aggregate Function = "aggregate"
)

// Functions lists every Function that serves HTTP routes, in the order the
// template declares them. Every route of the API is served by exactly one
// of them.
func Functions() []Function { return []Function{Ingest, Admin} }

// StreamFunctions lists the functions that the table's stream triggers
// through an event source mapping. They serve no route: Run starts their
// stream handler, and Access is zero for them.
func StreamFunctions() []Function { return []Function{Aggregate} }

// All lists every function the template deploys and the Makefile builds:
// the HTTP functions, then the stream functions.
func All() []Function { return append(Functions(), StreamFunctions()...) }

// Access is the one access class of the API's routes that fn serves.
// A function not listed here serves nothing, so that a new function never
// serves admin routes by default; Run refuses it at start.
func (fn Function) Access() httpapi.Access {
	switch fn {
	case Ingest:
		return httpapi.Ingest
	case Admin:
		return httpapi.Admin
	}
	return 0
}

// Classes are the access classes of every route fn serves: its Access,
// and for the admin function also the dashboard's (httpapi.Dashboard).
// The dashboard's page calls the admin routes, so it is served beside
// them, from the function whose role may read campaigns; its own routes
// need no key and touch no store. The template routes each function
// exactly the routes of its classes.
func (fn Function) Classes() []httpapi.Access {
	switch fn.Access() {
	case 0:
		return nil
	case httpapi.Admin:
		return []httpapi.Access{httpapi.Admin, httpapi.Dashboard}
	}
	return []httpapi.Access{fn.Access()}
}

// Option adds what a function's main passes to what it serves.
type Option func(*options)

type options struct {
	dashboard fs.FS
}

// WithDashboard serves the dashboard's files from fsys, as
// httpapi.WithDashboard does. The admin function's main passes
// web.Dashboard(), so that only its binary embeds the files; Run refuses
// it to a function that does not serve the dashboard (Classes), and
// refuses to start the admin function without it, so that a main that
// forgets it fails at start, not with a 404 in front of a user.
func WithDashboard(fsys fs.FS) Option {
	return func(o *options) { o.dashboard = fsys }
}

// errNoAdminKeys is returned by Run when the admin function's
// ADMIN_API_KEYS holds no key. A function sits behind a public API, so it
// refuses to start rather than serve campaigns and stats to anyone. The
// local server, which is for development, starts open instead and warns.
var errNoAdminKeys = errors.New("serve: ADMIN_API_KEYS holds no key: the admin function will not serve the admin routes open; set one or more comma-separated keys")

// MetricsNamespace is the CloudWatch namespace of the functions' metrics.
const MetricsNamespace = "AdCount"

// Main runs fn with the process's environment and stdout, as Lambda starts
// it, and returns the exit code for main to exit with, so that main stays
// the only place that exits. It returns 1 if fn cannot start or stops
// serving with an error, after logging why as one JSON line at level ERROR
// that names fn (Lambda sends it to CloudWatch Logs and reports an init
// error), and 0 if it stops serving cleanly.
func Main(fn Function, opts ...Option) int {
	if err := Run(context.Background(), fn, os.Getenv, os.Stdout, opts...); err != nil {
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error(string(fn)+" cannot start", "function", string(fn), "err", err)
		return 1
	}
	return 0
}

// Run reads the settings through getenv once, at init, and runs fn on
// Lambda until Lambda stops the instance. A stream function handles its
// stream's batches (see runStream). An HTTP function opens the store and
// serves the API handler, with the admin routes behind the keys of
// ADMIN_API_KEYS, and the dashboard if opts give it (WithDashboard). It
// logs JSON
// lines to stdout at LOG_LEVEL; each request's line is also a CloudWatch
// Embedded Metric Format document, so the function publishes its metrics
// with no API call, and that line is written at every LOG_LEVEL (see
// emf.Sink). It returns only an error: an unknown function, a bad
// setting, no admin key, a dashboard missing or misplaced, or a store that
// cannot be opened, which the caller reports before exiting.
//
// Each function serves only the routes of its access class; a request that
// reaches the wrong function by a routing mistake gets the API's JSON 404,
// never a route served by a role that lacks its permissions. So only the
// admin function needs ADMIN_API_KEYS.
func Run(ctx context.Context, fn Function, getenv func(string) string, stdout io.Writer, opts ...Option) error {
	if slices.Contains(StreamFunctions(), fn) {
		return runStream(ctx, fn, getenv, stdout)
	}
	h, payload, err := newHandler(ctx, fn, getenv, stdout, opts...)
	if err != nil {
		return err
	}
	return lambdaproxy.Start(h, payload)
}

// newHandler is what Run serves, and the payload format it serves it with.
//
// Its logs go straight to stdout, one write a line, never through a
// buffer like the local server's: a function answers one request an
// invocation, so there are no lines to gather, and Lambda may freeze the
// instance the moment an invocation returns, which would hold a buffered
// line back from CloudWatch until the next invocation, or for ever. So
// every line of a request is on stdout before its invocation returns.
func newHandler(ctx context.Context, fn Function, getenv func(string) string, stdout io.Writer, opts ...Option) (http.Handler, lambdaproxy.Payload, error) {
	if !fn.known() {
		return nil, "", fmt.Errorf("serve: unknown function %q: want one of %q", fn, All())
	}
	if fn.Access() == 0 {
		return nil, "", fmt.Errorf("serve: %s serves no HTTP route", fn)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	switch dashboard := slices.Contains(fn.Classes(), httpapi.Dashboard); {
	case dashboard && o.dashboard == nil:
		return nil, "", fmt.Errorf("serve: %s serves the dashboard: its main must pass serve.WithDashboard(web.Dashboard())", fn)
	case !dashboard && o.dashboard != nil:
		return nil, "", fmt.Errorf("serve: %s does not serve the dashboard; only %s does", fn, Admin)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, "", err
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	payload, err := lambdaproxy.ParsePayload(getenv(lambdaproxy.PayloadEnv))
	if err != nil {
		return nil, "", err
	}
	if fn.Access() == httpapi.Admin && len(cfg.AdminKeys) == 0 {
		return nil, "", errNoAdminKeys
	}
	store, err := stores.Open(ctx, cfg, getenv, logger)
	if err != nil {
		return nil, "", err
	}
	// The EMF sink writes each request's one line, log and metrics
	// together, so that the metrics survive any LOG_LEVEL.
	metrics := emf.NewSink(logger.Handler(), MetricsNamespace)
	// Only the ingest function takes impressions; compiling the crawler
	// list (some milliseconds) would only slow the admin function's cold
	// starts.
	isBot, err := botfilter.Judge(cfg.FilterBots && fn.Access() == httpapi.Ingest)
	if err != nil {
		return nil, "", fmt.Errorf("serve: FILTER_BOTS: %w", err)
	}
	hopts := []httpapi.Option{httpapi.WithOnly(fn.Access()), httpapi.WithRequestLog(metrics), httpapi.WithAdminKeys(cfg.AdminKeys), httpapi.WithBotFilter(isBot)}
	if o.dashboard != nil {
		hopts = append(hopts, httpapi.WithDashboard(o.dashboard))
	}
	return httpapi.NewHandler(store, hopts...), payload, nil
}

func (fn Function) known() bool { return slices.Contains(All(), fn) }
