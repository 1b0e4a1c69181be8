package users

import (
	"errors"
	"fmt"
)

// Code classifies an application error; each edge maps it to a status once.
type Code string

const (
	CodeInvalid      Code = "invalid"      // 400: bad input
	CodeUnauthorized Code = "unauthorized" // 401: no or unknown credentials
	CodeForbidden    Code = "forbidden"    // 403: known but not allowed
	CodeNotFound     Code = "not_found"    // 404
	CodeConflict     Code = "conflict"     // 409
	CodeTooLarge     Code = "too_large"    // 413
	CodeUnsupported  Code = "unsupported"  // 415
	CodeQuota        Code = "quota"        // 429: token quota exhausted
	CodeRateLimited  Code = "rate_limited" // 429: too many requests
	CodeUnavailable  Code = "unavailable"  // 503: a dependency is down
	CodeInternal     Code = "internal"     // 500
	CodeConcurrency  Code = "concurrency"  // 429: too many in flight
)

// Issue points at one bad field of an input document.
type Issue struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Error is the one application error type: a code, a message safe to show
// to clients, and optional details. Err, when set, is for logs only.
type Error struct {
	Code    Code
	Message string
	Issues  []Issue
	// Quota details (CodeQuota).
	Quota, Used, Requested int64
	// RetryAfterSeconds is set for rate limits and lockouts.
	RetryAfterSeconds int
	Err               error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error with a formatted, client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err's *Error, or CodeInternal.
func ErrorCode(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}

// AsError returns err as an *Error, wrapping unknown errors as internal ones
// whose message reveals nothing.
func AsError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Code: CodeInternal, Message: "Internal error.", Err: err}
}

// ErrNotFound is returned by stores for a missing user.
var ErrNotFound = &Error{Code: CodeNotFound, Message: "User not found."}

// IsNotFound reports whether err means the user does not exist.
func IsNotFound(err error) bool { return ErrorCode(err) == CodeNotFound }
