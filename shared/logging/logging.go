// Package logging writes zerolog JSON in Cloud Logging's shape: severity,
// message, the trace from X-Cloud-Trace-Context, and one line per request.
// Tokens are only ever logged as their last four characters.
package logging

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/internal/ctxval"
)

// Cloud Logging reads these names; zerolog's are process-wide settings, so
// they are set once here, before any logger exists.
func init() {
	zerolog.LevelFieldName = "severity"
	zerolog.MessageFieldName = "message"
	zerolog.TimestampFieldName = "time"
	zerolog.TimeFieldFormat = time.RFC3339Nano
	zerolog.LevelFieldMarshalFunc = severity
}

func severity(l zerolog.Level) string {
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return "DEBUG"
	case zerolog.InfoLevel:
		return "INFO"
	case zerolog.WarnLevel:
		return "WARNING"
	case zerolog.ErrorLevel:
		return "ERROR"
	case zerolog.FatalLevel:
		return "CRITICAL"
	case zerolog.PanicLevel:
		return "ALERT"
	default:
		return "DEFAULT"
	}
}

// New returns a JSON logger writing to w at level (a zerolog level name;
// info when unknown).
func New(w io.Writer, level string) zerolog.Logger {
	return zerolog.New(w).Level(parseLevel(level)).With().Timestamp().Logger()
}

// parseLevel reads zerolog's level names. zerolog.ParseLevel cannot be
// used: it compares with LevelFieldMarshalFunc, which init replaced with
// Cloud Logging's severities, so "warn" or "trace" would not parse.
func parseLevel(level string) zerolog.Level {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "trace":
		return zerolog.TraceLevel
	case "debug":
		return zerolog.DebugLevel
	case "warn":
		return zerolog.WarnLevel
	case "error":
		return zerolog.ErrorLevel
	case "fatal":
		return zerolog.FatalLevel
	case "panic":
		return zerolog.PanicLevel
	case "disabled":
		return zerolog.Disabled
	default:
		return zerolog.InfoLevel
	}
}

// TokenTail is how a token appears in logs, errors and pages: its last
// four characters. It is tollgate's one token mask.
func TokenTail(token string) string {
	if token == "" {
		return ""
	}
	if len(token) <= 4 {
		return "…"
	}
	return "…" + token[len(token)-4:]
}

// TraceField is the Cloud Logging field that links a line to its trace.
const TraceField = "logging.googleapis.com/trace"

// Trace turns an X-Cloud-Trace-Context header ("TRACE_ID/SPAN_ID;o=1") into
// "projects/P/traces/TRACE_ID"; "" when absent or malformed.
func Trace(header, project string) string {
	id, _, _ := strings.Cut(header, "/")
	id, _, _ = strings.Cut(id, ";")
	if len(id) != 32 || project == "" {
		return ""
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return ""
		}
	}
	return "projects/" + project + "/traces/" + id
}

// Redact shortens every word of s that could be a token or a key (16 or
// more letters, digits, '-' or '_') to its tail: error texts can name a
// user's path or quote a credential.
func Redact(s string) string {
	var b strings.Builder
	start := 0 // of the current run of token characters
	done := 0  // s[:done] is in b
	for i := 0; i <= len(s); i++ {
		if i < len(s) && tokenChar(s[i]) {
			continue
		}
		if i-start >= 16 {
			b.WriteString(s[done:start])
			b.WriteString(TokenTail(s[start:i]))
			done = i
		}
		start = i + 1
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// RedactPath shortens to its tail everything in a path that could be a
// token, since admin routes carry tokens in the path and a client may
// paste one anywhere in a URL: a segment right after "users" (a token of
// any length), a whole segment of 16 or more letters, digits, '-' or '_',
// and, within a segment, any such run of 16 or more that holds a digit,
// '-' or '_' (models/<token>:generateContent, x:<token>, <token>.json).
// Runs of letters only inside a segment are taken for words: API
// methods such as streamGenerateContent.
func RedactPath(p string) string {
	if !needsRedaction(p) {
		return p
	}
	parts := strings.Split(p, "/")
	for i, seg := range parts {
		switch {
		case tokenLike(seg) || (i > 0 && parts[i-1] == "users" && seg != ""):
			parts[i] = TokenTail(seg)
		case hasTokenRun(seg):
			parts[i] = redactRuns(seg)
		}
	}
	return strings.Join(parts, "/")
}

// needsRedaction keeps the common case (no token in the path) free of
// allocations. A segment after "users" is a token of any length.
func needsRedaction(p string) bool {
	prev := ""
	for seg := range strings.SplitSeq(p, "/") {
		if tokenLike(seg) || (prev == "users" && seg != "") || hasTokenRun(seg) {
			return true
		}
		prev = seg
	}
	return false
}

func tokenLike(seg string) bool {
	if len(seg) < minTokenLen {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if !tokenChar(seg[i]) {
			return false
		}
	}
	return true
}

const minTokenLen = 16

func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// runs calls fn with the bounds of each maximal run of token characters
// in seg that could be a token; fn returns false to stop.
func runs(seg string, fn func(start, end int) bool) {
	for i := 0; i < len(seg); {
		if !tokenChar(seg[i]) {
			i++
			continue
		}
		j, word := i, true
		for j < len(seg) && tokenChar(seg[j]) {
			if c := seg[j]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				word = false
			}
			j++
		}
		if j-i >= minTokenLen && !word && !fn(i, j) {
			return
		}
		i = j
	}
}

func hasTokenRun(seg string) bool {
	found := false
	runs(seg, func(int, int) bool { found = true; return false })
	return found
}

// redactRuns replaces each token-like run of seg by its tail.
func redactRuns(seg string) string {
	var b strings.Builder
	last := 0
	runs(seg, func(start, end int) bool {
		b.WriteString(seg[last:start])
		b.WriteString(TokenTail(seg[start:end]))
		last = end
		return true
	})
	b.WriteString(seg[last:])
	return b.String()
}

// Request is what a handler adds to its request's log line.
type Request struct {
	mu       sync.Mutex
	route    string
	token    string // the tail
	secret   string // the whole token, only to keep it out of the path
	family   string
	tokens   int64
	errMsg   string
	clientIP string
}

type ctxKey struct{}

// FromContext returns the request's log record; a throwaway one when the
// request did not pass through Middleware, so handlers never check.
func FromContext(ctx context.Context) *Request {
	if r, ok := ctx.Value(ctxKey{}).(*Request); ok {
		return r
	}
	return &Request{}
}

// SetRoute names the matched route (a pattern, never the raw path).
func (r *Request) SetRoute(route string) { r.mu.Lock(); r.route = route; r.mu.Unlock() }

// SetToken records the user's token; only its tail is ever written, and
// the path is written without it.
func (r *Request) SetToken(token string) {
	r.mu.Lock()
	r.token, r.secret = TokenTail(token), token
	r.mu.Unlock()
}

// Conceal keeps a credential the request carried (not yet checked, so
// not recorded with SetToken) out of the line's path and error.
func (r *Request) Conceal(token string) { r.mu.Lock(); r.secret = token; r.mu.Unlock() }

// SetFamily records the model family.
func (r *Request) SetFamily(f string) { r.mu.Lock(); r.family = f; r.mu.Unlock() }

// SetTokens records the tokens charged.
func (r *Request) SetTokens(n int64) { r.mu.Lock(); r.tokens = n; r.mu.Unlock() }

// SetError records a short, secret-free reason for a failed request.
func (r *Request) SetError(msg string) { r.mu.Lock(); r.errMsg = msg; r.mu.Unlock() }

// SetClientIP records the client IP a handler already worked out, so that
// the line does not parse X-Forwarded-For again.
func (r *Request) SetClientIP(ip string) { r.mu.Lock(); r.clientIP = ip; r.mu.Unlock() }

// Middleware writes one line per request once it is done: method, path
// (never the query, which may hold a key), route, status, latency, the
// token's tail, family and tokens charged, and the trace. The path is
// written with RedactPath, and with only the tail of the request's token
// and of each of secrets (the operator's keys) found in it.
func Middleware(log zerolog.Logger, project string, clientIP func(*http.Request) string, next http.Handler, secrets ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w} // the record and its context ride along: one allocation
		rec := &sw.rec
		sw.ctx = recordCtx{Context: r.Context(), Val: rec}
		next.ServeHTTP(sw, r.WithContext(&sw.ctx))
		latency := time.Since(start)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		sw.sendComplete()
		lvl := zerolog.InfoLevel
		if status >= 500 {
			lvl = zerolog.ErrorLevel
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ip := rec.clientIP
		if ip == "" {
			ip = clientIP(r)
		}
		ev := log.WithLevel(lvl)
		if t := Trace(r.Header.Get("X-Cloud-Trace-Context"), project); t != "" {
			ev = ev.Str(TraceField, t)
		}
		keysOut := func(s string) string { // the path and the error may quote a key
			for _, k := range secrets {
				s = withoutSecret(s, k)
			}
			return withoutSecret(s, rec.secret)
		}
		method, path := clip(r.Method, maxLoggedMethod), clip(RedactPath(keysOut(r.URL.Path)), maxLoggedPath)
		var scratch [256]byte
		ev = ev.Dict("httpRequest", zerolog.Dict().
			Str("requestMethod", method).
			Str("requestUrl", path).
			Int("status", status).
			Bytes("latency", append(strconv.AppendFloat(scratch[:0], latency.Seconds(), 'f', 6, 64), 's')).
			Str("remoteIp", ip).
			Str("userAgent", clip(r.UserAgent(), maxLoggedAgent)))
		if rec.route != "" {
			ev = ev.Str("route", clip(rec.route, maxLoggedPath))
		}
		if rec.token != "" {
			ev = ev.Str("token", rec.token)
		}
		if rec.family != "" {
			ev = ev.Str("family", rec.family).Int64("tokens", rec.tokens)
		}
		if rec.errMsg != "" {
			ev = ev.Str("error", clip(keysOut(rec.errMsg), maxLoggedError))
		}
		// The message, built in a buffer of the stack rather than a string.
		msg := append(append(append(append(scratch[:0], method...), ' '), path...), ' ')
		ev.Bytes(zerolog.MessageFieldName, strconv.AppendInt(msg, int64(status), 10)).Send()
	})
}

// What a client sends (method, path, User-Agent; up to a megabyte of
// headers) and what a handler says of it (the route, the error, which may
// quote a model name) are written up to these lengths: no request makes a
// long line, which Cloud Logging bills by the byte and refuses past 256
// KiB.
const (
	maxLoggedMethod = 16
	maxLoggedPath   = 2048
	maxLoggedAgent  = 512
	maxLoggedError  = 1024
)

// clip is s cut to at most n bytes, at the start of a character, with how
// many bytes were left out.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)-cut) + " more bytes)"
}

// MinSecretLen is the shortest token or key looked for in a path: a
// shorter one matches ordinary text too often to be told apart.
const MinSecretLen = 8

// withoutSecret is p with each occurrence of secret replaced by its tail.
func withoutSecret(p, secret string) string {
	if len(secret) < MinSecretLen || !strings.Contains(p, secret) {
		return p
	}
	return strings.ReplaceAll(p, secret, TokenTail(secret))
}

// statusWriter remembers the status and passes Flush through, so streams
// are still relayed chunk by chunk.
type statusWriter struct {
	http.ResponseWriter
	status int
	rec    Request
	ctx    recordCtx
}

// recordCtx is the request's context with its record under ctxKey,
// held in the statusWriter.
type recordCtx = ctxval.Ctx[ctxKey, *Request]

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// sendComplete sends a response of announced length that the handler has
// written in full, so that the client has it while the log line is
// encoded: net/http would otherwise hold its last bytes until the handler
// returns. A response of unknown length is left for net/http to end (it
// may still give it a Content-Length, or must write the last chunk).
func (w *statusWriter) sendComplete() {
	if w.status != 0 && w.ResponseWriter.Header().Get("Content-Length") != "" {
		w.Flush()
	}
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
