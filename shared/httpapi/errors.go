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

// status is the one mapping from errors to HTTP statuses and the message a
// client sees. Anything it does not know is a 500 whose cause stays in the
// log, never in the response.
func status(err error) (int, string) {
	var (
		req      *requestError
		field    *adcount.FieldError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &req):
		return http.StatusBadRequest, req.message
	case errors.As(err, &field):
		return http.StatusBadRequest, field.Error()
	case errors.Is(err, adcount.ErrInvalid):
		return http.StatusBadRequest, "invalid input"
	case errors.Is(err, errNoCredentials):
		return http.StatusUnauthorized, errNoCredentials.Error()
	case errors.Is(err, errWrongCredentials):
		return http.StatusForbidden, errWrongCredentials.Error()
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "request body is larger than " + strconv.Itoa(MaxBodyBytes) + " bytes"
	case errors.Is(err, adcount.ErrNotFound):
		return http.StatusNotFound, "campaign not found"
	case errors.Is(err, adcount.ErrConflict):
		return http.StatusConflict, "a campaign with this id already exists"
	case errors.Is(err, adcount.ErrNotStarted):
		return http.StatusConflict, "campaign has not started yet; impressions count from its start_time"
	case errors.Is(err, adcount.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "the store is unavailable; nothing was recorded, retry the same request"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

// fail answers err with its status. Server-side failures are logged with
// their full cause; a 503 also tells the client when to retry, and a 401
// how to authenticate.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, message := status(err)
	if code >= http.StatusInternalServerError {
		a.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	switch code {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="adcount admin"`)
	}
	writeError(w, code, message)
}
