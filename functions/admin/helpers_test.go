package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

const testKey = "adm1n-k3y-for-tests-0123456789abcdef"

// clock is the injected time; tests move it, nothing sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is the log sink; the logger may write from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// env is one admin function built by hand, as entry.go would, with fakes.
type env struct {
	t     *testing.T
	h     http.Handler
	store users.Store
	log   *syncBuffer
	clock *clock
	spec  *spec
}

type envOption func(*Deps)

func withStore(s users.Store) envOption { return func(d *Deps) { d.Store = s } }

// newEnv builds New(d) with GATEKEEPER=user_token and testKey unless vars
// say otherwise. Every response it serves is checked against openapi.yaml.
func newEnv(t *testing.T, vars map[string]string, opts ...envOption) *env {
	t.Helper()
	m := map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": testKey}
	for k, v := range vars {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	cfg, err := config.FromMap(m)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e := &env{t: t, log: &syncBuffer{}, clock: &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}}
	e.store = memory.New()
	d := &Deps{Config: cfg, Store: e.store, Log: logging.New(e.log, "info"), Now: e.clock.Now}
	for _, o := range opts {
		o(d)
	}
	e.store = d.Store
	e.h = New(*d)
	e.spec = loadSpec(t)
	return e
}

// req describes one request; the zero value is an authenticated GET from
// an allowed address.
type req struct {
	method, path string
	body         any               // marshalled unless []byte or string
	contentType  string            // default application/json when there is a body
	header       map[string]string // extra headers
	xff          []string          // X-Forwarded-For lines
	remote       string            // RemoteAddr; default 192.0.2.10:4321
	noAuth       bool
	key          string // instead of testKey
	// unknownLength sends the body without Content-Length, as a chunked
	// upload does.
	unknownLength bool
}

func (e *env) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	rec, _ := e.doRaw(r)
	return rec
}

// doRaw serves r and validates the response against the OpenAPI document.
// It returns the operation the request matched ("" for none).
func (e *env) doRaw(r req) (*httptest.ResponseRecorder, string) {
	e.t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body []byte
	switch b := r.body.(type) {
	case nil:
	case []byte:
		body = b
	case string:
		body = []byte(b)
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	hr := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
	if body == nil {
		hr.Body = http.NoBody
		hr.ContentLength = 0
	}
	if r.unknownLength {
		hr.ContentLength = -1
	}
	hr.RemoteAddr = "192.0.2.10:4321"
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	if body != nil {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	} else if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	if !r.noAuth {
		key := testKey
		if r.key != "" {
			key = r.key
		}
		hr.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	for _, v := range r.xff {
		hr.Header.Add("X-Forwarded-For", v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	op := e.spec.check(e.t, r.method, r.path, hr.Header, body, rec)
	return rec, op
}

// decode unmarshals a JSON response into v, failing the test on error.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("response %d is not JSON: %v: %s", rec.Code, err, rec.Body.String())
	}
	return v
}

type apiError struct {
	Error struct {
		Message string        `json:"message"`
		Issues  []users.Issue `json:"issues"`
	} `json:"error"`
}

// wantError asserts the status and that some issue (when path is not "")
// names path.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, code int, path string) apiError {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d: %s", rec.Code, code, rec.Body.String())
	}
	e := decode[apiError](t, rec)
	if e.Error.Message == "" {
		t.Fatalf("error without message: %s", rec.Body.String())
	}
	if path != "" {
		found := false
		for _, is := range e.Error.Issues {
			if is.Path == path {
				found = true
			}
		}
		if !found {
			t.Fatalf("no issue at %q: %s", path, rec.Body.String())
		}
	}
	return e
}

// spec is openapi.yaml loaded and routed, as clients see it.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

// GET /stats answers Markdown, which kin-openapi reads as plain text once
// told to.
func init() { openapi3filter.RegisterBodyDecoder("text/markdown", openapi3filter.PlainBodyDecoder) }

func loadSpec(t *testing.T) *spec {
	t.Helper()
	loader := openapi3.NewLoader()
	loader.Context = context.Background()
	doc, err := loader.LoadFromData([]byte(openAPI))
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.yaml is %s, want 3.1", doc.OpenAPI)
	}
	// Validate turns on JSON Schema 2020-12 by itself for a 3.1 document.
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is invalid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return &spec{doc: doc, router: router}
}

// check validates the response (and, when it succeeded, the request) against
// the document. Requests the document has no operation for must have been
// refused as such (404/405) or by the IP checks or authentication, which
// run before routing. It returns "METHOD /template" of the operation.
func (s *spec) check(t *testing.T, method, target string, h http.Header, body []byte, rec *httptest.ResponseRecorder) string {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	// The document's server is /admin; the root mount serves the same paths.
	if p, ok := strings.CutPrefix(path, "/admin"); ok && (p == "" || p[0] == '/') {
		path = p
	}
	if !isAPIPath(path) {
		return "" // the UI's
	}
	u := "/admin" + path
	if query != "" {
		u += "?" + query
	}
	routed, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	routed.Header = h.Clone()
	route, params, err := s.router.FindRoute(routed)
	if err != nil {
		switch rec.Code {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
			return ""
		}
		t.Fatalf("%s %s: no documented operation (%v) but answered %d", method, target, err, rec.Code)
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    routed,
		PathParams: params,
		Route:      route,
		Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if rec.Code < 300 {
		// What the code accepted, the document must accept too.
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s %s succeeded (%d) but the document refuses the request: %v", method, target, rec.Code, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s: response %d does not match openapi.yaml: %v\n%s", method, target, rec.Code, err, rec.Body.String())
	}
	return route.Method + " " + route.Path
}

// errStore fails every call with err.
type errStore struct{ err error }

func (s errStore) Get(context.Context, string) (*users.User, error) { return nil, s.err }
func (s errStore) List(context.Context) ([]*users.User, error)      { return nil, s.err }
func (s errStore) Modify(context.Context, string, bool, users.ModifyFunc) (*users.User, error) {
	return nil, s.err
}
func (s errStore) Delete(context.Context, string) error                    { return s.err }
func (s errStore) Lookup(context.Context, string, func(*users.User)) error { return s.err }
func (s errStore) RecordUsage(context.Context, string, users.Usage) error {
	return s.err
}
func (s errStore) Flush(context.Context) error { return s.err }
func (s errStore) Close(context.Context) error { return s.err }
func (s errStore) AddEvent(context.Context, string, users.Event) error {
	return s.err
}
func (s errStore) EventPage(context.Context, string, string, int) (users.EventPage, error) {
	return users.EventPage{}, s.err
}
func (s errStore) EventsSince(context.Context, time.Time, int) (map[string][]users.Event, error) {
	return nil, s.err
}
func (s errStore) PruneEvents(context.Context, time.Time) (int, error) { return 0, s.err }
func (s errStore) IPLists(context.Context) (users.IPLists, error)      { return users.IPLists{}, s.err }
func (s errStore) SetIPLists(context.Context, users.IPLists) error     { return s.err }

var _ io.Writer = (*syncBuffer)(nil)
