// Package httpapi is the JSON REST API of the impression counter, as one
// http.Handler that the local server and every Lambda function serve
// unchanged.
//
// routes.go holds the route table, the one list of routes; errors.go holds
// the one mapping from errors to statuses; observe.go the request record
// every sink reads.
package httpapi

import (
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/adcount/impression-counter/shared/adcount"
)

// MaxBodyBytes is the largest request body accepted; a larger one gets 413.
// Every valid request fits in a small fraction of it.
const MaxBodyBytes = 64 << 10

// Option configures the handler.
type Option func(*api)

// WithLogger sets the logger of the request log line (see LogSink). The
// default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(a *api) { a.requestLog = LogSink(l) }
}

// WithRequestLog replaces the request log line with s, which then writes
// the one line per request. On Lambda the EMF sink does, so that the log
// line and the metrics document are one write.
func WithRequestLog(s Sink) Option {
	return func(a *api) { a.requestLog = s }
}

// WithAdminKeys requires one of keys, sent as "Authorization: Bearer <key>",
// on the admin routes: creating, listing, reading and changing campaigns,
// and reading their stats, time series and per-ad breakdown.
// More than one key may be active so that keys can be rotated without
// downtime. With no keys the admin routes are open, which suits local
// development only. Impression ingest never needs a key: ad tags run in
// browsers, where a key could not be kept secret.
func WithAdminKeys(keys []string) Option {
	return func(a *api) { a.keys = newAdminKeys(keys) }
}

// WithMetrics adds a sink that turns request records into metrics, such as
// Prometheus counters. Sinks see every request whatever the log level.
func WithMetrics(m Sink) Option {
	return func(a *api) { a.sinks = append(a.sinks, m) }
}

// WithOperations adds the routes a long-running server needs: GET /healthz
// (liveness), GET /readyz (the store can be reached), GET /metrics served by
// metrics, and GET /api/v1/openapi.yaml serving spec. Lambda functions leave
// them out: API Gateway and CloudWatch do those jobs there.
func WithOperations(metrics http.Handler, spec []byte) Option {
	return func(a *api) { a.ops = &operations{metrics: metrics, openapi: spec} }
}

type operations struct {
	metrics http.Handler
	openapi []byte
}

// WithOnly serves only the API routes of the given access classes; every
// other API route answers like a path the API does not have, a JSON 404.
// Each Lambda function serves one class, so that a request routed to the
// wrong function by mistake is refused rather than served with a role that
// lacks its permissions. By default every class is served. It does not
// add the operations routes, nor the dashboard's; WithOperations and
// WithDashboard do.
func WithOnly(classes ...Access) Option {
	return func(a *api) { a.only = classes }
}

// WithBotFilter judges impressions by User-Agent: isBot reports whether
// a User-Agent is a known bot or crawler, and an impression it accepts is
// recorded as filtered (adcount.Impression.Filtered), never counted. The
// single route and the pixel judge the request's User-Agent header, or the
// single route's user_agent field when the body has one; a batch judges
// each item's own user_agent field, and an item without one is not judged,
// because a batch comes from an ad server, whose User-Agent is not the
// viewer's. isBot must be safe for concurrent use and cheap: it runs on
// every impression. Nil, the default, filters nothing.
func WithBotFilter(isBot func(userAgent string) bool) Option {
	return func(a *api) { a.isBot = isBot }
}

// WithIDGenerator sets how campaign IDs are made. The default makes random
// (version 4) UUIDs; tests may want predictable ones.
func WithIDGenerator(newID func() string) Option {
	return func(a *api) { a.newID = newID }
}

// WithClock sets the clock the handler reads: it stamps a new campaign's
// created_at, computes every campaign's status, evaluates the campaign
// list's status filter, and is the "now" that a time series' defaults and
// retention limits count back from. Give it the clock the store reads, so
// that a status the API shows agrees with what the store does with an
// impression at the same moment. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(a *api) { a.now = now }
}

type api struct {
	store adcount.Store
	now   func() time.Time
	isBot func(userAgent string) bool // nil filters nothing
	// readImpression reads the single route's body: readImpression, or
	// in tests the decoder alone, to prove both answer alike.
	readImpression func(http.ResponseWriter, *http.Request) (batchItem, error)
	newID          func() string
	requestIDs     *requestIDs
	keys           adminKeys
	requestLog     Sink
	sinks          []Sink
	ops            *operations
	dashboard      fs.FS    // nil serves no dashboard
	only           []Access // nil serves every class
	mux            *http.ServeMux
	// access is each registered pattern's access class, for the catch-all
	// that answers the wrong methods on a route's path.
	access map[string]Access
	// nonCanonical answers paths that are not in canonical form.
	nonCanonical http.Handler
}

// NewHandler returns the API over store. The handler is safe for concurrent
// use and holds no state of its own, so any number of copies may serve the
// same store.
func NewHandler(store adcount.Store, opts ...Option) http.Handler {
	a := &api{store: store, now: time.Now, readImpression: readImpression, newID: newUUID, requestIDs: newRequestIDs(), mux: http.NewServeMux(), access: map[string]Access{}}
	for _, opt := range opts {
		opt(a)
	}
	if a.requestLog == nil {
		a.requestLog = LogSink(slog.Default())
	}
	a.sinks = append([]Sink{a.requestLog}, a.sinks...)
	for _, rt := range routeTable {
		if !a.serves(rt.Access) {
			continue
		}
		a.mux.Handle(rt.Pattern, a.serve(rt))
		a.access[rt.Pattern] = rt.Access
	}
	a.mux.Handle(routeUnmatched, a.serve(route{Route: Route{Pattern: routeUnmatched}, handler: (*api).unrouted}))
	a.nonCanonical = a.serve(route{Route: Route{Pattern: routeUnmatched}, handler: handleNonCanonical})
	return a
}

// serves reports whether the handler registers routes of class c.
func (a *api) serves(c Access) bool {
	switch c {
	case Operations:
		return a.ops != nil
	case Dashboard:
		return a.dashboard != nil
	}
	return a.only == nil || slices.Contains(a.only, c)
}

// ServeHTTP serves one request. A path that is not in canonical form, such
// as one with "//" or "..", is a JSON 404: the router would redirect it
// with an HTML body, and API clients gain nothing from following that.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; !isCanonical(p) {
		a.nonCanonical.ServeHTTP(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// endpoint serves one route: it returns the response to send, or the error
// that classify turns into one. It never writes an error response itself,
// so that the one wrapper, serve, sees every outcome and records it.
type endpoint func(w http.ResponseWriter, r *http.Request) (response, error)

// response is what an endpoint answers.
type response struct {
	status int
	// body is sent as JSON; encoded is a body encoded once, ahead of time,
	// with its trailing newline, of type contentType (JSON when empty).
	// With neither, no body is sent.
	body        any
	encoded     []byte
	contentType string
	// written means the endpoint wrote the whole response itself, as the
	// metrics and OpenAPI endpoints do.
	written bool
	// impressions are the request's impressions by outcome.
	impressions Impressions
	// items is how many impressions a request that failed as a whole
	// carried, so that a failed batch counts each of them as rejected;
	// zero when unknown, which counts one.
	items int
}

// serve wraps rt's endpoint: it gives the request its ID, checks the admin
// key or opens the route to other origins as rt's access class says, runs
// the endpoint (recovering a panic), writes its response or its error, and
// hands the request's one record to every sink.
func (a *api) serve(rt route) http.Handler {
	ep := rt.handler(a)
	name := rt.Pattern
	if name == routeUnmatched {
		name = "unmatched"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The keys are in canonical form, and the values' slices are
		// the request's own, made ahead of time or shared: every request
		// sets these headers, and Header.Set allocates a slice for each.
		id := r.Header[RequestIDHeader]
		if len(id) == 0 || !validRequestID(id[0]) {
			id = a.requestIDs.next()
		}
		h := w.Header()
		h[RequestIDHeader] = id[:1:1]
		if rt.Access == Ingest {
			h["Access-Control-Allow-Origin"] = anyOrigin
		}
		res, err := a.run(ep, rt, w, r)
		rec := Record{Time: start, Method: r.Method, Route: name, RequestID: id[0], Impressions: res.impressions}
		switch {
		case err != nil:
			// Only an error that carries the client's cancellation is
			// client_closed (classify checks context.Canceled first); a
			// store failure that coincides with a hang-up stays a store
			// failure, so that no outage hides behind departing clients.
			p := classify(err)
			rec.Status, rec.ErrorKind, rec.Err = p.status, p.kind, err
			rec.StoreError = p.storeFailure()
			if rt.impressions && rec.Impressions.Total() == 0 {
				rec.Impressions.Rejected = []Rejection{{Reason: p.kind, Count: max(res.items, 1)}}
			}
			if rt.fail != nil {
				rt.fail(w, err, p)
			} else {
				fail(w, err, p)
			}
		case res.written:
			rec.Status = res.status
		case res.encoded != nil:
			rec.Status = res.status
			contentType := res.contentType
			if contentType == "" {
				contentType = "application/json"
			}
			writeBody(w, res.status, contentType, res.encoded)
		case res.body != nil:
			rec.Status = writeJSON(w, res.status, res.body)
		default:
			rec.Status = res.status
			w.WriteHeader(res.status)
		}
		rec.Duration = time.Since(start)
		for _, s := range a.sinks {
			s.Observe(r.Context(), rec)
		}
	})
}

// Header values that every response of their kind shares. A shared
// value's slice holds exactly the one value, so that Header.Add makes a
// new slice rather than writing into it, and no code writes into a
// header value's slice in place.
var (
	anyOrigin       = []string{"*"}
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
)

// run calls the endpoint after the admin key check, turning a panic into a
// 500 whose log has the stack, so that one bad request never takes the
// server down or leaves the client without an answer.
// http.ErrAbortHandler is re-raised: it is net/http's way to abort a
// response on purpose.
func (a *api) run(ep endpoint, rt route, w http.ResponseWriter, r *http.Request) (res response, err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			panic(v)
		}
		res, err = response{}, &panicError{value: fmt.Sprint(v), stack: debug.Stack()}
	}()
	if rt.Access == Admin {
		if err := a.keys.check(r); err != nil {
			return response{}, err
		}
	}
	return ep(w, r)
}

// panicError carries a recovered panic and its stack to the request log.
type panicError struct {
	value string
	stack []byte
}

func (e *panicError) Error() string { return "panic: " + e.value + "\n" + string(e.stack) }

// isCanonical reports whether p is in canonical form, as canonicalPath
// writes it. A path with a slash first, no doubled slash and no element
// that starts with a dot, which is every path the API serves, is; only
// others are cleaned to see.
func isCanonical(p string) bool {
	if p != "" && p[0] == '/' && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return true
	}
	return p == canonicalPath(p)
}

// canonicalPath cleans p as the router does: one leading slash, no "." or
// ".." elements, no doubled slashes, and a trailing slash kept.
func canonicalPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	return clean
}

// handleNonCanonical answers a path that is not in canonical form.
func handleNonCanonical(*api) endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		return response{}, &noRouteError{method: r.Method, path: r.URL.Path, nonCanonical: true}
	}
}

// probeMethods are the methods unrouted tries to find which ones a path
// takes.
var probeMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// unrouted answers a request that no route takes, being the router's
// catch-all "/" route: a JSON 405 with an Allow header if the path takes
// other methods, else a JSON 404. The catch-all replaces the router's
// plain-text replies without matching every request twice; only unrouted
// requests pay for the probing. A 405 on an ingest route's path is open to
// other origins, as every ingest response is.
func (a *api) unrouted() endpoint {
	return func(_ http.ResponseWriter, r *http.Request) (response, error) {
		var allow []string
		probe := *r
		ingest := false
		for _, m := range probeMethods {
			probe.Method = m
			if _, pattern := a.mux.Handler(&probe); pattern != routeUnmatched {
				allow = append(allow, m)
				ingest = ingest || a.access[pattern] == Ingest
			}
		}
		if len(allow) == 0 {
			return response{}, &noRouteError{method: r.Method, path: r.URL.Path}
		}
		slices.Sort(allow)
		return response{}, &methodError{method: r.Method, allow: strings.Join(allow, ", "), crossOrigin: ingest}
	}
}
