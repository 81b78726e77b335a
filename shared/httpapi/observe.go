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

	"github.com/adcount/impression-counter/shared/adcount"
)

// Record is what one answered request leaves behind: the wrapper that runs
// every route builds exactly one, after the response is written, and hands
// it to every sink (the log line, Prometheus, EMF on Lambda). No sink reads
// another's output, so each sees the same facts.
type Record struct {
	// Time is when the request reached its route.
	Time time.Time
	// Method is the request's method.
	Method string
	// Route is the route pattern, never the raw path (which would make one
	// series per campaign), or "unmatched" when no route took the request.
	Route string
	// Status is the HTTP status answered.
	Status int
	// Duration is from the route taking the request to the response written.
	Duration time.Duration
	// RequestID is the ID echoed in the X-Request-Id header.
	RequestID string
	// ErrorKind is a failed request's kind, such as "invalid", "not_found"
	// or "unavailable"; empty on success.
	ErrorKind string
	// Err is the cause of a failure, logged in full; nil on success.
	Err error
	// StoreError is set when the failure was the store's (kinds
	// "unavailable", "timeout" and "internal").
	StoreError bool
	// Impressions counts the impressions the request carried, by outcome;
	// zero on routes that take no impressions.
	Impressions Impressions
}

// Impressions counts a request's impressions by outcome. A request with one
// impression has exactly one count of 1; a batch may have several outcomes
// at once.
type Impressions struct {
	Counted   int
	Duplicate int
	// Filtered counts the impressions judged invalid traffic (a known bot
	// or crawler): recorded apart, never counted.
	Filtered int
	// Rejected counts refused impressions by reason, the error kind.
	Rejected []Rejection
}

// Rejection counts the impressions refused for one reason.
type Rejection struct {
	Reason string
	Count  int
}

// Total is the number of impressions the request carried.
func (n Impressions) Total() int {
	t := n.Counted + n.Duplicate + n.Filtered
	for _, r := range n.Rejected {
		t += r.Count
	}
	return t
}

// Outcome names the outcome of a request that carried exactly one
// recorded impression: "counted", "duplicate" or "filtered". It is empty
// otherwise,
// for a rejected impression (whose reason is the ErrorKind) and for a
// request with none or many.
func (r Record) Outcome() string {
	switch {
	case r.Impressions.Total() != 1:
		return ""
	case r.Impressions.Counted == 1:
		return adcount.Counted.String()
	case r.Impressions.Duplicate == 1:
		return adcount.Duplicate.String()
	case r.Impressions.Filtered == 1:
		return adcount.Filtered.String()
	}
	return ""
}

// Level is the level of the request's log line: Error for a 5xx, Info
// otherwise.
func (r Record) Level() slog.Level {
	if r.Status >= http.StatusInternalServerError {
		return slog.LevelError
	}
	return slog.LevelInfo
}

// AppendLogAttrs appends the fields of the request's log line: request_id,
// method, route, status, duration_ms, the impression outcome, and for a
// failure error_kind and err (and store_error naming the kind of a store
// failure). Never headers or the body, so that admin keys and user data
// stay out of the logs. A request with more than one impression adds its
// counts instead of an outcome.
func (r Record) AppendLogAttrs(attrs []slog.Attr) []slog.Attr {
	attrs = append(attrs,
		slog.String("request_id", r.RequestID),
		slog.String("method", r.Method),
		slog.String("route", r.Route),
		slog.Int("status", r.Status),
		slog.Float64("duration_ms", float64(r.Duration.Microseconds())/1000),
	)
	if o := r.Outcome(); o != "" {
		attrs = append(attrs, slog.String("outcome", o))
	} else if r.Impressions.Total() > 1 {
		attrs = append(attrs, slog.Int("counted", r.Impressions.Counted), slog.Int("duplicate", r.Impressions.Duplicate), slog.Int("filtered", r.Impressions.Filtered))
		for _, rej := range r.Impressions.Rejected {
			attrs = append(attrs, slog.Int("rejected_"+rej.Reason, rej.Count))
		}
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("error_kind", r.ErrorKind), slog.String("err", r.Err.Error()))
	}
	if r.StoreError {
		attrs = append(attrs, slog.String("store_error", r.ErrorKind))
	}
	return attrs
}

// Sink receives the record of every request the handler answers.
// Implementations must be safe for concurrent use and cheap: they run on
// every request, after its response is written.
type Sink interface {
	Observe(ctx context.Context, rec Record)
}

// LogSink writes each record as one JSON-friendly log line whose message is
// "request", at Info, or Error for a 5xx, when logger enables that level.
// It is the default request log; see WithRequestLog.
func LogSink(logger *slog.Logger) Sink { return logSink{logger} }

type logSink struct{ logger *slog.Logger }

var _ Sink = logSink{}

func (s logSink) Observe(ctx context.Context, rec Record) {
	level := rec.Level()
	if !s.logger.Enabled(ctx, level) {
		return
	}
	var buf [10]slog.Attr
	s.logger.LogAttrs(ctx, level, "request", rec.AppendLogAttrs(buf[:0])...)
}

// RequestIDHeader carries the request ID. A valid ID from the client, or
// from API Gateway on Lambda, is kept; otherwise one is generated, unique
// across processes: a random prefix and a counter. It is
// echoed in the response and logged with the request.
const RequestIDHeader = "X-Request-Id"

// requestIDs makes request IDs that are unique without costing a random
// read per request: a random prefix per handler, then a counter. They are
// made a block at a time, each in the one-element slice a response header
// holds it in, so that a request's ID costs no allocation of its own.
type requestIDs struct {
	prefix string
	n      atomic.Uint64 // the counter values handed out to blocks so far
	block  atomic.Pointer[idBlock]
}

// idBlockSize is how many IDs one block holds.
const idBlockSize = 64

// idBlock is IDs made together: ids[i] is handed out by the request that
// takes i from next.
type idBlock struct {
	next atomic.Uint32
	ids  [idBlockSize]string
}

func newRequestIDs() *requestIDs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// next returns a new ID as the one value of a header's value slice, which
// is the caller's alone.
func (g *requestIDs) next() []string {
	for {
		b := g.block.Load()
		if b != nil {
			if i := b.next.Add(1) - 1; i < idBlockSize {
				return b.ids[i : i+1 : i+1]
			}
		}
		// The block is used up. Whichever request installs the next one
		// first wins; the others' blocks are dropped, counter values and
		// all, and IDs stay unique.
		g.block.CompareAndSwap(b, g.newBlock())
	}
}

// newBlock makes idBlockSize IDs from the counter, in one string.
func (g *requestIDs) newBlock() *idBlock {
	first := g.n.Add(idBlockSize) - idBlockSize + 1
	buf := make([]byte, 0, idBlockSize*(len(g.prefix)+6))
	var ends [idBlockSize]int
	for i := range idBlockSize {
		buf = append(buf, g.prefix...)
		buf = strconv.AppendUint(buf, first+uint64(i), 36)
		ends[i] = len(buf)
	}
	all := string(buf)
	b := &idBlock{}
	start := 0
	for i, end := range ends {
		b.ids[i] = all[start:end]
		start = end
	}
	return b
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

// statusWriter remembers the status a handler sent. Only the endpoints that
// write their own response (metrics, the OpenAPI document) need it.
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
