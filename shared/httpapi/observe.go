package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Metrics receives what the handler observes, for Prometheus on the local
// server and CloudWatch on Lambda. Implementations must be safe for
// concurrent use and cheap: they run on every request.
type Metrics interface {
	// ObserveRequest records one answered request by route pattern (never
	// the raw path, which would make one series per campaign).
	ObserveRequest(route string, status int, elapsed time.Duration)
	// ObserveImpression records one impression's outcome: "counted",
	// "duplicate", or "rejected" with the reason (an error kind such as
	// "invalid", "not_found", "not_started", "unavailable").
	ObserveImpression(outcome, reason string)
	// ObserveStoreError records a store failure by kind: "unavailable",
	// "timeout" or "internal".
	ObserveStoreError(kind string)
}

type nopMetrics struct{}

func (nopMetrics) ObserveRequest(string, int, time.Duration) {}
func (nopMetrics) ObserveImpression(string, string)          {}
func (nopMetrics) ObserveStoreError(string)                  {}

// RequestIDHeader carries the request ID. A valid ID from the client, or
// from API Gateway on Lambda, is kept; otherwise one is generated, unique
// across processes: a random prefix and a counter. It is
// echoed in the response and logged with the request.
const RequestIDHeader = "X-Request-Id"

// requestIDs makes request IDs that are unique without costing a random
// read per request: a random prefix per handler, then a counter.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *requestIDs) next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 36)
}

// requestInfo is what handlers tell the request log about a request.
type requestInfo struct {
	outcome string // "counted" or "duplicate" for impressions
	kind    string // the error kind, when the request failed
	err     error  // the error, when the request failed
	store   bool   // whether the failure was the store's
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

// validRequestID accepts IDs of 1 to 128 visible ASCII characters other
// than quotes and backslashes, so that a client's ID can be logged and echoed
// without escaping surprises.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		if c := id[i]; c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// statusWriter remembers the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe writes one log line per request and feeds the metrics. The line,
// whose message is "request", has the method, the route pattern, the
// status, the duration, the impression outcome and the request ID, and the
// error's kind and cause when there was one (store_error names the kind of a
// store failure); never headers or the body, so admin keys and user data
// stay out of the logs.
func (a *api) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = a.requestIDs.next()
		}
		w.Header().Set(RequestIDHeader, id)
		info := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)

		elapsed := time.Since(start)
		route := r.Pattern
		if route == "" || route == routeUnmatched {
			route = "unmatched"
		}
		a.metrics.ObserveRequest(route, sw.status, elapsed)
		if route == RouteRecordImpression && info.outcome == "" {
			a.metrics.ObserveImpression("rejected", info.kind)
		}

		level := slog.LevelInfo
		if sw.status >= http.StatusInternalServerError {
			level = slog.LevelError
		}
		if !a.logger.Enabled(r.Context(), level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.Int("status", sw.status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		}
		if info.outcome != "" {
			attrs = append(attrs, slog.String("outcome", info.outcome))
		}
		if info.err != nil {
			attrs = append(attrs, slog.String("error_kind", info.kind), slog.String("err", info.err.Error()))
		}
		if info.store {
			attrs = append(attrs, slog.String("store_error", info.kind))
		}
		a.logger.LogAttrs(r.Context(), level, "request", attrs...)
	})
}
