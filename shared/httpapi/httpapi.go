// Package httpapi is the JSON REST API of the impression counter, as one
// http.Handler that the local server and every Lambda function serve
// unchanged.
//
// routes.go lists every route; errors.go holds the one mapping from errors
// to statuses.
package httpapi

import (
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/adcount/impression-counter/shared/adcount"
)

// MaxBodyBytes is the largest request body accepted; a larger one gets 413.
// Every valid request fits in a small fraction of it.
const MaxBodyBytes = 64 << 10

// Option configures the handler.
type Option func(*api)

// WithLogger sets where internal errors are logged. The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(a *api) { a.logger = l }
}

// WithAdminKeys requires one of keys, sent as "Authorization: Bearer <key>",
// on the admin routes: creating and reading campaigns and reading stats.
// More than one key may be active so that keys can be rotated without
// downtime. With no keys the admin routes are open, which suits local
// development only. Impression ingest never needs a key: ad tags run in
// browsers, where a key could not be kept secret.
func WithAdminKeys(keys []string) Option {
	return func(a *api) { a.keys = newAdminKeys(keys) }
}

// WithMetrics sets where the handler reports requests, impression outcomes
// and store errors. The default discards them.
func WithMetrics(m Metrics) Option {
	return func(a *api) { a.metrics = m }
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

// WithIDGenerator sets how campaign IDs are made. The default makes random
// (version 4) UUIDs; tests may want predictable ones.
func WithIDGenerator(newID func() string) Option {
	return func(a *api) { a.newID = newID }
}

type api struct {
	store      adcount.Store
	logger     *slog.Logger
	newID      func() string
	requestIDs *requestIDs
	keys       adminKeys
	metrics    Metrics
	ops        *operations
	mux        *http.ServeMux
	root       http.Handler
}

// NewHandler returns the API over store. The handler is safe for concurrent
// use and holds no state of its own, so any number of copies may serve the
// same store.
func NewHandler(store adcount.Store, opts ...Option) http.Handler {
	a := &api{store: store, logger: slog.Default(), newID: newUUID, requestIDs: newRequestIDs(), metrics: nopMetrics{}, mux: http.NewServeMux()}
	for _, opt := range opts {
		opt(a)
	}
	a.routes()
	a.root = a.observe(a.recoverPanics(http.HandlerFunc(a.dispatch)))
	return a
}

// ServeHTTP serves one request.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.root.ServeHTTP(w, r)
}

// dispatch hands the request to the router. A path that is not in
// canonical form, such as one with "//" or "..", is a JSON 404: the router
// would redirect it with an HTML body, and API clients gain nothing from
// following that.
func (a *api) dispatch(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p != canonicalPath(p) {
		writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+p+"; paths must be in canonical form")
		return
	}
	a.mux.ServeHTTP(w, r)
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
// requests pay for the probing.
func (a *api) unrouted(w http.ResponseWriter, r *http.Request) {
	var allow []string
	probe := *r
	for _, m := range probeMethods {
		probe.Method = m
		if _, pattern := a.mux.Handler(&probe); pattern != routeUnmatched {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		writeError(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
		return
	}
	slices.Sort(allow)
	list := strings.Join(allow, ", ")
	w.Header().Set("Allow", list)
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here; allowed: "+list)
}
