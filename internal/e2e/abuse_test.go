package e2e

import (
	"bytes"
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
)

// clock is the injected time of a stack; tests move it, nothing sleeps.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// from makes a request look as if it came from ip through one trusted
// proxy (TRUSTED_PROXIES=1; the test's own peer is 127.0.0.1).
func from(ip string, h map[string]string) map[string]string {
	out := map[string]string{"X-Forwarded-For": ip}
	for k, v := range h {
		out[k] = v
	}
	return out
}

// Guessing the admin key: after 5 wrong keys an address is locked out
// (429 with Retry-After) even with the right key, while other addresses
// are not; wrong keys in any spelling count; the lockout decays.
func TestAdminBruteForceLockout(t *testing.T) {
	noLeaks(t)
	clk := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := newStack(t, stackOptions{now: clk.Now})
	url := s.admin.URL + "/admin/users"
	attacker, other := "203.0.113.66", "198.51.100.7"
	for i, auth := range []string{"Bearer guess-1", "bearer guess-2", "BEARER  guess-3 ", "Bearer " + adminKey + "x", "Bearer " + strings.ToUpper(adminKey)} {
		r := s.do(http.MethodGet, url, "", from(attacker, map[string]string{"Authorization": auth}))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: %d %s", i, r.status, r.body)
		}
	}
	for _, key := range []string{"guess-6", adminKey} {
		r := s.do(http.MethodGet, url, "", from(attacker, bearer(key)))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Fatalf("locked-out address with key %q: %d (Retry-After %q) %s", key[:4], r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if r := s.do(http.MethodGet, url, "", from(other, bearer(adminKey))); r.status != http.StatusOK {
		t.Fatalf("another address was locked out too: %d %s", r.status, r.body)
	}
	// The UI's login form is behind the same lockout: the right key,
	// posted with a valid form, is refused too.
	if r := s.uiLogin(attacker, adminKey); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("UI login with the right key from a locked-out address: %d", r.status)
	}
	if r := s.uiLogin(other, adminKey); r.status != http.StatusSeeOther && r.status != http.StatusFound {
		t.Errorf("UI login from another address: %d %s", r.status, r.body)
	}
	clk.Advance(16 * time.Minute)
	if r := s.do(http.MethodGet, url, "", from(attacker, bearer(adminKey))); r.status != http.StatusOK {
		t.Fatalf("lockout did not decay: %d %s", r.status, r.body)
	}
	// A spray from many addresses locks out each one, no other.
	for i := range 50 {
		ip := "192.0.2." + itoa(i+1)
		for range 6 {
			s.do(http.MethodGet, url, "", from(ip, bearer("spray")))
		}
	}
	if r := s.do(http.MethodGet, url, "", from(other, bearer(adminKey))); r.status != http.StatusOK {
		t.Fatalf("a spray from other addresses locked out a good one: %d", r.status)
	}
	if strings.Contains(s.logs.String(), "guess-") || strings.Contains(s.logs.String(), "spray") {
		t.Error("guessed keys reached the log")
	}
}

// uiLogin loads the login form as a browser at ip would, then posts key
// with its session cookie and CSRF token.
func (s *stack) uiLogin(ip, key string) reply {
	s.t.Helper()
	page := s.do(http.MethodGet, s.admin.URL+"/admin/login", "", from(ip, nil))
	var cookie string
	for _, c := range (&http.Response{Header: page.header}).Cookies() {
		if c.Name == "__session" {
			cookie = c.Name + "=" + c.Value
		}
	}
	_, rest, ok := strings.Cut(string(page.body), `name="csrf" value="`)
	csrf, _, _ := strings.Cut(rest, `"`)
	if page.status != http.StatusOK || cookie == "" || !ok || csrf == "" {
		s.t.Fatalf("login page: %d, cookie %q, csrf %q", page.status, cookie, csrf)
	}
	form := url.Values{"key": {key}, "csrf": {html.UnescapeString(csrf)}}.Encode()
	return s.do(http.MethodPost, s.admin.URL+"/admin/login", form, from(ip, map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}))
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// chunked hides a body's length, so only reading it can find its size.
type chunked struct{ io.Reader }

// Oversized bodies are refused with 413 (in the provider's shape on the
// proxy), whether their length is declared or not, without reaching the
// upstream.
func TestOversizedBodies(t *testing.T) {
	noLeaks(t)
	s := newStack(t, stackOptions{})
	tok := s.createUser("")
	pc := provCases[0]
	big := func(n int) []byte {
		b := bytes.Repeat([]byte("a"), n)
		copy(b, `{"model":"gpt-4o","messages":[{"role":"user","content":"`)
		return b
	}
	cases := []struct {
		name, method, url string
		size              int
		header            map[string]string
		proxy             bool
	}{
		{"proxy", http.MethodPost, s.proxy.URL + pc.path, 32<<20 + 1, pc.auth(tok), true},
		{"admin user", http.MethodPut, s.admin.URL + "/admin/users/" + tok, 1<<20 + 1, bearer(adminKey), false},
		{"admin import", http.MethodPut, s.admin.URL + "/admin/users", 32<<20 + 1, bearer(adminKey), false},
	}
	for _, tc := range cases {
		for _, declared := range []bool{true, false} {
			name := tc.name + map[bool]string{true: "/declared", false: "/chunked"}[declared]
			t.Run(name, func(t *testing.T) {
				before := s.fakes[pc.kind].Count()
				var body io.Reader = bytes.NewReader(big(tc.size))
				if !declared {
					body = chunked{body}
				}
				req, _ := http.NewRequestWithContext(context.Background(), tc.method, tc.url, body)
				req.Header.Set("Content-Type", "application/json")
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				r, err := s.send(req)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				if tc.proxy {
					providerError(t, pc, r, http.StatusRequestEntityTooLarge)
				} else if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), "too large") {
					t.Fatalf("%d %s", r.status, r.body)
				}
				if n := s.fakes[pc.kind].Count(); n != before {
					t.Error("an oversized body reached the upstream")
				}
			})
		}
	}
	if u := s.user(tok); u.PromptCount != 0 || u.Nickname != "" {
		t.Errorf("an oversized request changed the user: %+v", u)
	}
}

// A token sent in the query (Google style, ?key=) or in the path is never
// logged whole, on any route, accepted or refused, and never forwarded.
func TestTokensNeverLogged(t *testing.T) {
	noLeaks(t)
	s := newStack(t, stackOptions{})
	tok := s.createUser("")
	unknown := "0f3c2a9e-5b7d-4e21-9a8b-c6d5e4f3a2b1"
	g := provCases[2]
	for _, path := range []string{
		g.path + "?key=" + tok,
		g.path + "?alt=sse&key=" + tok + "&x=1",
		g.path + "?k%65y=" + tok,
		g.path + "?key=" + unknown,
		"/proxy/google-ai/v1beta/models?key=" + tok,
		"/proxy/google-ai/v1beta/models/" + tok + "?key=" + tok,
		"/proxy/nowhere/" + tok + "?key=" + tok,
		"/proxy/openai/v1/chat/completions?key=" + tok,
		"/proxy/user/lookup?token=" + tok,
	} {
		s.do(http.MethodPost, s.proxy.URL+path, g.body, nil)
		s.do(http.MethodGet, s.proxy.URL+path, "", nil)
	}
	for _, path := range []string{"/admin/users/" + tok, "/admin/users/" + tok + "/reactivate", "/admin/users/" + unknown, "/admin/users?key=" + tok} {
		s.do(http.MethodGet, s.admin.URL+path, "", bearer(adminKey))
		s.do(http.MethodGet, s.admin.URL+path, "", bearer("wrong"))
	}
	s.settle()
	logs := s.logs.String()
	for _, secret := range []string{tok, unknown} {
		if strings.Contains(logs, secret) {
			t.Errorf("a token reached the log:\n%s", logs)
		}
	}
	if !strings.Contains(logs, tok[len(tok)-4:]) {
		t.Error("the log does not even show the token's tail: is anything logged?")
	}
	for k, f := range s.fakes {
		for _, r := range f.Requests() {
			// (The path may hold it: one request above names it as a model.)
			if strings.Contains(r.RawQuery, tok) || r.Key == tok {
				t.Errorf("upstream %s saw the user's token: %s?%s", k, r.Path, r.RawQuery)
			}
		}
	}
}

// A scenario touching every route, success and failure, records every
// answer (headers and bodies) and every log line: no operator secret
// (ADMIN_KEY, SIGNING_KEY, provider keys) appears in any of them, even
// when upstreams quote the key in their errors.
func TestSecretsNeverEchoed(t *testing.T) {
	noLeaks(t)
	s := newStack(t, stackOptions{vars: map[string]string{"OPENAI_KEY": openAIKey + ",sk-e2e-second-openai-key-Lp20"}})
	tok := s.createUser("")
	// Upstreams quote the key in their errors, as OpenAI's own do: relayed
	// errors (400, 429 on the only key) and keys set aside (401, 403).
	s.fakes[upstreamfake.OpenAI].Set(upstreamfake.Behavior{KeyStatus: map[string]int{openAIKey: 400, "sk-e2e-second-openai-key-Lp20": 400}})
	s.fakes[upstreamfake.Anthropic].Set(upstreamfake.Behavior{KeyStatus: map[string]int{anthropicKey: 401}})
	s.fakes[upstreamfake.Google].Set(upstreamfake.Behavior{KeyStatus: map[string]int{googleKey: 403}})
	s.fakes[upstreamfake.Mistral].Set(upstreamfake.Behavior{KeyStatus: map[string]int{mistralKey: 429}})
	for _, pc := range provCases {
		path, body := pc.streamPathBody()
		s.do(http.MethodPost, s.proxy.URL+pc.path, pc.body, pc.auth(tok))
		s.do(http.MethodPost, s.proxy.URL+path, body, pc.auth(tok))
		s.do(http.MethodPost, s.proxy.URL+pc.path, pc.body, pc.auth(adminKey))
		s.do(http.MethodPost, s.proxy.URL+pc.path, pc.body, pc.auth("wrong-token"))
		s.do(http.MethodPost, s.proxy.URL+pc.path, `{"broken`, pc.auth(tok))
	}
	for _, path := range []string{"/proxy/", "/proxy/health", "/proxy/openai/v1/models", "/proxy/anthropic/v1/models", "/proxy/nowhere", "/proxy/user/lookup"} {
		s.do(http.MethodGet, s.proxy.URL+path, "", bearer(tok))
	}
	s.do(http.MethodPost, s.proxy.URL+"/proxy/user/lookup", "token="+tok, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	for _, path := range []string{"/admin/users", "/admin/users/" + tok, "/admin/openapi.yaml", "/admin", "/admin/login", "/admin/manage/users", "/admin/nowhere"} {
		s.do(http.MethodGet, s.admin.URL+path, "", bearer(adminKey))
		s.do(http.MethodGet, s.admin.URL+path, "", bearer("wrong-admin-key"))
	}
	s.do(http.MethodPut, s.admin.URL+"/admin/users/"+tok, `{"adminNote":"note","unknown":1}`, bearer(adminKey))
	s.do(http.MethodPost, s.admin.URL+"/admin/maintenance/refresh-quotas", "", bearer(adminKey))
	s.do(http.MethodPost, s.admin.URL+"/admin/login", "key=wrong", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	s.settle()

	answers, logs := s.record.String(), s.logs.String()
	if !strings.Contains(answers, "[redacted]") {
		t.Error("no upstream error quoting a key was relayed: the scenario did not test scrubbing")
	}
	for _, secret := range append(allSecrets, "sk-e2e-second-openai-key-Lp20") {
		if i := strings.Index(answers, secret); i >= 0 {
			t.Errorf("an answer carries a secret: …%s…", answers[max(0, i-300):min(len(answers), i+100)])
		}
		if i := strings.Index(logs, secret); i >= 0 {
			t.Errorf("the log carries a secret: …%s…", logs[max(0, i-300):min(len(logs), i+100)])
		}
	}
	if strings.Contains(logs, tok) {
		t.Error("the log carries a whole user token")
	}
}

// Open CORS is the proxy's alone: browsers may call the proxy from any
// origin, never the admin API or UI (no Access-Control-Allow-Origin on any
// admin answer, preflight included). An upstream's own CORS headers are
// not relayed.
func TestCORSOnlyOnTheProxy(t *testing.T) {
	noLeaks(t)
	upstream := brokenUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "https://evil.example")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	})
	s := newStack(t, stackOptions{vars: map[string]string{"OPENAI_BASE_URL": upstream}})
	tok := s.createUser("")
	origin := map[string]string{"Origin": "https://evil.example"}
	withOrigin := func(h map[string]string) map[string]string {
		out := map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	// The proxy: open to every origin, preflight included.
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/proxy/health", ""},
		{http.MethodOptions, "/proxy/openai/v1/chat/completions", ""},
		{http.MethodPost, "/proxy/openai/v1/chat/completions", provCases[0].body},
	} {
		r := s.do(c.method, s.proxy.URL+c.path, c.body, withOrigin(bearer(tok)))
		if r.header.Get("Access-Control-Allow-Origin") != "*" || r.status >= 400 {
			t.Errorf("proxy %s %s: %d, Access-Control-Allow-Origin %q", c.method, c.path, r.status, r.header.Get("Access-Control-Allow-Origin"))
		}
		if v := r.header.Get("Access-Control-Allow-Credentials"); v != "" {
			t.Errorf("proxy %s %s relays Access-Control-Allow-Credentials %q", c.method, c.path, v)
		}
	}
	// Admin: never.
	for _, c := range []struct{ method, path string }{
		{http.MethodOptions, "/admin/users"}, {http.MethodGet, "/admin/users"}, {http.MethodGet, "/admin/users/" + tok},
		{http.MethodPost, "/admin/users"}, {http.MethodGet, "/admin/openapi.yaml"}, {http.MethodGet, "/admin"},
		{http.MethodGet, "/admin/login"}, {http.MethodOptions, "/admin/login"}, {http.MethodGet, "/admin/static/style.css"},
		{http.MethodGet, "/admin/nowhere"},
	} {
		for _, h := range []map[string]string{withOrigin(bearer(adminKey)), withOrigin(nil), origin} {
			r := s.do(c.method, s.admin.URL+c.path, "", h)
			for k := range r.header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-") {
					t.Errorf("admin %s %s answers %s: %q", c.method, c.path, k, r.header.Get(k))
				}
			}
		}
	}
}
