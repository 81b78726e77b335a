// Command track-impression is the Lambda function behind
// POST /api/v1/impressions. It serves the whole API handler, so a request
// routed to it by mistake still gets the API's own JSON answer; the SAM
// template routes only its route here.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/adcount/impression-counter/functions/internal/serve"
)

// main serves until Lambda stops the instance, and logs why and exits
// non-zero if the function cannot start. Logs go to stdout as JSON, which
// Lambda sends to CloudWatch Logs.
func main() {
	if err := serve.Run(context.Background(), os.Getenv, os.Stdout); err != nil {
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("track-impression cannot start", "err", err)
		os.Exit(1)
	}
}
