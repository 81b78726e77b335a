// Command floor is the baseline of the HTTP budget: a bare net/http server
// that decodes the same JSON impression body as POST /api/v1/impressions and
// answers 200 with a reply of the same size, doing nothing else. What it
// sustains is the limit of the machine and the HTTP stack, so the service is
// measured against it in the same run.
//
//	PORT=0 go run ./loadtest/floor
//
// It logs one line, {"msg":"listening","addr":...}, like the local server,
// and stops on SIGINT or SIGTERM without draining: it holds nothing.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// impression is the body the service accepts.
type impression struct {
	CampaignID string `json:"campaign_id"`
	UserID     string `json:"user_id"`
	AdID       string `json:"ad_id"`
}

// reply is as long as the service's "counted" reply, so that both move the
// same bytes.
var reply = []byte(`{"message":"Impression saved successfully","counted":true}` + "\n")

// handler decodes the body, checks it is an object, and answers.
func handler(w http.ResponseWriter, r *http.Request) {
	var imp impression
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&imp); err != nil {
		http.Error(w, `{"error":"malformed JSON"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(reply)
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	port := getenv("PORT")
	if port == "" {
		port = "8081"
	}
	logger := slog.New(slog.NewJSONHandler(stdout, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/impressions", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	logger.Info("listening", "addr", ln.Addr().String())
	// Nothing is worth draining here: stopping closes the connections.
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
