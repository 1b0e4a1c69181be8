package captcha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/functions/proxy/captcha"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/pow"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// cheap keeps server-side hashing fast; the browser test uses the defaults.
var cheap = pow.Params{Time: 1, MemoryKiB: 64, Threads: 1, HashLen: 32}

const ipA, ipB = "203.0.113.7", "198.51.100.9"

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newClock() *clock { return &clock{now: time.Date(2026, 12, 1, 12, 0, 30, 0, time.UTC)} }

func loadConfig(t *testing.T, vars map[string]string) *config.Config {
	t.Helper()
	env := map[string]string{
		"GATEKEEPER":           "user_token",
		"ADMIN_KEY":            "the-admin-key",
		"CAPTCHA_MODE":         "proof_of_work",
		"POW_DIFFICULTY_LEVEL": "4",
		"TOKEN_QUOTA_GPT4O":    "50000",
	}
	for k, v := range vars {
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
	return cfg
}

// testIP reads the client address from a test header.
func testIP(r *http.Request) string { return r.Header.Get("X-Test-IP") }

func newHandler(t *testing.T, cfg *config.Config, store users.Store, clk *clock) http.Handler {
	t.Helper()
	h, err := captcha.New(captcha.Options{Config: cfg, Store: store, Log: zerolog.Nop(), Now: clk.Now, ClientIP: testIP, Params: cheap})
	if err != nil {
		t.Fatalf("captcha.New: %v", err)
	}
	return h
}

// env is one handler on a memory store.
type env struct {
	t     *testing.T
	h     http.Handler
	store users.Store
	clock *clock
	cfg   *config.Config
}

func newEnv(t *testing.T, vars map[string]string) *env {
	cfg := loadConfig(t, vars)
	clk := newClock()
	store := memory.New()
	return &env{t: t, h: newHandler(t, cfg, store, clk), store: store, clock: clk, cfg: cfg}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

func (r reply) errorText(t *testing.T) string {
	t.Helper()
	var e struct{ Error string }
	r.decode(t, &e)
	if e.Error == "" {
		t.Fatalf("no error message in %d %s", r.status, r.body)
	}
	return e.Error
}

func do(t *testing.T, h http.Handler, method, path, ip string, body any) reply {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd).WithContext(context.Background())
	req.Header.Set("X-Test-IP", ip)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return reply{rec.Code, rec.Header(), rec.Body.Bytes()}
}

type challenge struct {
	Challenge string        `json:"challenge"`
	Params    pow.Challenge `json:"params"`
	Work      int64         `json:"work"`
}

func getChallenge(t *testing.T, h http.Handler, ip string, req map[string]string) challenge {
	t.Helper()
	r := do(t, h, http.MethodPost, "/user/captcha/challenge", ip, req)
	if r.status != http.StatusOK {
		t.Fatalf("challenge %v: %d %s", req, r.status, r.body)
	}
	var c challenge
	r.decode(t, &c)
	return c
}

func solve(t *testing.T, c challenge) string {
	t.Helper()
	s, ok := c.Params.Solve(0, 100_000)
	if !ok {
		t.Fatalf("no solution found for work %d", c.Work)
	}
	return s
}

type issued struct {
	Token       string           `json:"token"`
	ExpiresAt   int64            `json:"expiresAt"`
	MaxIPs      int64            `json:"maxIps"`
	TokenLimits map[string]int64 `json:"tokenLimits"`
	Refreshed   bool             `json:"refreshed"`
}

func verify(t *testing.T, h http.Handler, ip string, c challenge, solution string) reply {
	t.Helper()
	return do(t, h, http.MethodPost, "/user/captcha/verify", ip, map[string]string{"challenge": c.Challenge, "solution": solution})
}

// earn solves a new challenge from ip and returns the issued token.
func earn(t *testing.T, h http.Handler, ip string) issued {
	t.Helper()
	c := getChallenge(t, h, ip, map[string]string{"action": "new"})
	r := verify(t, h, ip, c, solve(t, c))
	if r.status != http.StatusOK {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	var got issued
	r.decode(t, &got)
	return got
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
