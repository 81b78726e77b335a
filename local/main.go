// Command local serves the impression counter API with net/http, for
// development and for single-server deployments. The store is in memory
// unless STORE says otherwise.
//
// Configuration comes from the environment; see the README for the table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/adcount/impression-counter/docs"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/botfilter"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/logbuf"
	"github.com/adcount/impression-counter/shared/prommetrics"
	"github.com/adcount/impression-counter/shared/stores"
	"github.com/adcount/impression-counter/shared/streampoll"
	"github.com/adcount/impression-counter/web"

	"golang.org/x/net/netutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "local:", err)
		os.Exit(1)
	}
}

// run serves until ctx is cancelled, then shuts down gracefully: it stops
// accepting connections and lets requests in flight finish within
// SHUTDOWN_TIMEOUT. It returns an error only if the server could not start
// or did not stop cleanly. Logs go to stdout as JSON lines, through a
// bounded buffer that writes them many to a call, at most a
// logbuf.DefaultFlushInterval after each is logged: a reader of stdout that
// stops reading costs log lines (counted, and reported at shutdown), never
// a request. Every buffered line is written before run returns.
//
// The arguments it takes are the subcommand create-table, which creates the
// DynamoDB store's table DYNAMODB_TABLE for local use and exits;
// healthcheck, which asks a running server whether it is ready; and help
// (or -h, --help), which prints the usage and the settings.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	if len(args) == 1 && isHelp(args[0]) {
		return usage(stdout)
	}
	// The health check reads PORT alone: it must answer whatever else the
	// environment holds, and fast, as an orchestrator runs it every few
	// seconds.
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], getenv, stdout)
	}
	cfg, err := config.Load(getenv)
	switch {
	case len(args) == 1 && args[0] == "create-table":
		if err != nil {
			return err
		}
		return createTable(ctx, cfg, getenv, stdout)
	case len(args) > 0:
		return fmt.Errorf("unexpected arguments %q: configure the server with environment variables (see -h); the only subcommands are create-table, healthcheck and help", args)
	case err != nil:
		return err
	}
	port, err := listenPort(getenv)
	if err != nil {
		return err
	}
	shutdownTimeout, err := config.Duration(getenv, "SHUTDOWN_TIMEOUT", 10*time.Second, time.Nanosecond, config.MaxDuration)
	if err != nil {
		return err
	}
	// A header timeout past the read timeout would never apply: the read
	// timeout cuts the connection first.
	readHeaderTimeout, err := config.Duration(getenv, "READ_HEADER_TIMEOUT", 5*time.Second, time.Nanosecond, readTimeout)
	if err != nil {
		return err
	}
	maxConns, err := maxConnections(getenv, openFileLimit())
	if err != nil {
		return err
	}

	logs := logbuf.New(stdout)
	defer func() {
		if n := logs.Dropped(); n > 0 {
			slog.New(slog.NewJSONHandler(logs, nil)).Warn("log lines dropped: stdout was not read fast enough", "dropped", n)
		}
		// Every buffered line is written before run returns, unless stdout
		// takes none of them within SHUTDOWN_TIMEOUT: a reader that never
		// reads again must not keep the process from exiting.
		flushCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if ferr := logs.Flush(flushCtx); errors.Is(ferr, context.DeadlineExceeded) {
			err = errors.Join(err, fmt.Errorf("write logs: stdout took no more lines within SHUTDOWN_TIMEOUT (%v); the last ones are lost", shutdownTimeout))
			return
		}
		if cerr := logs.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("write logs: %w", cerr))
		}
	}()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// always logs what operators must see whatever LOG_LEVEL says.
	always := slog.New(slog.NewJSONHandler(logs, nil))
	// "stopped" is the last line of a graceful stop: it is written once
	// the server has drained and the store has closed (the deferred calls
	// below run before this one), and only if both went well, so that an
	// operator or a container engine's log can trust it.
	drained := false
	defer func() {
		if drained && err == nil {
			always.Info("stopped")
		}
	}()
	store, err := stores.Open(ctx, cfg, getenv, logger)
	if err != nil {
		if cfg.DataDir != "" {
			// Name the setting, as for every other one the server refuses:
			// the store's own message names only the path.
			return fmt.Errorf("DATA_DIR=%s: %w", cfg.DataDir, err)
		}
		return err
	}
	// A persistent store is closed only after the server has drained, so
	// that every acknowledged request is flushed first.
	if c, ok := store.(io.Closer); ok {
		defer func() {
			if cerr := c.Close(); cerr != nil {
				logger.Error("closing the store", "err", cerr)
				err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
			}
		}()
	}
	// The timeouts cut off slow clients (a slow-loris client drips its
	// header a byte at a time to hold a connection); MaxHeaderBytes and the
	// handler's body limit cap what one request can make the server hold.
	// The handler reads the clock the store reads (stores.Open gives every
	// store time.Now), so that a campaign's status as the API shows it is
	// what the store does with an impression at the same moment.
	handler, metrics, err := newHandler(store, time.Now, cfg, logs)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           closeAfterChunked(handler),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	// Past maxConns, a new connection waits in the kernel's accept queue
	// until one closes, so that idle clients can never take the
	// descriptors the store needs for its files.
	ln = netutil.LimitListener(ln, maxConns)
	// Where the server listens is always logged: operators and scripts
	// read it to find the server.
	always.Info("listening", "addr", ln.Addr().String(), "revision", revision(), "store", cfg.Store, "dedup_ttl", cfg.DedupTTL.String(), "data_dir", cfg.DataDir, "max_connections", maxConns)
	if len(cfg.AdminKeys) == 0 {
		always.Warn("ADMIN_API_KEYS is not set: the admin API (campaigns, their changes and their reports) is OPEN to anyone who can reach this server; set it before exposing the server")
	}

	// The aggregator stops after the server has drained, before the store
	// closes: whatever it leaves unapplied, it or another server applies
	// from the checkpoints.
	stopAggregator, err := startAggregator(ctx, cfg, getenv, logger, metrics)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer stopAggregator()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// The two lines that say a stop was graceful are always written: an
	// operator who stopped the server, or a container engine's log, needs
	// them whatever LOG_LEVEL says.
	always.Info("shutting down", "timeout", shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopAggregator()
	drained = true
	return nil
}

// listenPort reads PORT: a port number, 8080 when unset, 0 for a free one.
func listenPort(getenv func(string) string) (string, error) {
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("config: PORT must be a port number from 0 to 65535, got %q", port)
	}
	return port, nil
}

// revision is the commit the binary was built from, as the go command
// stamped it, with "-dirty" for a tree with uncommitted changes, or
// "unknown". The startup line carries it, so that a log says which build
// ran; a container image's org.opencontainers.image.revision label holds
// the same commit.
func revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// readTimeout bounds how long a client may take to send a whole request.
const readTimeout = 10 * time.Second

// Connection limits. Each connection holds a file descriptor; the store
// needs some of its own (log files, snapshots, DynamoDB's connections).
const (
	// reservedFiles are descriptors MAX_CONNECTIONS may never take.
	reservedFiles = 64
	// autoMaxConnections caps the automatic limit where memory, not
	// descriptors, would run out first.
	autoMaxConnections = 10_000
)

// maxConnections reads MAX_CONNECTIONS: a number from 1 to the open-file
// limit less reservedFiles, or auto (the default), the smaller of
// autoMaxConnections and half the limit. fileLimit is 0 when unknown.
func maxConnections(getenv func(string) string, fileLimit uint64) (int, error) {
	hi := math.MaxInt32
	auto := autoMaxConnections
	if fileLimit > 0 {
		// A limit too small to reserve the store's files still lets one
		// connection in, and auto never exceeds what may be set.
		limit := int(min(fileLimit, math.MaxInt32))
		hi = max(limit-reservedFiles, 1)
		auto = min(auto, limit/2, hi)
	}
	if v := getenv("MAX_CONNECTIONS"); v == "" || v == "auto" {
		return max(auto, 1), nil
	}
	return config.Int(getenv, "MAX_CONNECTIONS", auto, 1, hi)
}

// isHelp reports whether arg asks for the usage text.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// usage prints what the command does, its subcommands, every setting with
// its default, and where the documentation is.
func usage(w io.Writer) error {
	fmt.Fprint(w, `local serves the ad impression counter's HTTP API with net/http.

Usage:
  go run ./local                  serve the API; settings come from the environment
  go run ./local create-table     create DYNAMODB_TABLE (STORE=dynamodb) for local use, and exit
  go run ./local healthcheck [/readyz|/healthz]
                                  exit 0 if the server on PORT answers the route (default
                                  /readyz) with 200 within 4s, else 1; a container's health check
  go run ./local help             print this text (also -h, --help)

Environment (a set but invalid value stops the server with a message naming it):
`)
	if err := config.WriteSettings(w); err != nil {
		return err
	}
	_, err := fmt.Fprint(w, `
Docs: README.md (API, configuration, restarting without loss), docs/security.md,
docs/openapi.yaml (also served at GET /api/v1/openapi.yaml).
`)
	return err
}

// createTable creates the DynamoDB store's table with the key schema and
// TTL the deployment uses, and says whether it was already there.
func createTable(ctx context.Context, cfg config.Config, getenv func(string) string, stdout io.Writer) error {
	created, err := stores.CreateTable(ctx, cfg, getenv)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "created table %s\n", cfg.DynamoDBTable)
	} else {
		fmt.Fprintf(stdout, "table %s already exists\n", cfg.DynamoDBTable)
	}
	return nil
}

// closeAfterChunked closes the connection after answering a request whose
// body came chunked. RFC 9112 (section 6.3) requires a server that serves a
// request carrying both Transfer-Encoding and Content-Length to close the
// connection afterwards, because a proxy in front that framed the request
// by Content-Length would read what follows differently: the classic
// request-smuggling desync. net/http serves such a request by its chunked
// framing, as it must, but keeps the connection open, and it drops the
// Content-Length header before a handler could see both. So every chunked
// request closes its connection. Browsers and ad servers send small bodies
// with a Content-Length, so normal traffic never pays for this.
func closeAfterChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(r.TransferEncoding, "chunked") {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// newHandler is the API over store, reading the store's clock now, with
// the routes a long-running server adds: health, readiness, Prometheus
// metrics and the OpenAPI contract, and with the dashboard at /dashboard,
// embedded in the binary. The request line goes to logs at
// LOG_LEVEL, written by httpapi.JSONLogSink: the line slog would write, at
// a fraction of the cost. The metrics count the log lines that logs had
// to drop.
func newHandler(store adcount.Store, now func() time.Time, cfg config.Config, logs *logbuf.Writer) (http.Handler, *prommetrics.Metrics, error) {
	sizes, _ := store.(prommetrics.StoreSizes)
	metrics := prommetrics.New(sizes)
	if err := metrics.CountDroppedLogLines(logs.Dropped); err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	isBot, err := botfilter.Judge(cfg.FilterBots)
	if err != nil {
		return nil, nil, fmt.Errorf("local: FILTER_BOTS: %w", err)
	}
	return httpapi.NewHandler(store,
		httpapi.WithClock(now),
		httpapi.WithRequestLog(httpapi.JSONLogSink(logs, cfg.LogLevel)),
		httpapi.WithAdminKeys(cfg.AdminKeys),
		httpapi.WithBotFilter(isBot),
		httpapi.WithMetrics(metrics),
		httpapi.WithOperations(metrics.Handler(), docs.OpenAPI),
		httpapi.WithDashboard(web.Dashboard())), metrics, nil
}

// startAggregator starts, with STORE=dynamodb and DYNAMODB_AGGREGATOR=true,
// a poller that reads the table's stream and folds it into the counts, as
// the Lambda aggregator does on AWS, its metrics on /metrics. It returns
// what stops it and waits for it to return; calling that more than once
// is harmless. Without the two settings it starts nothing.
func startAggregator(ctx context.Context, cfg config.Config, getenv func(string) string, logger *slog.Logger, metrics *prommetrics.Metrics) (stop func(), err error) {
	if cfg.Store != config.StoreDynamoDB || !cfg.DynamoDBAggregator {
		return func() {}, nil
	}
	obs, err := metrics.Aggregator()
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	p, err := stores.OpenPoller(ctx, cfg, getenv, streampoll.WithLogger(logger), streampoll.WithObserver(obs))
	if err != nil {
		return nil, err
	}
	logger.Info("aggregating the table's stream", "table", cfg.DynamoDBTable, "reader", p.Reader())
	// The poller outlives ctx, which ends when shutdown begins: it stops
	// only once the server has drained.
	pollCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(pollCtx) // it returns nil when pollCtx ends
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	}), nil
}
