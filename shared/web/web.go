// Package web holds what the admin API, the admin UI and the self-service
// page share at the HTTP edge: what a function is built from, one mapping
// of application errors to statuses, and how numbers and dates are shown.
package web

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// Codes of the edges alone: a user store never fails with them.
const (
	CodeMethodNotAllowed users.Code = "method_not_allowed" // 405: the route exists under other methods
	CodeUnknownRoute     users.Code = "unknown_route"      // 404: no such proxy route
	CodeNotServed        users.Code = "not_served"         // 503: the provider has no key
	CodeBadGateway       users.Code = "bad_gateway"        // 502: the upstream failed
	CodeTimeout          users.Code = "timeout"            // 504: the upstream is too slow
	CodeStaleVersion     users.Code = "stale_version"      // 412: If-Match names a version no longer stored
)

// statuses is the one table of the edges (the proxy, the admin API, the
// admin UI and the lookup page) from application error codes to
// HTTP statuses.
var statuses = map[users.Code]int{
	CodeMethodNotAllowed:   http.StatusMethodNotAllowed,
	users.CodeInvalid:      http.StatusBadRequest,
	users.CodeUnauthorized: http.StatusUnauthorized,
	users.CodeForbidden:    http.StatusForbidden,
	users.CodeNotFound:     http.StatusNotFound,
	CodeUnknownRoute:       http.StatusNotFound,
	users.CodeConflict:     http.StatusConflict,
	CodeStaleVersion:       http.StatusPreconditionFailed,
	users.CodeTooLarge:     http.StatusRequestEntityTooLarge,
	users.CodeUnsupported:  http.StatusUnsupportedMediaType,
	users.CodeRateLimited:  http.StatusTooManyRequests,
	users.CodeQuota:        http.StatusTooManyRequests,
	users.CodeConcurrency:  http.StatusTooManyRequests,
	users.CodeUnavailable:  http.StatusServiceUnavailable,
	CodeNotServed:          http.StatusServiceUnavailable,
	CodeTimeout:            http.StatusGatewayTimeout,
	CodeBadGateway:         http.StatusBadGateway,
}

// Status maps an application error code to its HTTP status; an unknown
// code is an internal error.
func Status(c users.Code) int {
	if s, ok := statuses[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Failure is how an edge shows err: the application error, its status,
// the message a client may see (an internal error shows nothing of its
// cause), and the redacted text for the request's log line (the cause,
// for a 5xx).
func Failure(err error) (e *users.Error, status int, msg, logText string) {
	e = AsError(err)
	status = Status(e.Code)
	msg = e.Message
	if status == http.StatusInternalServerError {
		msg = "Internal error."
	}
	logText = logging.Redact(msg)
	if status >= 500 {
		logText = logging.Redact(e.Error())
	}
	return e, status, msg, logText
}

// LockedOut reports whether key is locked out at now and, if so, sets
// Retry-After and returns the wait in whole seconds (at least 1).
func LockedOut(w http.ResponseWriter, l *ratelimit.Lockout, key string, now time.Time) (secs int, locked bool) {
	locked, wait := l.Locked(key, now)
	if !locked {
		return 0, false
	}
	secs = max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return secs, true
}

// BeginAttempt is LockedOut for an attempt that counts as a failure from
// the moment it arrives (ratelimit.Lockout.Begin), so that attempts sent
// at once cannot together pass the limit while each waits on the store;
// the caller cancels it once it turns out well.
func BeginAttempt(w http.ResponseWriter, l *ratelimit.Lockout, key string, now time.Time) (a ratelimit.Attempt, secs int, locked bool) {
	a, locked, wait := l.Begin(key, now)
	if !locked {
		return a, 0, false
	}
	secs = max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return a, secs, true
}

// PageReadsPerMinute is how many requests that read the user store (a
// token looked up, renamed, or asked to be refreshed) one client address
// may make of a user page per minute on one instance: far more than a
// person using the page makes, few enough that a client looping on a
// token it holds costs the database little.
const PageReadsPerMinute = 30

// PageReadLimited counts a store-reading request of a user page from the
// client address ip (an IPv6 /64 is one, as for the lockouts) in w, and
// reports whether it is over PageReadsPerMinute; if so it sets
// Retry-After and returns the wait in whole seconds (at least 1), and the
// request is not counted.
func PageReadLimited(rw http.ResponseWriter, w *ratelimit.Window, ip string, now time.Time) (secs int, limited bool) {
	d := w.Allow(netutil.ClientKey(ip), PageReadsPerMinute, now)
	if d.Allowed {
		return 0, false
	}
	secs = max(1, int(math.Ceil(d.RetryIn.Seconds())))
	rw.Header().Set("Retry-After", strconv.Itoa(secs))
	return secs, true
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

// PageHeaders sets what every HTML page of tollgate sends: no sniffing,
// no framing, no referrer, and its content security policy.
func PageHeaders(h http.Header, csp string) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", csp)
}

// CrossSite reports whether a browser says r was sent from a page of
// another site: Sec-Fetch-Site "cross-site" or "same-site" (another
// origin under the same registrable domain). A form or a no-cors fetch
// of another site reaches a page without a preflight; the user pages,
// which post only to themselves, refuse such a post before it counts
// against the visitor's address. A client that sends no Sec-Fetch-Site
// (API tools, browsers older than 2023) is not judged: comparing Origin
// with Host instead would refuse legitimate posts behind Firebase
// Hosting, where the function sees its own host.
func CrossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// CrossSiteMessage is what a page answers a post CrossSite refuses.
const CrossSiteMessage = "This form was sent from another site; open this page and send it from here."

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
