// Package web holds what the admin API, the admin UI and the self-service
// page share at the HTTP edge: one mapping of application errors to
// statuses, and how numbers and dates are shown.
package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// CodeMethodNotAllowed is a route that exists under other methods: an
// edge's code, with no meaning in the users domain.
const CodeMethodNotAllowed users.Code = "method_not_allowed"

// Status maps an application error code to its HTTP status: the one table
// of the edges.
func Status(c users.Code) int {
	switch c {
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case users.CodeInvalid:
		return http.StatusBadRequest
	case users.CodeUnauthorized:
		return http.StatusUnauthorized
	case users.CodeForbidden:
		return http.StatusForbidden
	case users.CodeNotFound, users.CodeUnknownRoute:
		return http.StatusNotFound
	case users.CodeConflict:
		return http.StatusConflict
	case users.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case users.CodeUnsupported:
		return http.StatusUnsupportedMediaType
	case users.CodeRateLimited, users.CodeQuota, users.CodeConcurrency:
		return http.StatusTooManyRequests
	case users.CodeUnavailable, users.CodeNotServed:
		return http.StatusServiceUnavailable
	case users.CodeTimeout:
		return http.StatusGatewayTimeout
	case users.CodeBadGateway:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

// AsError is users.AsError, except that a store deadline or cancellation
// is "unavailable" (503, try again) rather than an internal error.
func AsError(err error) *users.Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		var e *users.Error
		if !errors.As(err, &e) {
			return &users.Error{Code: users.CodeUnavailable, Message: "The user store did not answer in time; try again.", Err: err}
		}
	}
	return users.AsError(err)
}

// FormatNum writes n with thousands separators.
func FormatNum(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var b []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, c)
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}

// FormatTime shows an epoch-ms date in UTC, "—" when unset.
func FormatTime(ms int64) string {
	if ms == 0 {
		return "—"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04 UTC")
}
