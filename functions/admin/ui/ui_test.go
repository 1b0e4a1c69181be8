package ui_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/admin/ui"
	"tollgate.dev/tollgate/functions/proxy/lookup"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/web"
)

func TestLoginWrongKeyThenLockout(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	for i := 1; i <= 5; i++ {
		res := c.login("wrong-key")
		if res.status != http.StatusUnauthorized || !strings.Contains(res.body, "Wrong admin key.") {
			t.Fatalf("attempt %d: status %d, want 401 with the message", i, res.status)
		}
		if got := c.get("/admin/manage/users"); got.status != http.StatusSeeOther {
			t.Fatalf("attempt %d: a wrong key opened a session (status %d)", i, got.status)
		}
	}
	// The 6th attempt is refused before the key is even checked: the
	// right key does not get through the lockout.
	res := c.login(adminKey)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("6th attempt: status %d, want 429", res.status)
	}
	if ra, _ := strconv.Atoi(res.header.Get("Retry-After")); ra <= 0 {
		t.Errorf("Retry-After = %q, want seconds", res.header.Get("Retry-After"))
	}
	if !strings.Contains(res.body, "Too many failed attempts") {
		t.Errorf("429 page does not say why:\n%s", res.body)
	}
	// The lockout decays.
	e.clock.Add(15*time.Minute + time.Second)
	if res := c.login(adminKey); res.status != http.StatusSeeOther || res.location() != "/admin/manage/users" {
		t.Fatalf("after the lockout window: status %d location %q", res.status, res.location())
	}
}

func TestLoginSucceedsAndSetsSecureCookie(t *testing.T) {
	e := newEnv(t, nil)
	h := web.Mount("admin", ui.New(e.deps.ui()))
	for _, tc := range []struct {
		host   string
		secure bool
	}{
		{"127.0.0.1:8080", false},
		{"localhost:8080", false},
		{"[::1]:8080", false},
		{"admin.example.com", true},
		{"tollgate.web.app", true},
	} {
		t.Run(tc.host, func(t *testing.T) {
			get := httptest.NewRequest(http.MethodGet, "/admin/login", nil)
			get.Host = tc.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, get)
			pre := rec.Result().Cookies()
			if len(pre) != 1 {
				t.Fatalf("login form set %d cookies", len(pre))
			}
			csrf := csrfOf(t, rec.Body.String(), "/admin/login")
			post := httptest.NewRequest(http.MethodPost, "/admin/login", strings.NewReader(url.Values{"key": {adminKey}, "csrf": {csrf}}.Encode()))
			post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			post.Host = tc.host
			post.AddCookie(pre[0])
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, post)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("login: status %d", rec.Code)
			}
			cookies := rec.Result().Cookies()
			if len(cookies) != 1 {
				t.Fatalf("login set %d cookies", len(cookies))
			}
			ck := cookies[0]
			if ck.Name != "__session" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != tc.secure || ck.Path != "/admin" {
				t.Errorf("cookie = %+v; want __session, HttpOnly, SameSite=Lax, Secure=%v, Path=/admin", ck, tc.secure)
			}
			if ck.MaxAge != int((12 * time.Hour).Seconds()) {
				t.Errorf("MaxAge = %d, want 12 h", ck.MaxAge)
			}
			if ck.Value == pre[0].Value || strings.Contains(ck.Value, adminKey) {
				t.Error("the session cookie must be new at login and must not hold the key")
			}
		})
	}
}

func TestSessionRefused(t *testing.T) {
	e := newEnv(t, map[string]string{"SIGNING_KEY": "signing-key-1"})
	good := e.loggedIn().cookie

	tamper := func(v string, part int, with string) string {
		p := strings.Split(v, ".")
		p[part] = with
		return strings.Join(p, ".")
	}
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name   string
		cookie func() string
		env    *env // server to ask; nil: e
		before func()
	}{
		{name: "tampered id", cookie: func() string { return tamper(good, 2, flip(strings.Split(good, ".")[2])) }},
		{name: "tampered mac", cookie: func() string { return tamper(good, 4, flip(strings.Split(good, ".")[4])) }},
		{name: "extended expiry", cookie: func() string {
			exp, _ := strconv.ParseInt(strings.Split(good, ".")[3], 10, 64)
			return tamper(good, 3, strconv.FormatInt(exp+3600, 10))
		}},
		{name: "login-form session", cookie: func() string { return tamper(good, 1, "l") }},
		{name: "garbage", cookie: func() string { return "not-a-session" }},
		{name: "expired", cookie: func() string { return good }, before: func() { e.clock.Add(12*time.Hour + time.Second) }},
		{name: "other ADMIN_KEY, same SIGNING_KEY", cookie: func() string { return good },
			env: newEnv(t, map[string]string{"SIGNING_KEY": "signing-key-1", "ADMIN_KEY": "another-admin-key"})},
		{name: "other SIGNING_KEY", cookie: func() string { return good },
			env: newEnv(t, map[string]string{"SIGNING_KEY": "signing-key-2"})},
	}
	// Control: another instance with the same keys accepts the session.
	same := newEnv(t, map[string]string{"SIGNING_KEY": "signing-key-1"})
	c := same.client()
	c.cookie = good
	if res := c.get("/admin/manage/users"); res.status != http.StatusOK {
		t.Fatalf("an instance with the same keys refused the session: %d", res.status)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			target := e
			if tc.env != nil {
				target = tc.env
			}
			c := target.client()
			c.cookie = tc.cookie()
			res := c.get("/admin/manage/users")
			if res.status != http.StatusSeeOther || !strings.HasPrefix(res.location(), "/admin/login") {
				t.Fatalf("status %d location %q; want a redirect to the login page", res.status, res.location())
			}
		})
	}
}

func TestSessionFromAdminKeyAlone(t *testing.T) {
	e := newEnv(t, nil) // no SIGNING_KEY: derived from ADMIN_KEY
	good := e.loggedIn().cookie
	other := newEnv(t, map[string]string{"ADMIN_KEY": "rotated-admin-key"})
	c := other.client()
	c.cookie = good
	if res := c.get("/admin/manage/users"); res.status != http.StatusSeeOther {
		t.Fatalf("a session survived an ADMIN_KEY change: %d", res.status)
	}
	same := newEnv(t, nil)
	c = same.client()
	c.cookie = good
	if res := c.get("/admin/manage/users"); res.status != http.StatusOK {
		t.Fatalf("another instance with the same ADMIN_KEY refused the session: %d", res.status)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	c := e.loggedIn()
	page := c.get("/admin/manage/users")
	res := c.post("/admin/logout", url.Values{"csrf": {csrfOf(t, page.body, "/admin/logout")}})
	if res.status != http.StatusSeeOther || res.location() != "/admin/login?done=logout" {
		t.Fatalf("logout: %d %q", res.status, res.location())
	}
	if c.cookie != "" {
		t.Fatal("logout did not clear the cookie")
	}
	if res := c.get("/admin/manage/users"); res.status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", res.status)
	}
}

// A link from another site to the login page (a Lax cookie comes along
// on such a navigation) keeps the admin's session: the page sends them on
// and sets no cookie.
func TestLinkToLoginKeepsTheSession(t *testing.T) {
	e := newEnv(t, nil)
	c := e.loggedIn()
	admin := c.cookie
	res := c.get("/admin/login?next=%2Fmanage%2Fusers")
	if res.status != http.StatusSeeOther || res.location() != "/admin/manage/users" || len(res.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("GET /login with a session: %d -> %q, Set-Cookie %q", res.status, res.location(), res.header.Values("Set-Cookie"))
	}
	if c.cookie != admin {
		t.Fatal("the session cookie changed")
	}
	if res := c.get("/admin/manage/users"); res.status != http.StatusOK {
		t.Errorf("after the link: GET /manage/users = %d", res.status)
	}
}

// Every page but the static assets carries no-store: the pages of an
// unknown path or a wrong method too, whose logged-in frame holds the
// session's CSRF token.
func TestErrorPagesAreNotCached(t *testing.T) {
	e := newEnv(t, nil)
	c := e.loggedIn()
	put, _ := http.NewRequest(http.MethodPut, c.base+"/admin/manage/users", nil)
	for name, res := range map[string]response{
		"unknown path": c.get("/admin/manage/nope"),
		"deep path":    c.get("/admin/manage/users/x/y/z"),
		"wrong method": c.do(put),
	} {
		if !strings.Contains(res.body, `name="csrf"`) {
			t.Fatalf("%s: %d page has no CSRF token; the test's premise changed", name, res.status)
		}
		if !strings.Contains(res.header.Get("Cache-Control"), "no-store") {
			t.Errorf("%s: %d page holds a CSRF token, Cache-Control %q", name, res.status, res.header.Get("Cache-Control"))
		}
	}
}

func TestLoginRedirectsBack(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	res := c.get("/admin/manage/maintenance")
	if res.status != http.StatusSeeOther || res.location() != "/admin/login?next=%2Fmanage%2Fmaintenance" {
		t.Fatalf("got %d %q", res.status, res.location())
	}
	page := c.get(res.location())
	res = c.post("/admin/login", url.Values{"key": {adminKey}, "next": {"/manage/maintenance"}, "csrf": {csrfOf(t, page.body, "/admin/login")}})
	if res.location() != "/admin/manage/maintenance" {
		t.Fatalf("after login: %q", res.location())
	}
	// An outside destination is ignored.
	c = e.client()
	page = c.get("/admin/login")
	res = c.post("/admin/login", url.Values{"key": {adminKey}, "next": {"//evil.example/manage"}, "csrf": {csrfOf(t, page.body, "/admin/login")}})
	if res.location() != "/admin/manage/users" {
		t.Fatalf("open redirect: %q", res.location())
	}
}

func TestPostRoutesNeedCSRF(t *testing.T) {
	e := newEnv(t, nil)
	const tok = "csrf-target-user-0001"
	e.put(tok, `{"type":"normal","nickname":"target","tokenCounts":{"claude":5}}`)
	c := e.loggedIn()
	routes := []struct {
		path string
		form url.Values
	}{
		{"/admin/logout", nil},
		{"/admin/manage/new", url.Values{"type": {"normal"}, "nickname": {"forged"}}},
		{"/admin/manage/users/" + tok + "/edit", url.Values{"type": {"normal"}, "nickname": {"forged"}}},
		{"/admin/manage/users/" + tok + "/disable", url.Values{"reason": {"forged"}}},
		{"/admin/manage/users/" + tok + "/reactivate", nil},
		{"/admin/manage/users/" + tok + "/refresh-quota", nil},
		{"/admin/manage/import", nil},
		{"/admin/manage/maintenance/refresh-quotas", nil},
		{"/admin/manage/maintenance/reset-counts", nil},
		{"/admin/manage/maintenance/expire-temporary", nil},
		{"/admin/manage/maintenance/purge-temporary", nil},
	}
	// A real token, but of another form: tokens are bound to their path.
	other := csrfOf(t, c.get("/admin/manage/users").body, "/admin/logout")
	before := e.get(tok)
	for _, rt := range routes {
		for _, csrf := range []string{"", "bm90LWEtdG9rZW4", other} {
			if rt.path == "/admin/logout" && csrf == other {
				continue // that one is right for logout
			}
			t.Run(rt.path+"/"+csrf, func(t *testing.T) {
				form := url.Values{}
				for k, v := range rt.form {
					form[k] = v
				}
				if csrf != "" {
					form.Set("csrf", csrf)
				}
				var res response
				if strings.HasSuffix(rt.path, "/import") {
					res = c.upload(rt.path, form, "users.json", readFixture(t))
				} else {
					res = c.post(rt.path, form)
				}
				if res.status != http.StatusForbidden {
					t.Fatalf("status %d, want 403", res.status)
				}
			})
		}
	}
	if after := e.get(tok); !reflect.DeepEqual(before, after) {
		t.Fatalf("a forged POST changed the user:\nbefore %+v\nafter  %+v", before, after)
	}
	all, _ := e.deps.Store.List(t.Context())
	if len(all) != 1 {
		t.Fatalf("a forged POST created or imported users: %d users", len(all))
	}
	if res := c.get("/admin/manage/users"); res.status != http.StatusOK {
		t.Fatal("a forged logout ended the session")
	}

	// The login form is protected the same way, by its pre-login session.
	v := e.client()
	v.get("/admin/login")
	if res := v.post("/admin/login", url.Values{"key": {adminKey}}); res.status != http.StatusForbidden {
		t.Fatalf("login without CSRF: %d", res.status)
	}
	if res := e.client().post("/admin/login", url.Values{"key": {adminKey}, "csrf": {"x"}}); res.status != http.StatusForbidden {
		t.Fatalf("login without any session: %d", res.status)
	}
}

func TestPostWithoutSessionGoesToLogin(t *testing.T) {
	e := newEnv(t, nil)
	e.put("someone-0001", `{"type":"normal"}`)
	res := e.client().post("/admin/manage/users/someone-0001/disable", url.Values{"csrf": {"x"}})
	if res.status != http.StatusSeeOther || res.location() != "/admin/login" {
		t.Fatalf("got %d %q", res.status, res.location())
	}
	if e.get("someone-0001").Disabled() {
		t.Fatal("disabled without a session")
	}
}

const xss = `<script>alert(1)</script>`

func TestNicknameIsEscaped(t *testing.T) {
	e := newEnv(t, nil)
	const tok = "xss-user-000000000001"
	e.put(tok, `{"type":"normal","nickname":`+strconv.Quote(xss)+`,"adminNote":"<b>bold</b>","disabledAt":1,"disabledReason":"<img src=x onerror=alert(2)>"}`)
	c := e.loggedIn()
	pages := map[string]string{
		"list": c.get("/admin/manage/users").body,
		"user": c.get("/admin/manage/users/" + tok).body,
		"edit": c.get("/admin/manage/users/" + tok + "/edit").body,
	}
	lk := httptest.NewServer(lookup.New(e.deps.lookup()))
	defer lk.Close()
	res, err := http.PostForm(lk.URL+"/user/lookup", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	pages["lookup"] = readBody(t, res)
	for name, body := range pages {
		if strings.Contains(body, xss) || strings.Contains(body, "<img src=x") || strings.Contains(body, "<b>bold") {
			t.Errorf("%s page has unescaped user text", name)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s page does not show the nickname escaped", name)
		}
	}
}

func TestBanners(t *testing.T) {
	const memoryText = "data is lost when this instance stops"
	const modeText = "not user_token"
	rtdb := map[string]string{"GATEKEEPER_STORE": "firebase_rtdb", "FIREBASE_RTDB_URL": "https://x-default-rtdb.firebaseio.com"}
	cases := []struct {
		name         string
		vars         map[string]string
		memory, mode bool
	}{
		{"memory store", map[string]string{"GATEKEEPER_STORE": "memory"}, true, false},
		{"rtdb, user_token", rtdb, false, false},
		{"rtdb, proxy_key", merge(rtdb, map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": "pk"}), false, true},
		{"memory, none", map[string]string{"GATEKEEPER": "none"}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.vars)
			body := e.loggedIn().get("/admin/manage/users").body
			if got := strings.Contains(body, memoryText); got != tc.memory {
				t.Errorf("memory banner shown = %v, want %v", got, tc.memory)
			}
			if got := strings.Contains(body, modeText); got != tc.mode {
				t.Errorf("gatekeeper banner shown = %v, want %v", got, tc.mode)
			}
		})
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestNoAdminKeyDisablesLogin(t *testing.T) {
	e := newEnv(t, map[string]string{"GATEKEEPER": "none", "ADMIN_KEY": ""})
	c := e.client()
	if res := c.get("/admin/login"); !strings.Contains(res.body, "disabled") {
		t.Fatal("the login page does not say the UI is disabled")
	}
	if res := c.post("/admin/login", url.Values{"key": {""}}); res.status != http.StatusForbidden {
		t.Fatalf("login with no ADMIN_KEY: %d", res.status)
	}
}

func TestCreateTemporaryUser(t *testing.T) {
	e := newEnv(t, map[string]string{"TOKEN_QUOTA_CLAUDE": "50000"})
	c := e.loggedIn()
	page := c.get("/admin/manage/new")
	form := formValues(t, page.body, `id="new-form"`)
	if form.Get("limit:claude") != "50000" {
		t.Fatalf("the form is not prefilled with the default quota: %q", form.Get("limit:claude"))
	}
	form.Set("type", "temporary")
	form.Set("duration", "6")
	form.Set("unit", "hours")
	form.Set("nickname", "event guest")
	form.Set("refreshable", "1")
	form.Set("limit:claude", "100,000")
	form.Set("limit:gpt4o", "2000")
	res := c.post("/admin/manage/new", form)
	if res.status != http.StatusSeeOther || !strings.HasSuffix(res.location(), "?done=created") {
		t.Fatalf("create: %d %q\n%s", res.status, res.location(), res.body)
	}
	token := strings.TrimSuffix(strings.TrimPrefix(res.location(), "/admin/manage/users/"), "?done=created")
	u := e.get(token)
	want := e.clock.Now().Add(6 * time.Hour).UnixMilli()
	if u.Type != users.Temporary || u.ExpiresAt != want || u.Nickname != "event guest" || !u.Refreshable() {
		t.Errorf("user = %+v", u)
	}
	if !reflect.DeepEqual(u.TokenLimits, map[string]int64{"claude": 100000, "gpt4o": 2000}) {
		t.Errorf("limits = %v", u.TokenLimits)
	}
	view := c.get(res.location())
	if !strings.Contains(view.body, "User created.") || !strings.Contains(view.body, token) {
		t.Error("the user page does not confirm the creation")
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, nil)
	c := e.loggedIn()
	csrf := csrfOf(t, c.get("/admin/manage/new").body, "/admin/manage/new")
	cases := []struct {
		name  string
		form  url.Values
		issue string
	}{
		{"no duration", url.Values{"type": {"temporary"}, "duration": {"0"}, "unit": {"hours"}}, "duration"},
		{"too long", url.Values{"type": {"temporary"}, "duration": {"400"}, "unit": {"days"}}, "at most a year"},
		{"bad type", url.Values{"type": {"admin"}}, "type"},
		{"long nickname", url.Values{"type": {"normal"}, "nickname": {strings.Repeat("n", 81)}}, "at most 80 characters"},
		{"bad limit", url.Values{"type": {"normal"}, "limit:claude": {"lots"}}, "tokenLimits.claude"},
		{"bad family", url.Values{"type": {"normal"}, "limit:no such": {"1"}}, "not a valid model family"},
		{"bad maxIps", url.Values{"type": {"normal"}, "maxIps": {"-1"}}, "maxIps"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("csrf", csrf)
			res := c.post("/admin/manage/new", tc.form)
			if res.status != http.StatusBadRequest || !strings.Contains(res.body, tc.issue) {
				t.Fatalf("status %d; want 400 naming %q:\n%s", res.status, tc.issue, res.body)
			}
		})
	}
	if all, _ := e.deps.Store.List(t.Context()); len(all) != 0 {
		t.Fatalf("invalid forms created %d users", len(all))
	}
}

func TestEditChangesOnlyWhatChanged(t *testing.T) {
	e := newEnv(t, nil)
	c := e.loggedIn()
	if res := c.upload("/admin/manage/import", url.Values{"csrf": {csrfOf(t, c.get("/admin/manage/import").body, "/admin/manage/import")}}, "users.json", readFixture(t)); res.status != http.StatusSeeOther {
		t.Fatalf("import: %d\n%s", res.status, res.body)
	}
	for _, tok := range []string{"8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "c2b9e4d7-81f0-4a3b-b6c5-d4e3f2a1b0c9"} {
		before := e.get(tok)
		path := "/admin/manage/users/" + tok + "/edit"
		form := formValues(t, c.get(path).body, `id="edit-form"`)
		form.Set("nickname", "renamed")
		res := c.post(path, form)
		if res.status != http.StatusSeeOther || !strings.HasSuffix(res.location(), "?done=saved") {
			t.Fatalf("edit: %d %q\n%s", res.status, res.location(), res.body)
		}
		after := e.get(tok)
		before.Nickname = "renamed"
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("saving the nickname changed more:\nbefore %+v\nafter  %+v", before, after)
		}
		// Saving the form unchanged writes nothing.
		form = formValues(t, c.get(path).body, `id="edit-form"`)
		if res := c.post(path, form); !strings.HasSuffix(res.location(), "?done=unchanged") {
			t.Fatalf("unchanged form: %q", res.location())
		}
	}

	tok := "8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50"
	path := "/admin/manage/users/" + tok + "/edit"
	form := formValues(t, c.get(path).body, `id="edit-form"`)
	form.Set("limit:gpt4o", "2,000,000")
	form.Set("refresh:gpt4o", "0")
	form.Set("refresh:claude", "1000")
	form.Set("limit:gemini-ultra", "77") // a family folded under "more"
	form.Set("maxIps", "")
	form.Set("adminNote", "line one\r\nline two")
	form.Set("type", "special")
	if res := c.post(path, form); res.status != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", res.status, res.body)
	}
	u := e.get(tok)
	if u.TokenLimits["gpt4o"] != 2000000 || u.TokenLimits["gemini-ultra"] != 77 || u.TokenLimits["turbo"] != 0 {
		t.Errorf("limits = %v", u.TokenLimits)
	}
	if _, kept := u.TokenLimits["turbo"]; !kept {
		t.Error("an untouched family was dropped")
	}
	if !reflect.DeepEqual(u.TokenRefresh, map[string]int64{"gpt4o": 0, "claude": 1000}) {
		t.Errorf("refresh = %v", u.TokenRefresh)
	}
	if u.MaxIPs != nil || u.AdminNote != "line one\nline two" || u.Type != users.Special {
		t.Errorf("user = %+v", u)
	}

	// Invalid input shows the form again with the problem, writes nothing.
	before := e.get(tok)
	form = formValues(t, c.get(path).body, `id="edit-form"`)
	form.Set("nickname", strings.Repeat("x", 81))
	form.Set("limit:claude", "-5")
	res := c.post(path, form)
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "tokenLimits.claude") {
		t.Fatalf("invalid edit: %d\n%s", res.status, res.body)
	}
	if !strings.Contains(res.body, `value="`+strings.Repeat("x", 81)+`"`) {
		t.Error("the form lost what was typed")
	}
	if after := e.get(tok); !reflect.DeepEqual(before, after) {
		t.Error("an invalid edit wrote something")
	}
}

func TestDisableReactivateRefresh(t *testing.T) {
	e := newEnv(t, map[string]string{"TOKEN_QUOTA_CLAUDE": "1000"})
	const tok = "lifecycle-user-0001"
	e.put(tok, `{"type":"normal","tokenCounts":{"claude":400},"tokenLimits":{"claude":500}}`)
	c := e.loggedIn()
	base := "/admin/manage/users/" + tok
	step := func(action string, form url.Values) response {
		t.Helper()
		page := c.get(base)
		if form == nil {
			form = url.Values{}
		}
		form.Set("csrf", csrfOf(t, page.body, base+"/"+action))
		res := c.post(base+"/"+action, form)
		if res.status != http.StatusSeeOther {
			t.Fatalf("%s: %d\n%s", action, res.status, res.body)
		}
		return c.get(res.location())
	}
	page := step("disable", url.Values{"reason": {"abuse"}})
	if u := e.get(tok); !u.Disabled() || u.DisabledReason != "abuse" {
		t.Fatalf("not disabled: %+v", u)
	}
	if !strings.Contains(page.body, "User disabled.") || !strings.Contains(page.body, `id="reactivate"`) {
		t.Error("the page does not show the disabled state")
	}
	step("reactivate", nil)
	if u := e.get(tok); u.Disabled() {
		t.Fatal("still disabled")
	}
	step("refresh-quota", nil)
	if u := e.get(tok); u.TokenLimits["claude"] != 1400 {
		t.Fatalf("limit after refresh = %d, want 400 + 1000", u.TokenLimits["claude"])
	}
	if res := c.get("/admin/manage/users/no-such-user-0001"); res.status != http.StatusNotFound {
		t.Fatalf("unknown user: %d", res.status)
	}
}

// The user page counts the addresses of one IPv6 /64 once against the IP
// limit, as the limit does, and still lists every address recorded.
func TestUserPageCountsAnIPv6Slash64Once(t *testing.T) {
	e := newEnv(t, map[string]string{"MAX_IPS_PER_USER": "2"})
	const tok = "ipv6-user-00000001"
	ips := []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "203.0.113.7"}
	e.put(tok, `{"ip":["`+strings.Join(ips, `","`)+`"]}`)
	page := e.loggedIn().get("/admin/manage/users/" + tok).body
	for _, want := range []string{"2 of 2", `id="ip-note">(4 addresses; those of one IPv6 /64 count once)`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, ip := range ips {
		if !strings.Contains(page, "<li><code>"+ip+"</code></li>") {
			t.Errorf("address %s not listed", ip)
		}
	}
	e.put("ipv4-user-00000001", `{"ip":["203.0.113.7","203.0.113.8"]}`)
	if page := e.loggedIn().get("/admin/manage/users/ipv4-user-00000001").body; !strings.Contains(page, "2 of 2") || strings.Contains(page, "ip-note") {
		t.Error("IPv4 addresses should count one each, without a note")
	}
	// The users list shows the addresses and, where they differ, the
	// places counted.
	list := e.loggedIn().get("/admin/manage/users").body
	row := func(tok string) string {
		i := strings.Index(list, `data-token="`+tok+`"`)
		if i < 0 {
			t.Fatalf("no row for %s", tok)
		}
		end := strings.Index(list[i:], "</tr>")
		return list[i : i+end]
	}
	if r := row(tok); !strings.Contains(r, `<td class="num">4 <span class="muted ip-counted"`) || !strings.Contains(r, "(2 counted)") {
		t.Errorf("IPv6 user's row: %s", r)
	}
	if r := row("ipv4-user-00000001"); !strings.Contains(r, `<td class="num">2</td>`) || strings.Contains(r, "counted") {
		t.Errorf("IPv4 user's row: %s", r)
	}
}

func TestImportExport(t *testing.T) {
	e := newEnv(t, nil)
	c := e.loggedIn()
	csrf := csrfOf(t, c.get("/admin/manage/import").body, "/admin/manage/import")

	// A bad file: every problem listed, nothing written.
	bad := []byte(`{"users":[{"token":"ok-user-0001"},{"token":"bad token"},{"token":"x-0002","type":"boss","colour":"red"}]}`)
	res := c.upload("/admin/manage/import", url.Values{"csrf": {csrf}}, "users.json", bad)
	if res.status != http.StatusBadRequest {
		t.Fatalf("bad import: %d", res.status)
	}
	for _, want := range []string{"users[1].token", "users[2].type", "users[2].colour"} {
		if !strings.Contains(res.body, want) {
			t.Errorf("the error page does not list %s", want)
		}
	}
	if all, _ := e.deps.Store.List(t.Context()); len(all) != 0 {
		t.Fatalf("a failed import wrote %d users", len(all))
	}
	if res := c.upload("/admin/manage/import", url.Values{"csrf": {csrf}}, "users.json", []byte("not json")); res.status != http.StatusBadRequest || !strings.Contains(res.body, "Invalid JSON") {
		t.Fatalf("garbage import: %d", res.status)
	}

	fixture := readFixture(t)
	res = c.upload("/admin/manage/import", url.Values{"csrf": {csrf}}, "users.json", fixture)
	if res.status != http.StatusSeeOther {
		t.Fatalf("import: %d\n%s", res.status, res.body)
	}
	if page := c.get(res.location()); !strings.Contains(page.body, "Imported 4 users.") {
		t.Errorf("the import does not report its count:\n%s", page.body)
	}

	exp := c.get("/admin/manage/export")
	if exp.status != http.StatusOK || exp.header.Get("Content-Disposition") != `attachment; filename="users.json"` ||
		!strings.HasPrefix(exp.header.Get("Content-Type"), "application/json") {
		t.Fatalf("export: %d %v", exp.status, exp.header)
	}
	want := usersByToken(t, fixture)
	for _, u := range want {
		delete(u, "tokenCount") // the original's deprecated total: accepted and ignored
	}
	if got := usersByToken(t, []byte(exp.body)); !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		t.Fatalf("export differs from the imported file:\n%s", gj)
	}
	// An export with "count" (GET /admin/users's shape) imports too.
	withCount := strings.Replace(exp.body, `{`, `{"count": 4,`, 1)
	if res := c.upload("/admin/manage/import", url.Values{"csrf": {csrf}}, "users.json", []byte(withCount)); res.status != http.StatusSeeOther {
		t.Fatalf("re-import of the export: %d\n%s", res.status, res.body)
	}
	if res := e.client().get("/admin/manage/export"); res.status != http.StatusSeeOther {
		t.Fatalf("export without a session: %d", res.status)
	}
}

func TestListSortAndPages(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 23 {
		e.put("user-"+strconv.Itoa(100+i), `{"type":"normal","nickname":"n`+strconv.Itoa(100+i)+`","promptCount":`+strconv.Itoa(i)+`}`)
	}
	c := e.loggedIn()
	rows := func(body string) []string {
		var out []string
		for _, part := range strings.Split(body, `data-token="`)[1:] {
			out = append(out, part[:strings.Index(part, `"`)])
		}
		return out
	}
	res := c.get("/admin/manage/users?per=10")
	if got := rows(res.body); len(got) != 10 || got[0] != "user-122" {
		t.Fatalf("page 1 (most prompts first) = %v", got)
	}
	if !strings.Contains(res.body, "Page 1 of 3") || !strings.Contains(res.body, `href="/admin/manage/users?page=2&amp;per=10"`) {
		t.Errorf("no pager:\n%s", res.body)
	}
	res = c.get("/admin/manage/users?per=10&page=3&sort=nickname")
	if got := rows(res.body); !reflect.DeepEqual(got, []string{"user-120", "user-121", "user-122"}) {
		t.Fatalf("page 3 by nickname = %v", got)
	}
	if !strings.Contains(res.body, `aria-sort="ascending"`) || !strings.Contains(res.body, `href="/admin/manage/users?per=10&amp;sort=-nickname"`) {
		t.Error("the sorted column does not offer the reverse order")
	}
	res = c.get("/admin/manage/users?q=N10")
	if got := rows(res.body); len(got) != 10 {
		t.Fatalf("search n10 = %v", got)
	}
	res = c.get("/admin/manage/users?sort=nope")
	if res.status != http.StatusOK || !strings.Contains(res.body, "unknown field") || len(rows(res.body)) != 23 {
		t.Fatalf("bad sort: %d", res.status)
	}
}

func TestMaintenance(t *testing.T) {
	e := newEnv(t, nil)
	e.put("counted-user-0001", `{"type":"normal","tokenCounts":{"claude":10}}`)
	e.put("counted-user-0002", `{"type":"normal","tokenCounts":{"claude":0}}`)
	c := e.loggedIn()
	page := c.get("/admin/manage/maintenance")
	for _, a := range users.Actions {
		if !strings.Contains(page.body, `action="/admin/manage/maintenance/`+a+`" data-confirm="`) {
			t.Errorf("no confirmed form for %s", a)
		}
	}
	res := c.post("/admin/manage/maintenance/reset-counts", url.Values{"csrf": {csrfOf(t, page.body, "/admin/manage/maintenance/reset-counts")}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("reset-counts: %d", res.status)
	}
	if got := c.get(res.location()).body; !strings.Contains(got, "reset-counts done: 1 user changed.") {
		t.Errorf("no result shown:\n%s", got)
	}
	if e.get("counted-user-0001").TokenCounts["claude"] != 0 {
		t.Fatal("counts not reset")
	}
	res = c.post("/admin/manage/maintenance/prune-limits", url.Values{"csrf": {csrfOf(t, page.body, "/admin/manage/maintenance/prune-limits")}})
	if got := c.get(res.location()).body; !strings.Contains(got, "prune-limits done: 0 limits records deleted.") {
		t.Errorf("prune-limits: %d, no result shown:\n%s", res.status, got)
	}
}

func TestStaticAndUnknown(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client()
	login := c.get("/admin/login")
	for _, name := range []string{"style.css", "app.js"} {
		i := strings.Index(login.body, "/admin/static/"+name+"?v=")
		if i < 0 {
			t.Fatalf("the page does not link %s", name)
		}
		href := login.body[i : i+strings.Index(login.body[i:], `"`)]
		res := c.get(href)
		if res.status != http.StatusOK || !strings.Contains(res.header.Get("Cache-Control"), "immutable") || len(res.body) < 100 {
			t.Errorf("%s: %d %q", name, res.status, res.header.Get("Cache-Control"))
		}
	}
	for _, p := range []string{"/admin/static/nope.css", "/admin/nothing"} {
		if res := c.get(p); res.status != http.StatusNotFound {
			t.Errorf("%s: %d", p, res.status)
		}
	}
	if res := c.get("/admin"); res.status != http.StatusSeeOther || res.location() != "/admin/login" {
		t.Errorf("/admin: %d %q", res.status, res.location())
	}
	if res := c.get("/admin/login"); !strings.Contains(res.header.Get("Content-Security-Policy"), "script-src 'self'") || res.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", res.header)
	}
}

// A page asked with a method it does not take is answered 405 with
// Allow, as the REST API answers: GET /logout (a typed address) said
// "Page not found" of a page that exists.
func TestWrongMethodAnswers405(t *testing.T) {
	e := newEnv(t, nil)
	c := e.loggedIn()
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/admin/logout", "POST"},
		{http.MethodPost, "/admin/manage/users", "GET, HEAD"},
		{http.MethodPut, "/admin/login", "GET, HEAD, POST"},
		{http.MethodDelete, "/admin/manage/users/some-user", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, c.base+tc.path, nil)
		res := c.do(req)
		if res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") != tc.allow ||
			!strings.Contains(res.body, "Method Not Allowed") || res.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s: %d, Allow %q, want 405 and %q", tc.method, tc.path, res.status, res.header.Get("Allow"), tc.allow)
		}
	}
	if res := c.get("/admin/manage/nothing"); res.status != http.StatusNotFound || res.header.Get("Allow") != "" {
		t.Errorf("an unknown page: %d, Allow %q", res.status, res.header.Get("Allow"))
	}
}

func TestMountedAtRoot(t *testing.T) {
	// Served at the function's root (a function URL): links have no /admin.
	c := newClock()
	d := newDeps(t, nil, memory.New(), c.Now)
	srv := httptest.NewServer(web.Mount("admin", ui.New(d.ui())))
	defer srv.Close()
	cl := &client{t: t, base: srv.URL, http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	page := cl.get("/login")
	res := cl.post("/login", url.Values{"key": {adminKey}, "csrf": {csrfOf(t, page.body, "/login")}})
	if res.location() != "/manage/users" {
		t.Fatalf("login at root: %d %q", res.status, res.location())
	}
	if body := cl.get("/manage/users").body; !strings.Contains(body, `href="/manage/new"`) {
		t.Fatal("links at root carry a prefix")
	}
}

func readBody(t testing.TB, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The maintenance page counts each served provider's keys that work and
// that are set aside, checked with the provider's model list and kept for
// five minutes; it shows keys by their last 4 characters only.
func TestUpstreamKeyCounts(t *testing.T) {
	up := upstreamfake.Start(t, upstreamfake.OpenAI)
	up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-revoked-key-0002": 401}})
	e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-good-key-0001,sk-revoked-key-0002,sk-good-key-0003", "OPENAI_BASE_URL": up.URL})
	c := e.loggedIn()
	page := c.get("/admin/manage/maintenance").body
	if !strings.Contains(page, "<tr><td>OpenAI</td><td>2</td><td>1</td></tr>") {
		t.Fatalf("no key counts for OpenAI:\n%s", page)
	}
	if !strings.Contains(page, "<tr><td>OpenAI</td><td><code>…0002</code></td><td><span class=\"badge disabled\">set aside</span></td></tr>") ||
		!strings.Contains(page, "<tr><td>OpenAI</td><td><code>…0001</code></td><td><span class=\"badge active\">in service</span></td></tr>") {
		t.Errorf("no per-key lines:\n%s", page)
	}
	for _, k := range []string{"sk-good-key-0001", "sk-revoked-key-0002", "-0002", "y-0001"} {
		if strings.Contains(page, k) {
			t.Errorf("the page shows %q", k)
		}
	}
	checks := up.Count()
	c.get("/admin/manage/maintenance")
	if up.Count() != checks {
		t.Error("the keys were checked again within five minutes")
	}
}
