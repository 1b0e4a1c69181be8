// Package e2e holds tollgate's reliability and security tests: the real
// proxy and admin handlers (proxy.New, admin.New) over hand-built
// dependencies, fake upstreams and a fake Realtime Database, driven over
// loopback HTTP. It has no non-test code.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/admin"
	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/lifecycle"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// Secrets of every stack: long and distinctive, so a leak is unmistakable.
const (
	adminKey     = "e2e-admin-key-Zq8vN3kT7wL2pX5r"
	signingKey   = "e2e-signing-key-Hc4mR9sJ1yV6bD0f"
	openAIKey    = "sk-e2e-openai-operator-Kd83Jf02La"
	anthropicKey = "sk-ant-e2e-operator-Wm27Qp91Xz"
	googleKey    = "AIza-e2e-google-operator-Tn56Gh"
	mistralKey   = "e2e-mistral-operator-Bv40Yc73Rs"
)

var allSecrets = []string{adminKey, signingKey, openAIKey, anthropicKey, googleKey, mistralKey}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// connTracker counts a server's connections by state.
type connTracker struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
}

func (c *connTracker) track(conn net.Conn, s http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == http.StateClosed || s == http.StateHijacked {
		delete(c.state, conn)
		return
	}
	c.state[conn] = s
}

// open counts connections not closed, and those of them active.
func (c *connTracker) open() (open, active int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.state {
		open++
		if s == http.StateActive {
			active++
		}
	}
	return open, active
}

// stack is one instance of each function, as function.go wires them,
// over one store and one drain, with the four fake upstreams.
type stack struct {
	t      testing.TB
	d      *instance
	proxy  *httptest.Server
	admin  *httptest.Server
	logs   *syncBuffer
	fakes  map[upstreamfake.Kind]*upstreamfake.Fake
	client *http.Client
	tr     *http.Transport
	conns  *connTracker
	record *transcript
}

// instance is what function.go builds for a function on its first request.
type instance struct {
	Store users.Store
	Drain *lifecycle.Drain
}

// Shutdown is what SIGTERM runs.
func (in *instance) Shutdown(ctx context.Context) error {
	return lifecycle.Shutdown(ctx, in.Drain, in.Store.Close)
}

type stackOptions struct {
	vars  map[string]string // override the base environment ("" deletes)
	store users.Store       // default: a new memory store
	proxy proxy.Options
	fakes map[upstreamfake.Kind]*upstreamfake.Fake // share upstreams between stacks
	now   func() time.Time
}

func startFakes(t testing.TB) map[upstreamfake.Kind]*upstreamfake.Fake {
	fakes := map[upstreamfake.Kind]*upstreamfake.Fake{}
	for _, k := range []upstreamfake.Kind{upstreamfake.OpenAI, upstreamfake.Anthropic, upstreamfake.Google, upstreamfake.Mistral} {
		fakes[k] = upstreamfake.Start(t, k)
	}
	return fakes
}

func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	fakes := o.fakes
	if fakes == nil {
		fakes = startFakes(t)
	}
	env := map[string]string{
		"GATEKEEPER":             "user_token",
		"GATEKEEPER_STORE":       "memory",
		"ADMIN_KEY":              adminKey,
		"SIGNING_KEY":            signingKey,
		"TEXT_MODEL_RATE_LIMIT":  "0",
		"USER_CONCURRENCY_LIMIT": "0",
		"OPENAI_KEY":             openAIKey,
		"ANTHROPIC_KEY":          anthropicKey,
		"GOOGLE_AI_KEY":          googleKey,
		"MISTRAL_AI_KEY":         mistralKey,
		"OPENAI_BASE_URL":        fakes[upstreamfake.OpenAI].URL,
		"ANTHROPIC_BASE_URL":     fakes[upstreamfake.Anthropic].URL,
		"GOOGLE_AI_BASE_URL":     fakes[upstreamfake.Google].URL,
		"MISTRAL_AI_BASE_URL":    fakes[upstreamfake.Mistral].URL,
	}
	for k, v := range o.vars {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	store := o.store
	if store == nil {
		store = memory.New()
	}
	now := o.now
	if now == nil {
		now = time.Now
	}
	logs := &syncBuffer{}
	log := logging.New(logs, "debug")
	d := &instance{Store: store, Drain: lifecycle.NewDrain()}
	s := &stack{t: t, d: d, logs: logs, fakes: fakes, conns: &connTracker{state: map[net.Conn]http.ConnState{}}, record: &transcript{}}

	s.proxy = httptest.NewUnstartedServer(d.Drain.Wrap(proxy.NewWithOptions(proxy.Deps{Config: cfg, Store: store, Log: log, Now: now}, o.proxy)))
	s.proxy.Config.ConnState = s.conns.track
	s.proxy.Start()
	t.Cleanup(s.proxy.Close)
	s.admin = httptest.NewServer(d.Drain.Wrap(admin.New(admin.Deps{Config: cfg, Store: store, Log: log, Now: now})))
	t.Cleanup(s.admin.Close)

	s.tr = &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 256, IdleConnTimeout: 30 * time.Second}
	s.client = &http.Client{Transport: s.tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(s.tr.CloseIdleConnections)
	return s
}

// reply is one answer, whole.
type reply struct {
	status int
	header http.Header
	body   []byte
	close  bool // the server said Connection: close
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

// transcript keeps every answer of a scenario, for scans for secrets.
type transcript struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (tr *transcript) add(req *http.Request, r reply) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	fmt.Fprintf(&tr.buf, "== %s %s -> %d\n", req.Method, req.URL.Path, r.status)
	_ = r.header.Write(&tr.buf)
	tr.buf.Write(r.body)
	tr.buf.WriteByte('\n')
}

func (tr *transcript) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.buf.String()
}

// send makes one request and reads the whole answer.
func (s *stack) send(req *http.Request) (reply, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: b, close: resp.Close}
	s.record.add(req, r)
	return r, err
}

// do is send for a request built from parts; it fails the test on a
// transport error.
func (s *stack) do(method, url, body string, header map[string]string) reply {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	r, err := s.send(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// createUser makes a user through the admin API and returns its token.
func (s *stack) createUser(body string) string {
	s.t.Helper()
	if body == "" {
		body = `{"type":"normal"}`
	}
	r := s.do(http.MethodPost, s.admin.URL+"/admin/users", body, bearer(adminKey))
	tok, _ := r.json(s.t)["token"].(string)
	if r.status != http.StatusCreated || tok == "" {
		s.t.Fatalf("create user: %d %s", r.status, r.body)
	}
	return tok
}

// user reads a user from the store of record.
func (s *stack) user(token string) *users.User {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, err := s.d.Store.Get(ctx, token)
	if err != nil {
		s.t.Fatalf("get %s: %v", token, err)
	}
	return u
}

// provCase is one provider's generation request, plain and streamed.
type provCase struct {
	kind      upstreamfake.Kind
	path      string
	body      string
	stream    string // the streamed request's body (Google: its path)
	auth      func(token string) map[string]string
	family    string
	errorPath []string // where a provider-shaped error keeps its message
}

var provCases = []provCase{
	{
		kind: upstreamfake.OpenAI, path: "/proxy/openai/v1/chat/completions",
		body:   `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"Say hello."}]}`,
		stream: `{"model":"gpt-4o","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`,
		auth:   bearer, family: "gpt4o", errorPath: []string{"error", "message"},
	},
	{
		kind: upstreamfake.Anthropic, path: "/proxy/anthropic/v1/messages",
		body:   `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"Say hello."}]}`,
		stream: `{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`,
		auth:   func(tk string) map[string]string { return map[string]string{"x-api-key": tk} },
		family: "claude", errorPath: []string{"error", "message"},
	},
	{
		kind: upstreamfake.Google, path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent",
		body:   `{"contents":[{"role":"user","parts":[{"text":"Say hello."}]}],"generationConfig":{"maxOutputTokens":100}}`,
		stream: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
		auth:   func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} },
		family: "gemini-flash", errorPath: []string{"error", "message"},
	},
	{
		kind: upstreamfake.Mistral, path: "/proxy/mistral-ai/v1/chat/completions",
		body:   `{"model":"mistral-small-latest","max_tokens":100,"messages":[{"role":"user","content":"Say hello."}]}`,
		stream: `{"model":"mistral-small-latest","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`,
		auth:   bearer, family: "mistral-small", errorPath: []string{"error", "message"},
	},
}

// streamPathBody is the streamed request's path and body.
func (pc provCase) streamPathBody() (string, string) {
	if pc.kind == upstreamfake.Google {
		return pc.stream, pc.body
	}
	return pc.path, pc.stream
}

// fullCharge is what the fakes report for one answer by default: 11
// input and 7 output tokens.
const fullCharge = 18

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// providerError checks that r is a proxy-made error in pc's provider's
// shape, with the proxy's error headers, and returns its message.
func providerError(t testing.TB, pc provCase, r reply, status int) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", pc.kind, r.status, status, r.body)
	}
	if r.header.Get("X-Oai-Proxy-Error") == "" || r.header.Get("X-Oai-Proxy-Error-Status") != fmt.Sprint(status) {
		t.Errorf("%s: proxy error headers missing: %v", pc.kind, r.header)
	}
	m := r.json(t)
	msg, _ := dig(m, pc.errorPath...).(string)
	if msg == "" {
		t.Fatalf("%s: error body not in the provider's shape: %s", pc.kind, r.body)
	}
	switch pc.kind {
	case upstreamfake.Anthropic:
		if m["type"] != "error" || dig(m, "error", "type") == nil {
			t.Errorf("anthropic error shape: %s", r.body)
		}
	case upstreamfake.Google:
		if dig(m, "error", "code") != float64(status) || dig(m, "error", "status") == nil {
			t.Errorf("google error shape: %s", r.body)
		}
	default:
		if dig(m, "error", "type") == nil {
			t.Errorf("openai error shape: %s", r.body)
		}
	}
	return msg
}

// noLeaks records the goroutine count now and, when the test ends and
// everything it started is closed (cleanups registered after this one run
// first), fails if more goroutines remain after a settling time. Call it
// first in a test.
func noLeaks(t *testing.T) {
	t.Helper()
	runtime.GC()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		n := runtime.NumGoroutine()
		for n > before && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		if n > before {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Errorf("goroutine leak: %d before, %d after the test and its servers ended:\n%s", before, n, b.String())
		}
	})
}

// waitFor polls cond (bounded): for effects of other goroutines that have
// no event to wait on, such as a handler's deferred charge.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rtdbStore opens an RTDB store on srv as one function instance would.
func rtdbStore(t testing.TB, srv *rtdbfake.Server, flushEvery, callTimeout time.Duration, logs io.Writer) *rtdb.Store {
	t.Helper()
	return openRTDB(t, srv, rtdb.Options{CacheTTL: 5 * time.Second, FlushEvery: flushEvery, CallTimeout: callTimeout}, logs)
}

// openRTDB opens a store on srv with o (its URL and log set here).
func openRTDB(t testing.TB, srv *rtdbfake.Server, o rtdb.Options, logs io.Writer) *rtdb.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	o.URL = srv.URL()
	o.Logf = func(format string, args ...any) { fmt.Fprintf(logs, "rtdb: "+format+"\n", args...) }
	s, err := rtdb.Open(ctx, o)
	if err != nil {
		t.Fatalf("rtdb.Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// clearEmulatorEnv keeps a developer's real emulator setting away from
// the fake database.
func clearEmulatorEnv(t *testing.T) {
	if os.Getenv("FIREBASE_DATABASE_EMULATOR_HOST") != "" {
		t.Setenv("FIREBASE_DATABASE_EMULATOR_HOST", "")
	}
}
