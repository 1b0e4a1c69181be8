package ui_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/admin/ui"
	"tollgate.dev/tollgate/functions/proxy/lookup"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/web"
)

const adminKey = "test-admin-key-0123456789"

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// deps are what the admin function hands the UI (and the proxy the
// lookup page).
type deps struct {
	Config *config.Config
	Store  users.Store
	Now    func() time.Time
}

func (d *deps) ui() ui.Options { return ui.Options{Config: d.Config, Store: d.Store, Now: d.Now} }

func (d *deps) lookup() lookup.Options {
	return lookup.Options{Config: d.Config, Store: d.Store, Now: d.Now}
}

func (d *deps) Service() *users.Service {
	return &users.Service{Store: d.Store, Defaults: d.Config.TokenQuota, Now: d.Now}
}

// newDeps builds deps by hand: the given variables (GATEKEEPER=user_token
// and ADMIN_KEY unless overridden), a memory store, the clock.
func newDeps(t testing.TB, vars map[string]string, store users.Store, now func() time.Time) *deps {
	t.Helper()
	env := map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": adminKey}
	for k, v := range vars {
		env[k] = v
	}
	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if store == nil {
		store = memory.New()
	}
	return &deps{Config: cfg, Store: store, Now: now}
}

// env is one admin UI behind an httptest server, mounted as the admin
// function mounts it.
type env struct {
	t       *testing.T
	deps    *deps
	clock   *clock
	lockout *ratelimit.Lockout
	srv     *httptest.Server
}

func newEnv(t *testing.T, vars map[string]string) *env {
	t.Helper()
	c := newClock()
	e := &env{t: t, clock: c, deps: newDeps(t, vars, nil, c.Now), lockout: ratelimit.NewLockout(5, 15*time.Minute)}
	o := e.deps.ui()
	o.Lockout = e.lockout
	e.srv = httptest.NewServer(web.Mount("admin", ui.New(o)))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) svc() *users.Service { return e.deps.Service() }

// put stores a user from its JSON, as the REST API's PUT would.
func (e *env) put(token, doc string) *users.User {
	e.t.Helper()
	p, err := users.ParsePatch([]byte(doc))
	if err != nil {
		e.t.Fatalf("patch %s: %v", doc, err)
	}
	u, _, err := e.svc().Upsert(context.Background(), token, p)
	if err != nil {
		e.t.Fatalf("upsert: %v", err)
	}
	return u
}

func (e *env) get(token string) *users.User {
	e.t.Helper()
	u, err := e.deps.Store.Get(context.Background(), token)
	if err != nil {
		e.t.Fatalf("get %s: %v", token, err)
	}
	return u
}

// client is a minimal browser: it keeps the __session cookie by hand (so
// tests can tamper with it) and does not follow redirects.
type client struct {
	t      *testing.T
	base   string
	cookie string
	http   *http.Client
}

func (e *env) client() *client {
	return &client{t: e.t, base: e.srv.URL, http: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) location() string { return r.header.Get("Location") }

func (c *client) do(req *http.Request) response {
	c.t.Helper()
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "__session", Value: c.cookie})
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, ck := range res.Cookies() {
		if ck.Name == "__session" {
			c.cookie = ck.Value
			if ck.MaxAge < 0 {
				c.cookie = ""
			}
		}
	}
	return response{status: res.StatusCode, header: res.Header, body: string(body)}
}

func (c *client) get(path string) response {
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

func (c *client) post(path string, form url.Values) response {
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// upload posts a multipart form with one file.
func (c *client) upload(path string, fields url.Values, file string, data []byte) response {
	c.t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for k, vs := range fields {
			for _, v := range vs {
				_ = mw.WriteField(k, v)
			}
		}
		fw, _ := mw.CreateFormFile("file", file)
		_, _ = fw.Write(data)
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return c.do(req)
}

// login logs in with key through the login form.
func (c *client) login(key string) response {
	c.t.Helper()
	page := c.get("/admin/login")
	return c.post("/admin/login", url.Values{"key": {key}, "csrf": {csrfOf(c.t, page.body, "/admin/login")}})
}

// loggedIn returns a client with an admin session.
func (e *env) loggedIn() *client {
	e.t.Helper()
	c := e.client()
	if res := c.login(adminKey); res.status != http.StatusSeeOther {
		e.t.Fatalf("login: status %d, body %s", res.status, res.body)
	}
	return c
}

// csrfOf finds the CSRF token of the form posting to action in page.
func csrfOf(t testing.TB, page, action string) string {
	t.Helper()
	re := regexp.MustCompile(`action="` + regexp.QuoteMeta(action) + `"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form posting to %s in page:\n%s", action, page)
	}
	return html.UnescapeString(m[1])
}

var (
	inputRe    = regexp.MustCompile(`<input\b[^>]*>`)
	attrRe     = regexp.MustCompile(`([a-zA-Z-]+)(?:="([^"]*)")?`)
	selectRe   = regexp.MustCompile(`(?s)<select\b[^>]*\bname="([^"]+)"[^>]*>(.*?)</select>`)
	selectedRe = regexp.MustCompile(`<option value="([^"]*)" selected>`)
	textareaRe = regexp.MustCompile(`(?s)<textarea\b[^>]*\bname="([^"]+)"[^>]*>(.*?)</textarea>`)
)

// formValues collects what a browser would submit from the part of page
// starting at marker (the form's opening tag) up to </main>.
func formValues(t testing.TB, page, marker string) url.Values {
	t.Helper()
	i := strings.Index(page, marker)
	if i < 0 {
		t.Fatalf("no %q in page", marker)
	}
	part := page[i:]
	if j := strings.Index(part, "</main>"); j >= 0 {
		part = part[:j]
	}
	v := url.Values{}
	for _, tag := range inputRe.FindAllString(part, -1) {
		attrs := map[string]string{}
		for _, m := range attrRe.FindAllStringSubmatch(tag[len("<input"):], -1) {
			attrs[m[1]] = html.UnescapeString(m[2])
		}
		name, ok := attrs["name"]
		if !ok {
			continue
		}
		if attrs["type"] == "checkbox" {
			if _, checked := attrs["checked"]; !checked {
				continue
			}
		}
		if attrs["type"] == "file" {
			continue
		}
		v.Add(name, attrs["value"])
	}
	for _, m := range selectRe.FindAllStringSubmatch(part, -1) {
		if s := selectedRe.FindStringSubmatch(m[2]); s != nil {
			v.Set(m[1], html.UnescapeString(s[1]))
		}
	}
	for _, m := range textareaRe.FindAllStringSubmatch(part, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

func readFixture(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/original-users-export.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fixtureUsers are the fixture's users as generic JSON, by token.
func usersByToken(t testing.TB, data []byte) map[string]map[string]any {
	t.Helper()
	var doc struct {
		Users []map[string]any `json:"users"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("decoding users.json: %v", err)
	}
	out := map[string]map[string]any{}
	for _, u := range doc.Users {
		out[u["token"].(string)] = u
	}
	return out
}
