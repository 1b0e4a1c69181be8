package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name   string
		header string
		code   int
	}{
		{"missing", "", 401},
		{"wrong key", "Bearer nope", 401},
		{"key prefix", "Bearer " + testKey[:len(testKey)-1], 401},
		{"key with suffix", "Bearer " + testKey + "x", 401},
		{"wrong scheme", "Basic " + testKey, 401},
		{"no credential", "Bearer ", 401},
		{"right key", "Bearer " + testKey, 200},
		{"scheme is case-insensitive", "bearer " + testKey, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := req{path: "/admin/users", noAuth: true, remote: "198.51.100.1:1"}
			if tc.header != "" {
				r.header = map[string]string{"Authorization": tc.header}
			}
			rec := e.do(r)
			if rec.Code != tc.code {
				t.Fatalf("%d, want %d: %s", rec.Code, tc.code, rec.Body.String())
			}
			if tc.code == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Error("401 without WWW-Authenticate: Bearer")
			}
		})
	}
	t.Run("the OpenAPI document needs no key", func(t *testing.T) {
		rec := e.do(req{path: "/admin/openapi.yaml", noAuth: true})
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/yaml" || rec.Body.String() != openAPI {
			t.Fatalf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
		}
	})
	t.Run("unknown routes answer only after authentication", func(t *testing.T) {
		wantError(t, e.do(req{path: "/admin/users/a/b/c", noAuth: true}), 401, "")
		wantError(t, e.do(req{method: http.MethodPatch, path: "/admin/users", noAuth: true}), 401, "")
		wantError(t, e.do(req{path: "/admin/users/a/b/c"}), 404, "")
		wantError(t, e.do(req{path: "/admin/maintenance"}), 404, "")
		rec := e.do(req{method: http.MethodPatch, path: "/admin/users"})
		wantError(t, rec, 405, "")
		if got := rec.Header().Get("Allow"); got != "GET, POST, PUT" {
			t.Errorf("Allow %q", got)
		}
		rec = e.do(req{method: http.MethodPost, path: "/admin/users/tok-000000000000000001"})
		if got := rec.Header().Get("Allow"); rec.Code != 405 || got != "GET, PUT, DELETE" {
			t.Errorf("%d Allow %q", rec.Code, got)
		}
		rec = e.do(req{method: http.MethodGet, path: "/admin/maintenance/reset-counts"})
		if got := rec.Header().Get("Allow"); rec.Code != 405 || got != "POST" {
			t.Errorf("%d Allow %q", rec.Code, got)
		}
		// HEAD is not in the OpenAPI document: refused, not served as GET.
		for _, path := range []string{"/admin/users", "/admin/openapi.yaml"} {
			rec = e.do(req{method: http.MethodHead, path: path})
			if got := rec.Header().Get("Allow"); rec.Code != 405 || !strings.HasPrefix(got, "GET") {
				t.Errorf("HEAD %s: %d Allow %q", path, rec.Code, got)
			}
		}
	})
}

func TestAdminAPIDisabledWithoutKey(t *testing.T) {
	e := newEnv(t, map[string]string{"GATEKEEPER": "none", "ADMIN_KEY": ""})
	for _, r := range []req{
		{path: "/admin/users"},
		{path: "/admin/users", noAuth: true},
		{path: "/admin/users", key: "anything"},
		{method: http.MethodPost, path: "/admin/maintenance/purge-temporary"},
	} {
		got := wantError(t, e.do(r), http.StatusForbidden, "")
		if got.Error.Message != "Admin API disabled: set ADMIN_KEY" {
			t.Errorf("message %q", got.Error.Message)
		}
	}
	if rec := e.do(req{path: "/openapi.yaml", noAuth: true}); rec.Code != 200 {
		t.Errorf("openapi.yaml: %d", rec.Code)
	}
}

func TestLockoutAndDecay(t *testing.T) {
	e := newEnv(t, nil)
	const ip = "203.0.113.50:999"
	wrong := func() int { return e.do(req{path: "/admin/users", key: "guess", remote: ip}).Code }
	right := func() *httptest.ResponseRecorder { return e.do(req{path: "/admin/users", remote: ip}) }

	// A missing key guesses nothing and is not counted.
	for i := 0; i < 10; i++ {
		e.do(req{path: "/admin/users", noAuth: true, remote: ip})
	}
	if rec := right(); rec.Code != 200 {
		t.Fatalf("missing keys locked out: %d", rec.Code)
	}

	// Five failures, one minute apart, starting at t0.
	t0 := e.clock.Now()
	for i := 0; i < ratelimit.KeyLockoutMax; i++ {
		if code := wrong(); code != 401 {
			t.Fatalf("failure %d answered %d", i, code)
		}
		if i < ratelimit.KeyLockoutMax-1 {
			e.clock.Advance(time.Minute)
		}
	}
	// Locked: even the right key is refused, with Retry-After until the
	// oldest failure leaves the 15-minute window.
	rec := right()
	wantError(t, rec, http.StatusTooManyRequests, "")
	want := int(t0.Add(ratelimit.KeyLockoutWindow).Sub(e.clock.Now()).Seconds())
	if got, _ := strconv.Atoi(rec.Header().Get("Retry-After")); got != want {
		t.Errorf("Retry-After %q, want %d", rec.Header().Get("Retry-After"), want)
	}
	if code := wrong(); code != 429 {
		t.Errorf("wrong key while locked: %d", code)
	}
	// Other addresses are not affected.
	if rec := e.do(req{path: "/admin/users", remote: "203.0.113.51:1"}); rec.Code != 200 {
		t.Errorf("another IP: %d", rec.Code)
	}
	// Still locked one second before the oldest failure decays…
	e.clock.Advance(time.Duration(want-1) * time.Second)
	if rec := right(); rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("before decay: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	// …and open once it has: four failures remain in the window.
	e.clock.Advance(time.Second)
	if rec := right(); rec.Code != 200 {
		t.Fatalf("after decay: %d %s", rec.Code, rec.Body.String())
	}
	// Success cleared the failures: four more wrong keys do not lock.
	for i := 0; i < ratelimit.KeyLockoutMax-1; i++ {
		wrong()
	}
	if rec := right(); rec.Code != 200 {
		t.Errorf("after success and 4 failures: %d", rec.Code)
	}
	// The fifth (after the success above, four again plus one) locks; so
	// does the lock hold without further failures for the whole window.
	for i := 0; i < ratelimit.KeyLockoutMax; i++ {
		wrong()
	}
	if rec := right(); rec.Code != 429 {
		t.Errorf("relocked: %d", rec.Code)
	}
	e.clock.Advance(ratelimit.KeyLockoutWindow)
	if rec := right(); rec.Code != 200 {
		t.Errorf("after a quiet window: %d", rec.Code)
	}
}

func TestWhitelistAndBlacklist(t *testing.T) {
	const forbidden = `{"error":{"message":"Forbidden (by ADMIN_WHITELIST)"}}`
	tests := []struct {
		name    string
		trusted string
		remote  string
		xff     string
		allowed bool
	}{
		{"IPv4 in CIDR", "0", "10.20.30.40:1", "", true},
		{"IPv4 outside", "0", "11.0.0.1:1", "", false},
		{"single IPv4", "0", "198.51.100.7:1", "", true},
		{"next to the single IPv4", "0", "198.51.100.8:1", "", false},
		{"IPv6 in CIDR", "0", "[2001:db8::beef]:1", "", true},
		{"IPv6 outside", "0", "[2001:db9::1]:1", "", false},
		{"IPv4-mapped IPv6", "0", "[::ffff:10.1.2.3]:1", "", true},
		{"XFF ignored without trusted proxies", "0", "203.0.113.9:1", "10.0.0.1", false},
		{"client behind one trusted proxy", "1", "35.191.0.1:1", "10.0.0.1", true},
		{"spoofed leftmost XFF entry", "1", "35.191.0.1:1", "10.0.0.1, 203.0.113.9", false},
		{"spoofed entries across headers", "1", "35.191.0.1:1", "10.0.0.1\n203.0.113.9", false},
		{"two trusted hops", "2", "35.191.0.1:1", "10.0.0.1, 130.211.0.1", true},
		{"two hops, spoofed", "2", "35.191.0.1:1", "10.0.0.1, 203.0.113.9, 130.211.0.1", false},
		{"garbage XFF stops the chain at the proxy", "1", "35.191.0.1:1", "10.0.0.1, not-an-ip", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, map[string]string{
				"ADMIN_WHITELIST": "10.0.0.0/8, 2001:db8::/32, 198.51.100.7",
				"TRUSTED_PROXIES": tc.trusted,
			})
			r := req{path: "/admin/users", remote: tc.remote}
			if tc.xff != "" {
				r.xff = strings.Split(tc.xff, "\n") // one header line each
			}
			rec := e.do(r)
			if tc.allowed {
				if rec.Code != 200 {
					t.Fatalf("refused: %d %s", rec.Code, rec.Body.String())
				}
				return
			}
			if rec.Code != 403 || strings.TrimSpace(rec.Body.String()) != forbidden {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
			// Refused before anything else: no key needed to be refused, the
			// UI and the document are refused too, and nothing counts as a
			// failed key.
			for _, p := range []string{"/admin/", "/admin/login", "/admin/openapi.yaml", "/admin/users/x/y"} {
				r2 := r
				r2.path, r2.noAuth = p, true
				if rec := e.do(r2); rec.Code != 403 || strings.TrimSpace(rec.Body.String()) != forbidden {
					t.Errorf("%s: %d %s", p, rec.Code, rec.Body.String())
				}
			}
		})
	}
	t.Run("blacklist", func(t *testing.T) {
		e := newEnv(t, map[string]string{"IP_BLACKLIST": "192.0.2.10, 2001:db8::/48"})
		for _, remote := range []string{"192.0.2.10:1", "[2001:db8::5]:1"} {
			got := wantError(t, e.do(req{path: "/admin/users", remote: remote}), 403, "")
			if got.Error.Message != "Forbidden (by IP_BLACKLIST)" {
				t.Errorf("%s: %q", remote, got.Error.Message)
			}
		}
		if rec := e.do(req{path: "/admin/users", remote: "192.0.2.11:1"}); rec.Code != 200 {
			t.Errorf("not blacklisted: %d", rec.Code)
		}
	})
}

func TestStoreErrorsNeverLeak(t *testing.T) {
	secretTok := "c2b9e4d7-81f0-4a3b-b6c5-d4e3f2a1b0c9"
	tests := []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"internal", fmt.Errorf("rtdb: GET https://db.example/users/%s.json: dial tcp 10.0.0.9:443: refused", secretTok), 500, "Internal error."},
		{"unavailable", &users.Error{Code: users.CodeUnavailable, Message: "The user database is unreachable.", Err: errors.New("rtdb: 503 at /users/" + secretTok)}, 503, "The user database is unreachable."},
		{"deadline", fmt.Errorf("rtdb: %w", context.DeadlineExceeded), 503, "The user store did not answer in time; try again."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, withStore(errStore{err: tc.err}))
			for _, r := range []req{
				{path: "/admin/users"},
				{path: "/admin/users/" + secretTok},
				{method: http.MethodPut, path: "/admin/users/" + secretTok, body: map[string]any{}},
				{method: http.MethodPost, path: "/admin/maintenance/reset-counts"},
			} {
				got := wantError(t, e.do(r), tc.code, "")
				if got.Error.Message != tc.msg {
					t.Errorf("%s %s: message %q", r.method, r.path, got.Error.Message)
				}
			}
			logs := e.log.String()
			if strings.Contains(logs, secretTok) {
				t.Errorf("log holds a full token:\n%s", logs)
			}
			if tc.code == 500 && !strings.Contains(logs, "dial tcp") {
				t.Errorf("log lacks the internal cause:\n%s", logs)
			}
		})
	}
}

// An ADMIN_KEY or PROXY_KEY that the path redaction cannot tell from
// text (short, or with punctuation) is still never logged whole: not in
// an API path, a UI path, or an unknown one.
func TestLogsNeverHoldShortOrPunctuatedKeys(t *testing.T) {
	const admin, proxyKey = "adm.key.2024", "Tr0ub4dor&3"
	e := newEnv(t, map[string]string{"ADMIN_KEY": admin, "PROXY_KEY": proxyKey})
	for _, k := range []string{admin, proxyKey} {
		for _, p := range []string{"/admin/users/", "/manage/users/", "/nowhere/"} {
			e.do(req{path: p + url.PathEscape(k), key: admin})
		}
	}
	logs := e.log.String()
	if n := strings.Count(logs, `"httpRequest"`); n != 6 {
		t.Fatalf("%d request lines, want 6:\n%s", n, logs)
	}
	for _, k := range []string{admin, proxyKey, url.PathEscape(proxyKey)} {
		if strings.Contains(logs, k) {
			t.Errorf("log holds %q:\n%s", k, logs)
		}
	}
}

func TestLogsNeverHoldSecrets(t *testing.T) {
	e := newEnv(t, nil)
	tokens := []string{"c2b9e4d7-81f0-4a3b-b6c5-d4e3f2a1b0c9"}
	rec := e.do(req{method: http.MethodPost, path: "/admin/users", body: map[string]any{"nickname": "n"}})
	tokens = append(tokens, decode[createdBody](t, rec).Token)
	e.putUser(tokens[0], map[string]any{"adminNote": "x"})
	for _, tok := range tokens {
		e.do(req{path: "/admin/users/" + tok})
		e.do(req{path: "/users/" + tok})
		e.do(req{method: http.MethodDelete, path: "/admin/users/" + tok + "?disabledReason=" + tok})
		e.do(req{method: http.MethodPost, path: "/admin/users/" + tok + "/reactivate"})
		e.do(req{method: http.MethodPost, path: "/admin/users/" + tok + "/refresh-quota"})
		e.do(req{method: http.MethodPut, path: "/admin/users/" + tok, body: map[string]any{"bogus": tok}})
		e.do(req{path: "/admin/users/" + tok, key: tok}) // a token tried as the key
	}
	e.do(req{path: "/admin/users?sort=" + testKey})
	e.do(req{path: "/admin/users", key: testKey + "x"})
	e.do(req{path: "/admin/users/" + testKey})

	logs := e.log.String()
	if strings.Contains(logs, testKey) {
		t.Errorf("log holds ADMIN_KEY:\n%s", logs)
	}
	for _, tok := range tokens {
		if strings.Contains(logs, tok) {
			t.Errorf("log holds token %s:\n%s", tok, logs)
		}
		if !strings.Contains(logs, `"token":"…`+tok[len(tok)-4:]+`"`) {
			t.Errorf("log lacks the tail of %s", tok)
		}
	}
	if !strings.Contains(logs, `"route":"GET /users/{token}"`) {
		t.Errorf("log lacks the route pattern:\n%s", logs)
	}
}

// A path with an empty, "." or ".." segment is sent to its cleaned form
// under the mount it came by: the router's own redirect dropped the
// prefix, so under Hosting /admin/manage//users went to /manage/users,
// which is not the admin function at all.
func TestUncleanPathsRedirectUnderTheMount(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct{ path, auth, want string }{
		{"/admin/manage//users?q=x", "", "/admin/manage/users?q=x"},
		{"/admin/manage/./new", "", "/admin/manage/new"},
		{"/admin/manage/users/../dashboard", "", "/admin/manage/dashboard"},
		{"/admin//manage/users", "", "/admin/manage/users"},
		{"/admin//evil.example/", "", "/admin/evil.example/"},
		{"/manage//users", "", "/manage/users"},
		{"/admin/users//some-token?x=1", "Bearer " + testKey, "/admin/users/some-token?x=1"},
		{"/users/./some-token", "Bearer " + testKey, "/users/some-token"},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		r.RemoteAddr = "192.0.2.10:4321"
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != tc.want {
			t.Errorf("%s: %d to %q, want 307 to %q", tc.path, rec.Code, rec.Header().Get("Location"), tc.want)
		}
	}
	// The API still asks for the key first.
	r := httptest.NewRequest(http.MethodGet, "/admin/users//some-token", nil)
	r.RemoteAddr = "192.0.2.10:4321"
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("unauthenticated unclean API path: %d", rec.Code)
	}
}
