package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/adcount/impression-counter/shared/httpapi"
)

// healthcheckTimeout bounds one health check. It is twice the bound of
// the store check behind /readyz, so that a slow store's 503 arrives with
// its reason rather than as a timeout, and below the image's HEALTHCHECK
// --timeout (5s), so that a hung server is reported by this command's own
// message rather than killed by the engine without one.
const healthcheckTimeout = 2 * httpapi.ReadyTimeout

// healthcheck asks the server listening on PORT on this host whether it is
// ready: GET /readyz (the store can be reached) or, if args name it,
// GET /healthz (the process serves), must answer 200 within
// healthcheckTimeout. It writes one line saying what it saw and returns an
// error unless the answer was 200.
//
// It exists because the container image is FROM scratch: there is no
// shell or curl for a HEALTHCHECK to run, so the image runs the binary it
// already holds.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	route := "/readyz"
	switch {
	case len(args) == 0:
	case len(args) == 1 && (args[0] == "/readyz" || args[0] == "/healthz"):
		route = args[0]
	default:
		return fmt.Errorf("healthcheck: unexpected arguments %q: give /readyz (the default) or /healthz", args)
	}
	port, err := listenPort(getenv)
	if err != nil {
		return err
	}
	if port == "0" {
		return fmt.Errorf("healthcheck: PORT=0 picks a free port when the server starts; set the port it listens on")
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + route
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	// The body says why a store is not ready; a line of it is enough.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s: %s", url, resp.Status, body)
	}
	_, err = fmt.Fprintf(stdout, "healthcheck: GET %s: %s\n", url, resp.Status)
	return err
}
