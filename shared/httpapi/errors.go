package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/adcount/impression-counter/shared/adcount"
)

// RetryAfterSeconds is what a 503 asks the client to wait before retrying.
const RetryAfterSeconds = 1

// StatusClientClosedRequest is the status recorded, in logs and metrics,
// for a request whose client hung up before it was answered: nginx's 499.
// A client that has gone never reads it (one that only half-closed its
// connection still does); it keeps a client's behaviour out of the 5xx
// that page an operator.
const StatusClientClosedRequest = 499

// Errors of the admin key check.
var (
	// errNoCredentials means an admin route was called without a Bearer
	// token: 401, with a WWW-Authenticate challenge.
	errNoCredentials = errors.New("this route needs an admin key: send Authorization: Bearer <key>")
	// errWrongCredentials means the Bearer token is not an active admin
	// key: 403.
	errWrongCredentials = errors.New("the admin key is not valid")
)

// requestError is a problem with the request itself, found before the
// domain saw it, such as malformed JSON.
type requestError struct {
	message string
}

func (e *requestError) Error() string { return e.message }

func badRequest(message string) error { return &requestError{message: message} }

// batchTooLargeError means a batch holds more impressions than one
// request may carry: 413, naming the limit.
type batchTooLargeError struct{ limit int }

func (e *batchTooLargeError) Error() string {
	return "a batch holds at most " + strconv.Itoa(e.limit) + " impressions; send more in several batches"
}

// noRouteError means no route serves the path: 404.
type noRouteError struct {
	method, path string
	nonCanonical bool
}

func (e *noRouteError) Error() string {
	if e.nonCanonical {
		return "no route for " + e.method + " " + e.path + "; paths must be in canonical form"
	}
	return "no route for " + e.method + " " + e.path
}

// methodError means the path is served, but not for this method: 405,
// with the methods that are allowed in the Allow header.
type methodError struct {
	method, allow string
	// crossOrigin is set on an ingest route's path, whose every response
	// is open to other origins.
	crossOrigin bool
}

func (e *methodError) Error() string {
	return "method " + e.method + " is not allowed here; allowed: " + e.allow
}

// problem is how the API answers an error: the status, the message a client
// sees, and a short kind for logs and metrics.
type problem struct {
	status  int
	message string
	kind    string
}

// code is the kind a client sees in the error body: a recovered panic is
// an internal error like any other, so that a client learns nothing of
// the service's insides from it.
func (p problem) code() string {
	if p.kind == "panic" {
		return "internal"
	}
	return p.kind
}

// storeFailure reports whether the problem is a failure of the store,
// which metrics count apart.
func (p problem) storeFailure() bool {
	switch p.kind {
	case "unavailable", "timeout", "internal":
		return true
	}
	return false
}

// classify is the one mapping from errors to HTTP statuses and the message a
// client sees. Anything it does not know is a 500 whose cause stays in the
// log, never in the response.
func classify(err error) problem {
	var (
		req      *requestError
		field    *adcount.FieldError
		tooLarge *http.MaxBytesError
		tooMany  *batchTooLargeError
		panicked *panicError
		noRoute  *noRouteError
		method   *methodError
	)
	switch {
	case errors.As(err, &panicked):
		return problem{http.StatusInternalServerError, "internal error", "panic"}
	case errors.As(err, &req):
		return problem{http.StatusBadRequest, req.message, "malformed"}
	case errors.As(err, &field):
		return problem{http.StatusBadRequest, field.Error(), "invalid"}
	case errors.Is(err, adcount.ErrInvalid):
		return problem{http.StatusBadRequest, "invalid input", "invalid"}
	case errors.Is(err, errNoCredentials):
		return problem{http.StatusUnauthorized, errNoCredentials.Error(), "unauthenticated"}
	case errors.Is(err, errWrongCredentials):
		return problem{http.StatusForbidden, errWrongCredentials.Error(), "forbidden"}
	case errors.As(err, &tooLarge):
		return problem{http.StatusRequestEntityTooLarge, "request body is larger than " + strconv.FormatInt(tooLarge.Limit, 10) + " bytes", "too_large"}
	case errors.As(err, &tooMany):
		return problem{http.StatusRequestEntityTooLarge, tooMany.Error(), "too_large"}
	case errors.As(err, &noRoute):
		return problem{http.StatusNotFound, noRoute.Error(), "no_route"}
	case errors.As(err, &method):
		return problem{http.StatusMethodNotAllowed, method.Error(), "method_not_allowed"}
	case errors.Is(err, adcount.ErrNotFound):
		return problem{http.StatusNotFound, "campaign not found", "not_found"}
	case errors.Is(err, adcount.ErrConflict):
		return problem{http.StatusConflict, "a campaign with this id already exists", "conflict"}
	case errors.Is(err, adcount.ErrLimit):
		return problem{http.StatusConflict, "the store already holds its maximum number of campaigns (MAX_CAMPAIGNS); no campaign was created", "limit"}
	case errors.Is(err, adcount.ErrNotStarted):
		return problem{http.StatusConflict, "campaign has not started yet; impressions count from its start_time", "not_started"}
	case errors.Is(err, adcount.ErrPaused):
		return problem{http.StatusConflict, "campaign is paused; impressions count again once it is resumed", "paused"}
	case errors.Is(err, adcount.ErrEnded):
		return problem{http.StatusConflict, "campaign has ended; impressions after its end_time are not counted", "ended"}
	case errors.Is(err, context.Canceled):
		// Before the store's own kinds: a store call cut short by the
		// client's going is no store failure.
		return problem{StatusClientClosedRequest, "the client closed the request", "client_closed"}
	case errors.Is(err, context.DeadlineExceeded):
		return problem{http.StatusServiceUnavailable, "the store is unavailable; retry the same request: it is never counted twice", "timeout"}
	case errors.Is(err, adcount.ErrUnavailable):
		return problem{http.StatusServiceUnavailable, "the store is unavailable; retry the same request: it is never counted twice", "unavailable"}
	default:
		return problem{http.StatusInternalServerError, "internal error", "internal"}
	}
}

// fail answers err with p, its classification: a 503 tells the client when
// to retry, a 401 how to authenticate, a 405 which methods to use.
func fail(w http.ResponseWriter, err error, p problem) {
	h := w.Header()
	switch p.status {
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="adcount admin"`)
	case http.StatusMethodNotAllowed:
		var method *methodError
		if errors.As(err, &method) {
			h.Set("Allow", method.allow)
			if method.crossOrigin {
				h.Set("Access-Control-Allow-Origin", "*")
			}
		}
	}
	writeError(w, p.status, p.message, p.code())
}
