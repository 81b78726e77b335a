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

// problem is how the API answers an error: the status, the message a client
// sees, and a short kind for logs and metrics.
type problem struct {
	status  int
	message string
	kind    string
}

// classify is the one mapping from errors to HTTP statuses and the message a
// client sees. Anything it does not know is a 500 whose cause stays in the
// log, never in the response.
func classify(err error) problem {
	var (
		req      *requestError
		field    *adcount.FieldError
		tooLarge *http.MaxBytesError
		panicked *panicError
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
		return problem{http.StatusRequestEntityTooLarge, "request body is larger than " + strconv.Itoa(MaxBodyBytes) + " bytes", "too_large"}
	case errors.Is(err, adcount.ErrNotFound):
		return problem{http.StatusNotFound, "campaign not found", "not_found"}
	case errors.Is(err, adcount.ErrConflict):
		return problem{http.StatusConflict, "a campaign with this id already exists", "conflict"}
	case errors.Is(err, adcount.ErrNotStarted):
		return problem{http.StatusConflict, "campaign has not started yet; impressions count from its start_time", "not_started"}
	case errors.Is(err, context.DeadlineExceeded):
		return problem{http.StatusServiceUnavailable, "the store is unavailable; retry the same request: it is never counted twice", "timeout"}
	case errors.Is(err, adcount.ErrUnavailable):
		return problem{http.StatusServiceUnavailable, "the store is unavailable; retry the same request: it is never counted twice", "unavailable"}
	default:
		return problem{http.StatusInternalServerError, "internal error", "internal"}
	}
}

// fail answers err with its status. The cause goes to the request's log
// line; a store failure is counted by kind, a 503 tells the client when to
// retry, and a 401 how to authenticate.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := classify(err)
	storeFailed := false
	switch p.kind {
	case "unavailable", "timeout", "internal":
		storeFailed = true
		a.metrics.ObserveStoreError(p.kind)
	}
	if info := infoFrom(r.Context()); info != nil {
		info.err, info.kind, info.store = err, p.kind, storeFailed
	}
	switch p.status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="adcount admin"`)
	}
	writeError(w, p.status, p.message)
}
