// Package surge holds the domain types shared by every service: polls,
// votes, queue entries, the voter clock and error kinds.
package surge

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. They are mapped to HTTP status in one place (internal/httpx).
const (
	EINVALID      = "invalid"      // the request is malformed or names something that does not exist
	EUNAUTHORIZED = "unauthorized" // no valid session, or wrong credentials
	ENOTFOUND     = "not_found"    // the thing asked for does not exist
	ECONFLICT     = "conflict"     // the thing to create already exists, or the request clashes with what exists (an order_id taken by another order)
	ETOOLARGE     = "too_large"    // the body is over the limit
	EUNSUPPORTED  = "unsupported"  // the body's content type is not one we read
	EUNAVAILABLE  = "unavailable"  // a dependency (the local queue, the database) is down
	ERATELIMIT    = "rate_limited" // too many requests from this client; retry later
	EINTERNAL     = "internal"     // anything else
)

// Error is a domain error with a code and a message safe to show a client.
type Error struct {
	Code    string
	Message string
	Fields  map[string]string // per-field messages for validation errors
	Err     error             // the cause, if any; not shown to clients
	// RetryAfter is how long a refused client should wait before trying
	// again (a lockout's or a rate limit's remaining time); 0 if unknown.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Unavailable marks err as a passing failure of a dependency: retrying
// later may succeed.
func Unavailable(what string, err error) error {
	return &Error{Code: EUNAVAILABLE, Message: what + " unavailable", Err: err}
}

// RateLimited refuses a client that must wait retryAfter before trying again.
func RateLimited(message string, retryAfter time.Duration) error {
	return &Error{Code: ERATELIMIT, Message: message, RetryAfter: retryAfter}
}

// Errorf returns an *Error with the given code.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// RetryAfter returns the wait carried by the first *Error in err's chain, 0
// if there is none.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
