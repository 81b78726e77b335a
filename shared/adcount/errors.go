package adcount

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by stores and validation. Callers test for them
// with errors.Is; the HTTP layer maps each to one status in one place.
var (
	// ErrNotFound means the campaign does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a campaign with that ID already exists.
	ErrConflict = errors.New("already exists")
	// ErrNotStarted means the campaign's start time is still in the future,
	// so the impression was not counted.
	ErrNotStarted = errors.New("campaign has not started")
	// ErrPaused means the campaign is paused: an operator stopped it, and
	// it counts nothing until it is resumed.
	ErrPaused = errors.New("campaign is paused")
	// ErrEnded means the campaign's end time has passed.
	ErrEnded = errors.New("campaign has ended")
	// ErrLimit means the store already holds as many campaigns as it is
	// configured to keep, so nothing was created. It bounds the memory a
	// flood of creates can claim.
	ErrLimit = errors.New("campaign limit reached")
	// ErrInvalid means the input broke a rule; a *FieldError says which.
	ErrInvalid = errors.New("invalid input")
	// ErrUnavailable means the store could not be reached or was throttled.
	// A remote store may still have applied the write before the failure
	// reached the caller, so the outcome is unknown; retrying the same
	// impression is safe, because the dedup key makes it count at most once.
	ErrUnavailable = errors.New("store unavailable")
)

// FieldError names the input field that broke a rule and why. It matches
// ErrInvalid under errors.Is.
type FieldError struct {
	Field   string
	Message string
}

// Error returns a sentence a client can act on, such as
// "user_id: must be at most 256 bytes".
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}

// Is makes a FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool {
	return target == ErrInvalid
}

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
