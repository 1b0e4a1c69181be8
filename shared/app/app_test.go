package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/internal/testsupport/smfake"
	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/secrets"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestMount(t *testing.T) {
	tests := []struct {
		target   string
		wantPath string
		wantRaw  string // EscapedPath seen by the handler
		wantBase string
	}{
		{"/", "/", "/", ""},
		{"/users", "/users", "/users", ""},
		{"/users/abc", "/users/abc", "/users/abc", ""},
		{"/admin", "/", "/", "/admin"},
		{"/admin/", "/", "/", "/admin"},
		{"/admin/users", "/users", "/users", "/admin"},
		{"/admin/users/abc/reactivate", "/users/abc/reactivate", "/users/abc/reactivate", "/admin"},
		{"/admin/users/a%2Fb", "/users/a/b", "/users/a%2Fb", "/admin"},
		{"/adminx", "/adminx", "/adminx", ""},
		{"/adminx/users", "/adminx/users", "/adminx/users", ""},
		{"/proxy/admin/users", "/proxy/admin/users", "/proxy/admin/users", ""},
		{"/admin/admin/users", "/admin/users", "/admin/users", "/admin"}, // stripped once
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			var gotPath, gotRaw, gotBase, gotQuery string
			h := app.Mount("admin", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotRaw, gotBase, gotQuery = r.URL.Path, r.URL.EscapedPath(), app.BasePath(r.Context()), r.URL.RawQuery
			}))
			r := httptest.NewRequest(http.MethodGet, tt.target+"?sort=a,b&x=%2F", nil)
			before := r.URL.Path
			h.ServeHTTP(httptest.NewRecorder(), r)
			if gotPath != tt.wantPath || gotRaw != tt.wantRaw || gotBase != tt.wantBase {
				t.Errorf("path %q escaped %q base %q; want %q %q %q", gotPath, gotRaw, gotBase, tt.wantPath, tt.wantRaw, tt.wantBase)
			}
			if gotQuery != "sort=a,b&x=%2F" {
				t.Errorf("query = %q", gotQuery)
			}
			if r.URL.Path != before {
				t.Errorf("caller's request changed: %q", r.URL.Path)
			}
		})
	}
	// With a real ServeMux behind it, both forms reach the same route.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{token}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(app.BasePath(r.Context()) + "|" + r.PathValue("token")))
	})
	h := app.Mount("admin", mux)
	for target, want := range map[string]string{"/users/t1": "|t1", "/admin/users/t1": "/admin|t1"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != 200 || w.Body.String() != want {
			t.Errorf("%s: %d %q, want %q", target, w.Code, w.Body.String(), want)
		}
	}
	if got := app.BasePath(context.Background()); got != "" {
		t.Errorf("BasePath outside Mount = %q", got)
	}
}

func TestLazyBuildsOnce(t *testing.T) {
	var builds atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	l := app.NewLazy(func(ctx context.Context) (http.Handler, error) {
		builds.Add(1)
		if _, ok := ctx.Deadline(); !ok {
			t.Error("build context has no deadline")
		}
		close(entered)
		<-release
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("built")) }), nil
	}, func(err error) { t.Errorf("fail called: %v", err) })

	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Go(func() {
			w := httptest.NewRecorder()
			l.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			codes[i], bodies[i] = w.Code, w.Body.String()
		})
	}
	<-entered
	close(release)
	wg.Wait()
	if builds.Load() != 1 {
		t.Fatalf("built %d times", builds.Load())
	}
	for i := range n {
		if codes[i] != 200 || bodies[i] != "built" {
			t.Errorf("request %d: %d %q", i, codes[i], bodies[i])
		}
	}
}

func TestLazyFailure(t *testing.T) {
	var builds, fails atomic.Int32
	var failErr error
	cause := &config.Error{Var: "GATEKEEPER", Value: "foo", Accepted: "none, proxy_key, user_token"}
	l := app.NewLazy(func(ctx context.Context) (http.Handler, error) {
		builds.Add(1)
		return nil, cause
	}, func(err error) {
		fails.Add(1)
		failErr = err
	})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			w := httptest.NewRecorder()
			l.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", w.Code)
			}
			if strings.Contains(w.Body.String(), "GATEKEEPER") {
				t.Errorf("client sees the configuration error: %q", w.Body.String())
			}
		})
	}
	wg.Wait()
	if builds.Load() != 1 || fails.Load() != 1 {
		t.Errorf("builds %d fails %d, want 1 and 1", builds.Load(), fails.Load())
	}
	if failErr != cause {
		t.Errorf("fail got %v", failErr)
	}
}

func TestDrain(t *testing.T) {
	d := app.NewDrain()
	entered := make(chan struct{})
	release := make(chan struct{})
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		w.Write([]byte("ok"))
	}))
	serve := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	if w := serve("/fast"); w.Code != 200 || d.InFlight() != 0 {
		t.Fatalf("open drain: %d, in flight %d", w.Code, d.InFlight())
	}

	slowDone := make(chan *httptest.ResponseRecorder)
	go func() { slowDone <- serve("/slow") }()
	<-entered
	if d.InFlight() != 1 {
		t.Fatalf("in flight = %d, want 1", d.InFlight())
	}
	closed := make(chan struct{})
	go func() {
		d.Close(context.Background())
		close(closed)
	}()
	// Once Close has begun, new requests are refused.
	var refused *httptest.ResponseRecorder
	for range 10000 {
		if w := serve("/fast"); w.Code == http.StatusServiceUnavailable {
			refused = w
			break
		}
		runtime.Gosched()
	}
	if refused == nil {
		t.Fatal("new requests still served while closing")
	}
	if refused.Header().Get("Connection") != "close" {
		t.Error("refusal does not close the connection")
	}
	select {
	case <-closed:
		t.Fatal("Close returned with a request in flight")
	default:
	}
	close(release)
	if w := <-slowDone; w.Code != 200 || w.Body.String() != "ok" {
		t.Errorf("in-flight request cut short: %d %q", w.Code, w.Body.String())
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once idle")
	}
	if d.InFlight() != 0 {
		t.Errorf("in flight = %d after drain", d.InFlight())
	}
}

func TestDrainCloseGivesUpAtDeadline(t *testing.T) {
	d := app.NewDrain()
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	<-entered
	c, cancel := context.WithCancel(context.Background())
	cancel()
	d.Close(c) // must return although a request is stuck
	if d.InFlight() != 1 {
		t.Errorf("in flight = %d", d.InFlight())
	}
}

// Many requests racing with Close: every one either completes fully
// before Close returns or is refused.
func TestDrainRace(t *testing.T) {
	for range 20 {
		d := app.NewDrain()
		var finished atomic.Int32
		var closedAt atomic.Int32
		closedAt.Store(-1)
		h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runtime.Gosched()
			finished.Add(1)
		}))
		var wg sync.WaitGroup
		served := atomic.Int32{}
		for range 50 {
			wg.Go(func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
				if w.Code == 200 {
					served.Add(1)
				}
			})
		}
		d.Close(context.Background())
		closedAt.Store(finished.Load())
		wg.Wait()
		if got := closedAt.Load(); got != served.Load() {
			t.Fatalf("%d requests served but only %d had finished when Close returned", served.Load(), got)
		}
	}
}

type closeCounter struct {
	*memory.Store
	closed atomic.Int32
}

func (s *closeCounter) Close(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("Close without a deadline")
	}
	s.closed.Add(1)
	return nil
}

func TestShutdownClosesStore(t *testing.T) {
	store := &closeCounter{Store: memory.New()}
	d := &app.Deps{Store: store, Drain: app.NewDrain()}
	if err := d.Shutdown(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if store.closed.Load() != 1 {
		t.Errorf("store closed %d times", store.closed.Load())
	}
}

func TestBuildMemory(t *testing.T) {
	var logs bytes.Buffer
	d, err := app.Build(ctx(t), app.Options{
		Environ:   []string{"GATEKEEPER=user_token", "ADMIN_KEY=plain-admin-key", "TOKEN_QUOTA_GPT4O=500", "LOG_LEVEL=warn"},
		LogOutput: &logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.Gatekeeper != config.ModeUserToken || d.Config.AdminKey != "plain-admin-key" {
		t.Errorf("config = %+v", d.Config)
	}
	if _, ok := d.Store.(*memory.Store); !ok {
		t.Errorf("store is %T, want *memory.Store", d.Store)
	}
	if d.Drain == nil || d.Now == nil {
		t.Error("Drain or Now missing")
	}
	if !strings.Contains(logs.String(), "GATEKEEPER_STORE=memory") || !strings.Contains(logs.String(), `"severity":"WARNING"`) {
		t.Errorf("no warning about the memory store: %q", logs.String())
	}
	if strings.Contains(logs.String(), "plain-admin-key") {
		t.Error("the admin key was logged")
	}
	// The logger honours LOG_LEVEL.
	d.Log.Info().Msg("info-line")
	if strings.Contains(logs.String(), "info-line") {
		t.Error("info written at LOG_LEVEL=warn")
	}
	// The service gives new users the configured quotas.
	u, err := d.Service().Create(ctx(t), users.Patch{})
	if err != nil {
		t.Fatal(err)
	}
	if u.TokenLimits["gpt4o"] != 500 {
		t.Errorf("new user limits = %v", u.TokenLimits)
	}
}

func TestBuildInvalidConfig(t *testing.T) {
	_, err := app.Build(ctx(t), app.Options{Environ: []string{"GATEKEEPER=foo", "ADMIN_KEY=k"}, LogOutput: &bytes.Buffer{}})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "GATEKEEPER" {
		t.Fatalf("err = %v, want *config.Error for GATEKEEPER", err)
	}
}

func TestBuildSharedStore(t *testing.T) {
	environ := []string{"GATEKEEPER_STORE=firebase_rtdb", "FIREBASE_RTDB_URL=https://x-default-rtdb.firebaseio.com"}
	if _, err := app.Build(ctx(t), app.Options{Environ: environ, LogOutput: &bytes.Buffer{}}); err == nil {
		t.Error("firebase_rtdb without an opener built")
	}
	shared := memory.New()
	var gotURL string
	d, err := app.Build(ctx(t), app.Options{
		Environ:   environ,
		LogOutput: &bytes.Buffer{},
		OpenShared: func(ctx context.Context, cfg *config.Config, log zerolog.Logger) (users.Store, error) {
			gotURL = cfg.FirebaseRTDBURL
			return shared, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Store != shared || gotURL != "https://x-default-rtdb.firebaseio.com" {
		t.Errorf("store %p url %q", d.Store, gotURL)
	}
	boom := errors.New("FIREBASE_RTDB_URL: cannot reach the database")
	_, err = app.Build(ctx(t), app.Options{
		Environ:   environ,
		LogOutput: &bytes.Buffer{},
		OpenShared: func(context.Context, *config.Config, zerolog.Logger) (users.Store, error) {
			return nil, boom
		},
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want the opener's error", err)
	}
}

func TestBuildResolvesSecrets(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p1", "admin-key", "1", "resolved-admin-key\n")
	srv.SetSecret("p1", "openai", "1", "sk-one,sk-two")
	srv.SetSecret("p1", "anthropic", "1", "sk-ant-old")
	srv.SetSecret("p1", "anthropic", "2", "sk-ant-new")
	d, err := app.Build(ctx(t), app.Options{
		Environ: []string{
			"GATEKEEPER=user_token",
			"ADMIN_KEY=sm://admin-key",
			"OPENAI_KEY=sm://openai",
			"ANTHROPIC_KEY=projects/p1/secrets/anthropic/versions/1",
			"MISTRAL_AI_KEY=plain-mistral",
			"GOOGLE_CLOUD_PROJECT=p1",
			"SECRET_MANAGER_EMULATOR_HOST=" + srv.Addr(),
		},
		LogOutput:     &bytes.Buffer{},
		SecretTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Config
	if c.AdminKey != "resolved-admin-key" {
		t.Errorf("AdminKey = %q", c.AdminKey)
	}
	if !slices.Equal(c.ProviderKeys[models.OpenAI], []string{"sk-one", "sk-two"}) {
		t.Errorf("OpenAI keys = %q", c.ProviderKeys[models.OpenAI])
	}
	if !slices.Equal(c.ProviderKeys[models.Anthropic], []string{"sk-ant-old"}) {
		t.Errorf("Anthropic keys = %q", c.ProviderKeys[models.Anthropic])
	}
	if !slices.Equal(c.ProviderKeys[models.MistralAI], []string{"plain-mistral"}) {
		t.Errorf("Mistral keys = %q", c.ProviderKeys[models.MistralAI])
	}
	if srv.Calls() != 3 {
		t.Errorf("Secret Manager calls = %d, want 3", srv.Calls())
	}
}

func TestResolveSecretsErrors(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p1", "admin-key", "1", "value-that-must-not-leak")
	srv.Deny("projects/p1/secrets/admin-key")
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		want    string
	}{
		{"missing", map[string]string{"PROXY_KEY": "sm://nope"}, "PROXY_KEY", "NotFound"},
		{"denied", map[string]string{"ADMIN_KEY": "sm://admin-key"}, "ADMIN_KEY", "PermissionDenied"},
		{"malformed", map[string]string{"SIGNING_KEY": "sm://a/b"}, "SIGNING_KEY", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"GOOGLE_CLOUD_PROJECT": "p1", "SECRET_MANAGER_EMULATOR_HOST": srv.Addr()}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := config.FromMap(env)
			if err != nil {
				t.Fatal(err)
			}
			err = app.ResolveSecrets(ctx(t), cfg, 5*time.Second)
			var se *secrets.Error
			if !errors.As(err, &se) || se.Var != tt.wantVar {
				t.Fatalf("err = %v, want a secrets.Error for %s", err, tt.wantVar)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.wantVar) {
				t.Errorf("message %q lacks %q or the variable", err, tt.want)
			}
			if strings.Contains(err.Error(), "value-that-must-not-leak") {
				t.Errorf("message leaks the secret: %q", err)
			}
		})
	}
}

func TestResolveSecretsWithoutReferencesCallsNothing(t *testing.T) {
	srv := smfake.Start(t)
	cfg, err := config.FromMap(map[string]string{"ADMIN_KEY": "plain", "OPENAI_KEY": "a,b", "SECRET_MANAGER_EMULATOR_HOST": srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.ResolveSecrets(ctx(t), cfg, time.Second); err != nil {
		t.Fatal(err)
	}
	if srv.Calls() != 0 || srv.Conns() != 0 {
		t.Errorf("contacted Secret Manager: %d calls, %d conns", srv.Calls(), srv.Conns())
	}
	if cfg.AdminKey != "plain" || !slices.Equal(cfg.ProviderKeys[models.OpenAI], []string{"a", "b"}) {
		t.Errorf("values changed: %q %q", cfg.AdminKey, cfg.ProviderKeys[models.OpenAI])
	}
}

func TestDecodeFirebaseKey(t *testing.T) {
	if b, err := app.DecodeFirebaseKey(""); b != nil || err != nil {
		t.Errorf("empty: %q %v, want nil, nil (ADC)", b, err)
	}
	json := `{"type":"service_account"}`
	b, err := app.DecodeFirebaseKey(base64.StdEncoding.EncodeToString([]byte(json)))
	if err != nil || string(b) != json {
		t.Errorf("valid: %q %v", b, err)
	}
	const bad = "not base64 at all: secret-ish!"
	_, err = app.DecodeFirebaseKey(bad)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "FIREBASE_KEY" {
		t.Fatalf("err = %v, want *config.Error for FIREBASE_KEY", err)
	}
	if strings.Contains(err.Error(), bad) {
		t.Errorf("message leaks the value: %q", err)
	}
}
