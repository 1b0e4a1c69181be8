package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/lifecycle"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

const (
	adminKey = "admin-key-for-tests-0123456789"
	// Operator keys: long enough to be recognisable if they ever leak.
	openAIKey    = "sk-operator-openai-key-0001"
	anthropicKey = "sk-ant-operator-key-0001"
	googleKey    = "AIza-operator-google-key-0001"
	mistralKey   = "mistral-operator-key-0001"
)

// env is the proxy's real handler behind an httptest.Server, with one fake
// upstream per provider and hand-built dependencies.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	d     Deps
	logs  *logBuffer
	fakes map[upstreamfake.Kind]*upstreamfake.Fake
	clock *clock
	drain *lifecycle.Drain // the server's, as the functions wrap theirs
	// origin, when set, is sent as Origin with every request, as a
	// browser client sends it.
	origin string
}

// clock is the injected time.
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

// logBuffer collects log lines and wakes waiters on each write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitLines waits until n request lines matching substr were logged: a
// request is logged once its handler has returned.
func (l *logBuffer) waitLines(t *testing.T, substr string, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		count := strings.Count(l.buf.String(), substr)
		ch := l.changed
		l.mu.Unlock()
		if count >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d log lines with %q; log:\n%s", n, substr, l.String())
		}
	}
}

// baseEnv serves every provider through its fake, with rate and
// concurrency limits off unless a test sets them.
func baseEnv(fakes map[upstreamfake.Kind]*upstreamfake.Fake) map[string]string {
	return map[string]string{
		"GATEKEEPER":             "user_token",
		"GATEKEEPER_STORE":       "memory",
		"ADMIN_KEY":              adminKey,
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
}

// newEnv starts the proxy; vars override the base environment (an empty
// value removes the variable).
func newEnv(t *testing.T, vars map[string]string, opts ...Options) *env {
	t.Helper()
	fakes := map[upstreamfake.Kind]*upstreamfake.Fake{}
	for _, k := range []upstreamfake.Kind{upstreamfake.OpenAI, upstreamfake.Anthropic, upstreamfake.Google, upstreamfake.Mistral} {
		fakes[k] = upstreamfake.Start(t, k)
	}
	vals := baseEnv(fakes)
	for k, v := range vars {
		if v == "" {
			delete(vals, k)
		} else {
			vals[k] = v
		}
	}
	cfg, err := config.FromMap(vals)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := newLogBuffer()
	clk := &clock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	d := Deps{Config: cfg, Store: memory.New(), Log: logging.New(logs, "info"), Now: clk.Now}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	var h http.Handler
	if len(opts) > 0 {
		h = NewWithOptions(d, o)
	} else {
		h = New(d)
	}
	drain := lifecycle.NewDrain()
	srv := httptest.NewServer(drain.WrapRefusing(h, Unavailable))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, d: d, logs: logs, fakes: fakes, clock: clk, drain: drain}
}

func (e *env) fake(k upstreamfake.Kind) *upstreamfake.Fake { return e.fakes[k] }

// user creates a user; patch may set its type, limits and the like.
func (e *env) user(patch users.Patch) string {
	e.t.Helper()
	u, err := (&users.Service{Store: e.d.Store, Defaults: e.d.Config.TokenQuota, Now: e.d.Now}).Create(context.Background(), patch)
	if err != nil {
		e.t.Fatalf("create user: %v", err)
	}
	return u.Token
}

func (e *env) get(token string) *users.User {
	e.t.Helper()
	u, err := e.d.Store.Get(context.Background(), token)
	if err != nil {
		e.t.Fatalf("get user: %v", err)
	}
	return u
}

// call is one plain HTTP request to the proxy.
type call struct {
	method string
	path   string // under the server, e.g. /proxy/openai/v1/chat/completions
	body   string
	header map[string]string
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, a.body)
	}
	return m
}

func (e *env) do(c call) answer {
	e.t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.method, e.srv.URL+c.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.origin != "" {
		req.Header.Set("Origin", e.origin)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the answer: %v", c.method, c.path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// bearer is the header set of an OpenAI-style client.
func bearerH(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// neverSaw fails if any upstream request carried s anywhere.
func (e *env) neverSaw(s string) {
	e.t.Helper()
	for k, f := range e.fakes {
		for _, r := range f.Requests() {
			where := ""
			for name, vals := range r.Header {
				for _, v := range vals {
					if strings.Contains(v, s) {
						where = "header " + name
					}
				}
			}
			if strings.Contains(r.RawQuery, s) {
				where = "query"
			}
			if strings.Contains(r.Path, s) {
				where = "path"
			}
			if bytes.Contains(r.Body, []byte(s)) {
				where = "body"
			}
			if where != "" {
				e.t.Errorf("upstream %s saw %q in its %s", k, s, where)
			}
		}
	}
}

// closedURL is a base URL nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func mustContain(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s does not contain %q:\n%s", what, sub, s)
	}
}

func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// streamUntil sends c as a streamed POST from a client that may leave:
// it reads the answer up to the line holding text and returns leave,
// which cancels the request and closes its body as a client going away
// does (and is done at the test's end if the test has not).
func (e *env) streamUntil(t *testing.T, c call, text, awaited string) (leave func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+c.path, strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	leave = sync.OnceFunc(func() {
		cancel()
		resp.Body.Close()
	})
	t.Cleanup(leave)
	readUntil(t, bufio.NewReader(resp.Body), text, awaited)
	return leave
}

// readUntil reads a stream's lines until one contains text; the stream
// ending first fails the test, naming what was awaited.
func readUntil(t *testing.T, br *bufio.Reader, text, awaited string) {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before %s: %v", awaited, err)
		}
		if strings.Contains(line, text) {
			return
		}
	}
}
