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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/adcount/impression-counter/docs"
	"github.com/adcount/impression-counter/shared/adcount"
	"github.com/adcount/impression-counter/shared/config"
	"github.com/adcount/impression-counter/shared/httpapi"
	"github.com/adcount/impression-counter/shared/prommetrics"
	"github.com/adcount/impression-counter/shared/stores"
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
// or did not stop cleanly. Logs go to stdout as JSON lines.
//
// The one argument it takes is the subcommand create-table, which creates
// the DynamoDB store's table DYNAMODB_TABLE for local use and exits.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := config.Load(getenv)
	switch {
	case len(args) == 1 && args[0] == "create-table":
		if err != nil {
			return err
		}
		return createTable(ctx, cfg, getenv, stdout)
	case len(args) > 0:
		return fmt.Errorf("unexpected arguments %q: configure the server with environment variables; the only subcommand is create-table", args)
	case err != nil:
		return err
	}
	port := getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("PORT must be a port number, got %q", port)
	}
	shutdownTimeout, err := config.Duration(getenv, "SHUTDOWN_TIMEOUT", 10*time.Second, time.Nanosecond, config.MaxDuration)
	if err != nil {
		return err
	}
	readHeaderTimeout, err := config.Duration(getenv, "READ_HEADER_TIMEOUT", 5*time.Second, time.Nanosecond, config.MaxDuration)
	if err != nil {
		return err
	}

	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel}))
	store, err := stores.Open(ctx, cfg, getenv, logger)
	if err != nil {
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
	srv := &http.Server{
		Handler:           newHandler(store, cfg, logger),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	// Where the server listens is always logged, whatever LOG_LEVEL says:
	// operators and scripts read it to find the server.
	slog.New(slog.NewJSONHandler(stdout, nil)).Info("listening", "addr", ln.Addr().String(), "store", cfg.Store, "dedup_ttl", cfg.DedupTTL.String(), "data_dir", cfg.DataDir)
	if len(cfg.AdminKeys) == 0 {
		logger.Warn("ADMIN_API_KEYS is not set: the admin API (campaigns and stats) is OPEN to anyone who can reach this server; set it before exposing the server")
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
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

// newHandler is the API with the routes a long-running server adds: health,
// readiness, Prometheus metrics and the OpenAPI contract.
func newHandler(store adcount.Store, cfg config.Config, logger *slog.Logger) http.Handler {
	sizes, _ := store.(prommetrics.StoreSizes)
	metrics := prommetrics.New(sizes)
	return httpapi.NewHandler(store,
		httpapi.WithLogger(logger),
		httpapi.WithAdminKeys(cfg.AdminKeys),
		httpapi.WithMetrics(metrics),
		httpapi.WithOperations(metrics.Handler(), docs.OpenAPI))
}
