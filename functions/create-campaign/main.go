// Command create-campaign is the Lambda function behind the campaign
// routes, POST /api/v1/campaigns and GET /api/v1/campaigns/{id}. It serves
// the whole API handler, so a request routed to it by mistake still gets the
// API's own JSON answer; the SAM template routes only those routes here.
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
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Error("create-campaign cannot start", "err", err)
		os.Exit(1)
	}
}
