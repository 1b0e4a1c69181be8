package proxy

import (
	"net/http"
	"strconv"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// errorKind is how one application error code is shown: the one place
// that maps codes to HTTP statuses on the proxy.
type errorKind struct {
	status    int
	title     string // x-oai-proxy-error
	openai    string // OpenAI error type
	anthropic string // Anthropic error type
}

var errorKinds = map[users.Code]errorKind{
	users.CodeInvalid:      {http.StatusBadRequest, "Bad request", "invalid_request_error", "invalid_request_error"},
	users.CodeUnauthorized: {http.StatusUnauthorized, "Unauthorized", "invalid_request_error", "authentication_error"},
	users.CodeForbidden:    {http.StatusForbidden, "Forbidden", "permission_error", "permission_error"},
	users.CodeNotFound:     {http.StatusNotFound, "Not found", "invalid_request_error", "not_found_error"},
	users.CodeUnknownRoute: {http.StatusNotFound, "Unknown route", "invalid_request_error", "not_found_error"},
	users.CodeTooLarge:     {http.StatusRequestEntityTooLarge, "Request too large", "invalid_request_error", "request_too_large"},
	users.CodeUnsupported:  {http.StatusUnsupportedMediaType, "Unsupported media type", "invalid_request_error", "invalid_request_error"},
	users.CodeQuota:        {http.StatusTooManyRequests, "Quota exceeded", "insufficient_quota", "rate_limit_error"},
	users.CodeRateLimited:  {http.StatusTooManyRequests, "Rate limited", "rate_limit_error", "rate_limit_error"},
	users.CodeConcurrency:  {http.StatusTooManyRequests, "Too many concurrent requests", "rate_limit_error", "rate_limit_error"},
	users.CodeBadGateway:   {http.StatusBadGateway, "Upstream unreachable", "server_error", "api_error"},
	users.CodeTimeout:      {http.StatusGatewayTimeout, "Upstream timeout", "server_error", "api_error"},
	users.CodeNotServed:    {http.StatusServiceUnavailable, "Provider not served", "server_error", "api_error"},
	users.CodeUnavailable:  {http.StatusServiceUnavailable, "Service unavailable", "server_error", "api_error"},
	users.CodeInternal:     {http.StatusInternalServerError, "Internal error", "server_error", "api_error"},
}

func kindOf(c users.Code) errorKind {
	if k, ok := errorKinds[c]; ok {
		return k
	}
	return errorKinds[users.CodeInternal]
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
		x.h.log.Warn().Err(e.Err).Str("route", x.ep.route).Msg("proxy request failed")
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
	if x.h.cfg.ErrorFormat == config.ErrorsCompletion && x.ep.format != nil && x.ep.format.fake != nil {
		ct, body := x.ep.format.fake(x.fakeAnswer(errorText(k, e)))
		h.Set("Content-Type", ct)
		h.Del("Content-Length")
		x.w.WriteHeader(http.StatusOK)
		_, _ = x.w.Write(body)
		return
	}
	body := x.prov.errorBody(k.status, e)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	x.w.WriteHeader(k.status)
	_, _ = x.w.Write(body)
}

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
	// One backing array for the three values: every admitted request
	// carries these headers.
	v := []string{strconv.Itoa(d.Limit), strconv.Itoa(d.Remaining), strconv.FormatInt(d.Reset.Unix(), 10)}
	h["X-Ratelimit-Limit"] = v[0:1:1]
	h["X-Ratelimit-Remaining"] = v[1:2:2]
	h["X-Ratelimit-Reset"] = v[2:3:3]
}
