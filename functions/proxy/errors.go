package proxy

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// titles are the x-oai-proxy-error titles of the application error codes;
// their statuses come from the one table, web.Status, and their bodies
// from each provider's error shape.
var titles = map[users.Code]string{
	users.CodeInvalid:      "Bad request",
	users.CodeUnauthorized: "Unauthorized",
	users.CodeForbidden:    "Forbidden",
	users.CodeNotFound:     "Not found",
	web.CodeUnknownRoute:   "Unknown route",
	users.CodeTooLarge:     "Request too large",
	users.CodeUnsupported:  "Unsupported media type",
	users.CodeQuota:        "Quota exceeded",
	users.CodeRateLimited:  "Rate limited",
	users.CodeConcurrency:  "Too many concurrent requests",
	web.CodeBadGateway:     "Upstream unreachable",
	web.CodeTimeout:        "Upstream timeout",
	web.CodeNotServed:      "Provider not served",
	users.CodeUnavailable:  "Service unavailable",
	users.CodeInternal:     "Internal error",
}

// errorKind is how one application error is shown.
type errorKind struct {
	status int
	title  string
}

func kindOf(c users.Code) errorKind {
	title, ok := titles[c]
	if !ok {
		c, title = users.CodeInternal, titles[users.CodeInternal]
	}
	return errorKind{status: web.Status(c), title: title}
}

// Headers of proxy-made errors.
const (
	headerError       = "X-Oai-Proxy-Error"
	headerErrorStatus = "X-Oai-Proxy-Error-Status"
)

// writeError answers a proxy-made error in the provider's shape, or as a
// fake completion with ERROR_FORMAT=completion where the route has one.
func (x *exchange) writeError(err error, rate *ratelimit.Decision) {
	e := users.AsError(err)
	k := kindOf(e.Code)
	x.log.SetError(e.Message)
	if e.Err != nil {
		x.h.log.Warn().Err(e.Err).Str("route", x.ep.Route).Msg("proxy request failed")
	}
	h := x.w.Header()
	h.Set(headerError, k.title)
	h.Set(headerErrorStatus, strconv.Itoa(k.status))
	if rate != nil {
		setRateHeaders(h, *rate)
	}
	if e.RetryAfterSeconds > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	}
	if k.status == http.StatusTooManyRequests {
		// The OpenAI and Anthropic SDKs retry a 429 unless told not to:
		// a quota refusal never clears by retrying, and a limit says when
		// it clears in Retry-After, for the user to decide.
		h.Set("X-Should-Retry", "false")
	}
	if x.h.cfg.ErrorFormat == config.ErrorsCompletion && x.ep.Format != nil && x.ep.Format.Fake != nil {
		ct, body := x.ep.Format.Fake(x.fakeAnswer(errorText(k, e)))
		h.Set("Content-Type", ct)
		h.Del("Content-Length")
		x.w.WriteHeader(http.StatusOK)
		_, _ = x.w.Write(body)
		return
	}
	writeErrorBody(x.w, x.prov, x.ep, k, e)
}

// writeErrorBody writes e with its status, in the shape of the API the
// client speaks on ep.
func writeErrorBody(w http.ResponseWriter, prov *providers.Provider, ep providers.Endpoint, k errorKind, e *users.Error) {
	errorBody := prov.ErrorBody
	if t := ep.Translate; t != nil && t.ErrorBody != nil {
		errorBody = t.ErrorBody // the client speaks the route's API
	}
	body := errorBody(k.status, e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(k.status)
	_, _ = w.Write(body)
}

// Unavailable answers a proxy request the instance cannot serve (it is
// shutting down, or could not start: a lifecycle.Refusal) as every
// proxy-made error is answered: 503, the x-oai-proxy-error headers, and a
// body in the shape of the API the path speaks (in either error format:
// there may be no configuration to read). It needs no handler, since the
// instance may have none. The path may start with the function's name.
func Unavailable(w http.ResponseWriter, r *http.Request, message string) {
	prov, ep := providers.Fallback(), providers.Endpoint{}
	for _, path := range []string{r.URL.Path, strings.TrimPrefix(r.URL.Path, "/proxy")} {
		if p, rest, ok := providers.Mount(path, mounts()); ok {
			prov = p
			ep, _, _ = p.Resolve(r.Method, rest)
			break
		}
	}
	k := kindOf(users.CodeUnavailable)
	h := w.Header()
	h.Set(headerError, k.title)
	h.Set(headerErrorStatus, strconv.Itoa(k.status))
	writeErrorBody(w, prov, ep, k, &users.Error{Code: users.CodeUnavailable, Message: message})
}

// mounts are the providers by mount name, for Unavailable.
var mounts = sync.OnceValue(func() map[string]*providers.Provider {
	m := map[string]*providers.Provider{}
	for _, p := range providers.All() {
		m[string(p.ID)] = p
	}
	return m
})

// errorText is the error as a fake completion shows it.
func errorText(k errorKind, e *users.Error) string {
	s := "[tollgate] " + k.title + " (" + strconv.Itoa(k.status) + "): " + e.Message
	if e.Code == users.CodeQuota {
		s += " Quota: " + strconv.FormatInt(e.Quota, 10) + ", used: " + strconv.FormatInt(e.Used, 10) +
			", requested: " + strconv.FormatInt(e.Requested, 10) + "."
	}
	return s
}

// setRateHeaders reports the rate limit; absent when none applies.
func setRateHeaders(h http.Header, d ratelimit.Decision) {
	if d.Limit <= 0 {
		return
	}
	// Every admitted request carries these headers: one backing array for
	// the three values, and one string holding all three numbers.
	var buf [3 * 20]byte
	b := strconv.AppendInt(buf[:0], int64(d.Limit), 10)
	ends := [3]int{len(b)}
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	ends[1] = len(b)
	b = strconv.AppendInt(b, d.Reset.Unix(), 10)
	ends[2] = len(b)
	all := string(b)
	v := []string{all[:ends[0]], all[ends[0]:ends[1]], all[ends[1]:ends[2]]}
	for i, k := range rateHeaders {
		h[k] = v[i : i+1 : i+1]
	}
}

// rateHeaders are setRateHeaders' names, canonical.
var rateHeaders = [...]string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"}
