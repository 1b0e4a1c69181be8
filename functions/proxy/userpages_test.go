package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/lifecycle"
	"tollgate.dev/tollgate/shared/users"
)

// Firebase Hosting rewrites /user/** to the proxy function with the path
// unchanged: the self-service page answers there, and its form posts back
// there.
func TestLookupAtHostingPath(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/user/lookup", "/proxy/user/lookup"} {
		a := e.do(call{method: http.MethodGet, path: path})
		if a.status != http.StatusOK || !strings.Contains(string(a.body), `action="`+path+`"`) {
			t.Errorf("GET %s: %d\n%s", path, a.status, a.body)
		}
	}
}

// IP_BLACKLIST is refused everywhere: the self-service page too, with
// the gatekeeper's live lists.
func TestLookupRefusesTheBlacklist(t *testing.T) {
	e := newEnv(t, nil)
	if a := e.do(call{method: http.MethodGet, path: "/proxy/user/lookup"}); a.status != http.StatusOK {
		t.Fatalf("before the blacklist: %d", a.status)
	}
	if err := e.d.Store.(users.LiveLists).SetIPLists(t.Context(), users.IPLists{Blacklist: []string{"127.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(e.d.Config.UserCacheTTL + time.Second)
	if a := e.do(call{method: http.MethodGet, path: "/proxy/user/lookup"}); a.status != http.StatusForbidden || !strings.Contains(string(a.body), "IP_BLACKLIST") {
		t.Fatalf("GET /user/lookup from a blacklisted address: %d\n%s", a.status, a.body)
	}
}

// The proof-of-work page gives no challenge to a blacklisted address,
// with the gatekeeper's live lists.
func TestCaptchaRefusesTheBlacklist(t *testing.T) {
	e := newEnv(t, map[string]string{"CAPTCHA_MODE": "proof_of_work"})
	challenge := call{path: "/proxy/user/captcha/challenge", body: `{"action":"new"}`, header: map[string]string{"Content-Type": "application/json"}}
	if a := e.do(challenge); a.status != http.StatusOK {
		t.Fatalf("before the blacklist: %d %s", a.status, a.body)
	}
	if err := e.d.Store.(users.LiveLists).SetIPLists(t.Context(), users.IPLists{Blacklist: []string{"127.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(e.d.Config.UserCacheTTL + time.Second)
	if a := e.do(challenge); a.status != http.StatusForbidden || !strings.Contains(string(a.body), "IP_BLACKLIST") {
		t.Fatalf("a challenge for a blacklisted address: %d\n%s", a.status, a.body)
	}
}

// A RisuAI client's x-risu-tk header identifies it to the proxy only: it
// never reaches the upstream.
func TestRisuHeaderNotForwarded(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	h := bearerH(tk)
	h["X-Risu-Tk"] = "eyJkYXRhIjp7ImlkIjoieCIsImV4cGlyZXNJbiI6OTk5OTk5OTk5OTl9LCJzaWciOiJBQUFBIn0="
	if a := e.do(call{path: provCases[0].path, body: provCases[0].body, header: h}); a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if got := e.fake(upstreamfake.OpenAI).Last(t).Header.Get("X-Risu-Tk"); got != "" {
		t.Errorf("upstream got x-risu-tk %q", got)
	}
	if u := e.get(tk); len(u.IP) != 1 || u.IP[0] != "127.0.0.1" {
		t.Errorf("an unsigned header changed the recorded address: %v", u.IP)
	}
}

// The service-info page and /health, which read no token, refuse a
// blacklisted address too: IP_BLACKLIST is refused everywhere.
func TestInfoAndHealthRefuseTheBlacklist(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/proxy/", "/proxy/health"} {
		if a := e.do(call{method: http.MethodGet, path: path}); a.status != http.StatusOK {
			t.Fatalf("GET %s before the blacklist: %d", path, a.status)
		}
	}
	if err := e.d.Store.(users.LiveLists).SetIPLists(t.Context(), users.IPLists{Blacklist: []string{"127.0.0.0/8"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(e.d.Config.UserCacheTTL + time.Second)
	for _, path := range []string{"/proxy/", "/proxy/health"} {
		if a := e.do(call{method: http.MethodGet, path: path}); a.status != http.StatusForbidden || !strings.Contains(string(a.body), "IP_BLACKLIST") {
			t.Fatalf("GET %s from a blacklisted address: %d\n%s", path, a.status, a.body)
		}
	}
}

// A request the instance cannot serve, shutting down or never started, is
// answered as every proxy-made error: 503, the x-oai-proxy-error headers,
// and the body in the shape of the API the path speaks.
func TestUnservedRequestsAnsweredAsProxyErrors(t *testing.T) {
	shapes := []struct {
		path  string
		field []string
		want  any
	}{
		{"/proxy/anthropic/v1/messages", []string{"type"}, "error"},                         // Anthropic's
		{"/proxy/anthropic/v1/chat/completions", []string{"error", "type"}, "server_error"}, // OpenAI's, translated
		{"/proxy/google-ai/v1beta/models/gemini-pro:generateContent", []string{"error", "status"}, "UNAVAILABLE"},
		{"/openai/v1/chat/completions", []string{"error", "type"}, "server_error"}, // behind the function's own URL
	}
	check := func(t *testing.T, a answer, path string, field []string, want any) {
		t.Helper()
		if a.status != http.StatusServiceUnavailable || a.header.Get("X-Oai-Proxy-Error") != "Service unavailable" ||
			a.header.Get("X-Oai-Proxy-Error-Status") != "503" || dig(a.json(t), field...) != want {
			t.Errorf("%s: %d %v %s", path, a.status, a.header, a.body)
		}
	}
	t.Run("shutting down", func(t *testing.T) {
		e := newEnv(t, nil)
		e.drain.Close(t.Context())
		for _, s := range shapes {
			check(t, e.do(call{path: s.path, body: `{}`}), s.path, s.field, s.want)
		}
	})
	t.Run("not started", func(t *testing.T) {
		e := newEnv(t, nil)
		failed := lifecycle.NewLazy(func(context.Context) (http.Handler, error) { return nil, errors.New("no store") }, func(error) {}).
			Refusing(Unavailable)
		srv := httptest.NewServer(failed)
		t.Cleanup(srv.Close)
		e.srv = srv
		for _, s := range shapes {
			check(t, e.do(call{path: s.path, body: `{}`}), s.path, s.field, s.want)
		}
	})
}
