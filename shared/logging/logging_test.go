package logging_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/logging"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestSeverityNames(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "trace")
	log.Trace().Msg("t")
	log.Debug().Msg("d")
	log.Info().Msg("i")
	log.Warn().Msg("w")
	log.Error().Msg("e")
	log.WithLevel(zerolog.FatalLevel).Msg("f") // WithLevel does not exit
	log.WithLevel(zerolog.PanicLevel).Msg("p") // nor panic
	log.Log().Msg("n")
	want := []struct{ msg, severity string }{
		{"t", "DEBUG"}, {"d", "DEBUG"}, {"i", "INFO"}, {"w", "WARNING"},
		{"e", "ERROR"}, {"f", "CRITICAL"}, {"p", "ALERT"}, {"n", ""},
	}
	got := lines(t, &buf)
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i, w := range want {
		if got[i]["message"] != w.msg {
			t.Errorf("line %d message = %v, want %q", i, got[i]["message"], w.msg)
		}
		sev, _ := got[i]["severity"].(string)
		if sev != w.severity {
			t.Errorf("line %d (%s) severity = %q, want %q", i, w.msg, sev, w.severity)
		}
		if _, ok := got[i]["level"]; ok {
			t.Errorf("line %d carries zerolog's level field too", i)
		}
		if _, ok := got[i]["time"].(string); !ok {
			t.Errorf("line %d has no time", i)
		}
	}
}

// Every LOG_LEVEL name config accepts sets that level (zerolog.ParseLevel
// would not, once severity names replace zerolog's).
func TestLevels(t *testing.T) {
	all := []zerolog.Level{zerolog.TraceLevel, zerolog.DebugLevel, zerolog.InfoLevel, zerolog.WarnLevel, zerolog.ErrorLevel, zerolog.FatalLevel, zerolog.PanicLevel}
	tests := []struct {
		level string
		min   zerolog.Level // lowest level written
	}{
		{"trace", zerolog.TraceLevel},
		{"debug", zerolog.DebugLevel},
		{"DEBUG", zerolog.DebugLevel},
		{"info", zerolog.InfoLevel},
		{"warn", zerolog.WarnLevel},
		{"error", zerolog.ErrorLevel},
		{"fatal", zerolog.FatalLevel},
		{"panic", zerolog.PanicLevel},
		{"disabled", zerolog.Disabled},
		{"", zerolog.InfoLevel},
		{"nonsense", zerolog.InfoLevel},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		log := logging.New(&buf, tt.level)
		for _, l := range all {
			log.WithLevel(l).Msg(l.String())
		}
		for _, l := range all {
			written := strings.Contains(buf.String(), `"message":"`+l.String()+`"`)
			if want := l >= tt.min; written != want {
				t.Errorf("LOG_LEVEL=%q: %s written = %v, want %v", tt.level, l, written, want)
			}
		}
	}
}

func TestTrace(t *testing.T) {
	const id = "105445aa7843bc8bf206b12000100000"
	tests := []struct {
		header, project, want string
	}{
		{id + "/1;o=1", "p1", "projects/p1/traces/" + id},
		{id, "p1", "projects/p1/traces/" + id},
		{id + ";o=1", "p1", "projects/p1/traces/" + id},
		{strings.ToUpper(id) + "/5", "p1", "projects/p1/traces/" + strings.ToUpper(id)},
		{id + "/1;o=1", "", ""},
		{"", "p1", ""},
		{"abc/1", "p1", ""},
		{strings.Replace(id, "a", "g", 1) + "/1", "p1", ""},
		{id + "0/1", "p1", ""},
	}
	for _, tt := range tests {
		if got := logging.Trace(tt.header, tt.project); got != tt.want {
			t.Errorf("Trace(%q, %q) = %q, want %q", tt.header, tt.project, got, tt.want)
		}
	}
}

func TestTokenTail(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "…"},
		{"abcd", "…"},
		{"abcde", "…bcde"},
		{"8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "…4f50"},
	}
	for _, tt := range tests {
		if got := logging.TokenTail(tt.in); got != tt.want {
			t.Errorf("TokenTail(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/openai/v1/chat/completions", "/openai/v1/chat/completions"},
		{"/admin/users", "/admin/users"},
		{"/admin/users/8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "/admin/users/…4f50"},
		{"/users/8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50/reactivate", "/users/…4f50/reactivate"},
		{"/admin/users/abcdefghijklmnop/refresh-quota", "/admin/users/…mnop/refresh-quota"},
		{"/admin/users/short-token", "/admin/users/…oken"}, // after "users": a token of any length
		{"/v1/short-seg", "/v1/short-seg"},                 // elsewhere, under 16: not token-like
		{"/google-ai/v1beta/models/gemini-2.5-flash:generateContent", "/google-ai/v1beta/models/gemini-2.5-flash:generateContent"},
		{"/a/sk_live_0123456789abcdef/b/sk_live_fedcba9876543210", "/a/…cdef/b/…3210"},
		// A token inside a segment, wherever a client put it.
		{"/google-ai/v1beta/models/8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50:generateContent", "/google-ai/v1beta/models/…4f50:generateContent"},
		{"/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent", "/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent"},
		{"/x:8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "/x:…4f50"},
		{"/8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50.json", "/…4f50.json"},
		{"/a/AIzaSyA0123456789abcdefghijklmnopqrs.x.sk-live-0123456789abcd", "/a/…pqrs.x.…abcd"},
		{"/v1/models/claude-sonnet-4-5-20250929:streamRawPredict", "/v1/models/…0929:streamRawPredict"},
		{"/v1/models/gemini-2.5-pro-preview-06-05", "/v1/models/gemini-2.…6-05"},
		{"/v1/abc:defghijklmnopqrst", "/v1/abc:defghijklmnopqrst"}, // letters only: a word
		{"/v1/a.0123456789abcde", "/v1/a.0123456789abcde"},         // 15: too short
		{"/v1/%38d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "/v1/%…4f50"},
	}
	for _, tt := range tests {
		if got := logging.RedactPath(tt.in); got != tt.want {
			t.Errorf("RedactPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMiddlewareOneLinePerRequest(t *testing.T) {
	const token = "8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50"
	const queryKey = "AIzaSy-query-secret-key-0000"
	const bearer = "sk-bearer-secret-1111"
	var buf bytes.Buffer
	log := logging.New(&buf, "info")
	h := logging.Middleware(log, "proj-1", func(r *http.Request) string { return "203.0.113.9" },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := logging.FromContext(r.Context())
			rec.SetRoute("POST /admin/users/{token}")
			rec.SetToken(token)
			rec.SetFamily("gpt4o")
			rec.SetTokens(1234)
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte("body"))
		}))
	r := httptest.NewRequest(http.MethodPost, "/admin/users/"+token+"?key="+queryKey+"&alt=sse", nil)
	r.Header.Set("Authorization", "Bearer "+bearer)
	r.Header.Set("X-Api-Key", bearer)
	r.Header.Set("X-Cloud-Trace-Context", "105445aa7843bc8bf206b12000100000/1;o=1")
	r.Header.Set("User-Agent", "curl/8")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)

	if w.Code != http.StatusTeapot || w.Body.String() != "body" {
		t.Fatalf("response %d %q", w.Code, w.Body.String())
	}
	out := buf.String()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want exactly one line, got:\n%s", out)
	}
	for _, secret := range []string{token, token[:8], queryKey, bearer, "key="} {
		if strings.Contains(out, secret) {
			t.Errorf("log line contains %q:\n%s", secret, out)
		}
	}
	m := lines(t, &buf)[0]
	if m["severity"] != "INFO" {
		t.Errorf("severity = %v", m["severity"])
	}
	if m[logging.TraceField] != "projects/proj-1/traces/105445aa7843bc8bf206b12000100000" {
		t.Errorf("trace = %v", m[logging.TraceField])
	}
	if m["route"] != "POST /admin/users/{token}" || m["token"] != "…4f50" || m["family"] != "gpt4o" || m["tokens"] != float64(1234) {
		t.Errorf("fields: %v", m)
	}
	if m["message"] != "POST /admin/users/…4f50 418" {
		t.Errorf("message = %v", m["message"])
	}
	hr, _ := m["httpRequest"].(map[string]any)
	if hr["requestMethod"] != "POST" || hr["requestUrl"] != "/admin/users/…4f50" || hr["status"] != float64(418) ||
		hr["remoteIp"] != "203.0.113.9" || hr["userAgent"] != "curl/8" {
		t.Errorf("httpRequest = %v", hr)
	}
	if lat, _ := hr["latency"].(string); !strings.HasSuffix(lat, "s") || len(lat) < 2 {
		t.Errorf("latency = %v, want Cloud Logging's duration form", hr["latency"])
	}
}

func TestMiddlewareStatusAndLevel(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		status   float64
		severity string
		errMsg   string
	}{
		{"implicit 200", func(w http.ResponseWriter, r *http.Request) {}, 200, "INFO", ""},
		{"write without header", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }, 200, "INFO", ""},
		{"first status wins", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			w.WriteHeader(500)
		}, 404, "INFO", ""},
		{"5xx is an error", func(w http.ResponseWriter, r *http.Request) {
			logging.FromContext(r.Context()).SetError("upstream timed out")
			w.WriteHeader(504)
		}, 504, "ERROR", "upstream timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := logging.Middleware(logging.New(&buf, "info"), "", func(*http.Request) string { return "" }, tt.handler)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/health", nil))
			got := lines(t, &buf)
			if len(got) != 1 {
				t.Fatalf("%d lines", len(got))
			}
			m := got[0]
			hr, _ := m["httpRequest"].(map[string]any)
			if hr["status"] != tt.status || m["severity"] != tt.severity {
				t.Errorf("status %v severity %v, want %v %s", hr["status"], m["severity"], tt.status, tt.severity)
			}
			if _, ok := m[logging.TraceField]; ok {
				t.Error("trace without a header or project")
			}
			for _, k := range []string{"token", "family", "tokens", "route"} {
				if _, ok := m[k]; ok {
					t.Errorf("unset field %s written", k)
				}
			}
			if e, _ := m["error"].(string); e != tt.errMsg {
				t.Errorf("error = %q, want %q", e, tt.errMsg)
			}
		})
	}
}

// The middleware must not break streaming: Flush and ResponseController
// reach the real writer.
func TestMiddlewareFlushes(t *testing.T) {
	var buf bytes.Buffer
	h := logging.Middleware(logging.New(&buf, "info"), "", func(*http.Request) string { return "" },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("data: 1\n\n"))
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("ResponseController.Flush: %v", err)
			}
			w.(http.Flusher).Flush()
		}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if !w.Flushed {
		t.Error("flush did not reach the recorder")
	}
}

// blockingWriter holds every log write until release is closed.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// A response of announced length reaches the client before its log line is
// written: the client does not wait for the log. One of unknown length is
// left for net/http to end, and still reaches the client.
func TestMiddlewareSendsBeforeLogging(t *testing.T) {
	for _, announced := range []bool{true, false} {
		release := make(chan struct{})
		h := logging.Middleware(logging.New(blockingWriter{release}, "info"), "", func(*http.Request) string { return "" },
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if announced {
					w.Header().Set("Content-Length", "5")
				}
				w.Write([]byte("hello"))
			}))
		srv := httptest.NewServer(h)
		got := make(chan string, 1)
		go func() {
			resp, err := http.Get(srv.URL)
			if err != nil {
				got <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- string(b)
		}()
		wait := 5 * time.Second
		if !announced {
			wait = 300 * time.Millisecond // it must not come at all
		}
		select {
		case b := <-got:
			if !announced {
				t.Errorf("unknown length: the answer %q came before the handler returned", b)
			} else if b != "hello" {
				t.Errorf("announced length: got %q", b)
			}
		case <-time.After(wait):
			if announced {
				t.Error("announced length: the client waited for the log line")
			}
		}
		close(release)
		if !announced {
			if b := <-got; b != "hello" {
				t.Errorf("unknown length: got %q", b)
			}
		}
		srv.Close()
	}
}

func TestFromContextOutsideMiddleware(t *testing.T) {
	rec := logging.FromContext(httptest.NewRequest(http.MethodGet, "/", nil).Context())
	// A throwaway record: every setter works and nothing panics.
	rec.SetRoute("r")
	rec.SetToken("t")
	rec.SetFamily("f")
	rec.SetTokens(1)
	rec.SetError("e")
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"store down", "store down"},
		{"rtdb: user 8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50: timeout", "rtdb: user …4f50: timeout"},
		{"8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "…4f50"},
		{"key sk-abcdefghijklmnop,sk-qrstuvwxyz012345.", "key …mnop,…2345."},
		{"fifteen-chars-x 16-characters-xx", "fifteen-chars-x …s-xx"},
		{"ünïcode around a_token_of_20_chars!", "ünïcode around …hars!"},
	}
	for _, tt := range tests {
		if got := logging.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzRedact: whatever the text, no run of 16 token characters survives,
// and text without one comes back unchanged.
func FuzzRedact(f *testing.F) {
	f.Add("rtdb: user 8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50: timeout")
	f.Add("short words only")
	f.Add("aaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbb")
	f.Fuzz(func(t *testing.T, s string) {
		got := logging.Redact(s)
		if longRun(got) >= 16 {
			t.Fatalf("Redact(%q) = %q keeps a token", s, got)
		}
		if longRun(s) < 16 && got != s {
			t.Fatalf("Redact(%q) = %q changed a text without tokens", s, got)
		}
	})
}

func longRun(s string) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// What a client sends (method, path, User-Agent) and what a handler says
// of it (the route, the error, which may quote the request) are clipped:
// no request makes a long line, which Cloud Logging bills by the byte
// (and refuses past 256 KiB).
func TestMiddlewareClipsWhatTheClientSends(t *testing.T) {
	var buf bytes.Buffer
	long := strings.Repeat("a", 200<<10)
	method := "POST" + strings.Repeat("X", 10<<10)
	h := logging.Middleware(logging.New(&buf, "info"), "", func(r *http.Request) string { return "203.0.113.9" },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := logging.FromContext(r.Context())
			rec.SetRoute(r.Method + " /user/lookup")
			rec.SetError("This mount serves Claude models only; \"" + long + "\" is not one.")
			w.WriteHeader(http.StatusBadRequest)
		}))
	r := httptest.NewRequest(method, "/proxy"+strings.Repeat("/a", 100<<10), nil)
	r.Header.Set("User-Agent", "é"+long)
	h.ServeHTTP(httptest.NewRecorder(), r)
	if n := buf.Len(); n > 8<<10 {
		t.Fatalf("a request of %d KiB made a log line of %d bytes", 3*len(long)>>10, n)
	}
	m := lines(t, &buf)[0]
	hr, _ := m["httpRequest"].(map[string]any)
	for name, v := range map[string]any{"requestMethod": hr["requestMethod"], "requestUrl": hr["requestUrl"],
		"userAgent": hr["userAgent"], "route": m["route"], "error": m["error"], "message": m["message"]} {
		s, _ := v.(string)
		if !strings.Contains(s, "more bytes)") || !utf8.ValidString(s) {
			t.Errorf("%s is not clipped: %.120q", name, s)
		}
	}
	if s, _ := hr["requestUrl"].(string); !strings.HasPrefix(s, "/proxy/a/a/a/") {
		t.Errorf("requestUrl lost its start: %.60q", s)
	}
}
