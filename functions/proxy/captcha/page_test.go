package captcha_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The vendored hash-wasm build is pinned: a changed file fails here until
// the pin (and static/hash-wasm/SOURCE.md) are updated on purpose.
func TestVendoredHashWasmPinned(t *testing.T) {
	pins := map[string]string{
		"static/hash-wasm/argon2.umd.min.js": "acfe11b015852f593aaddc51116f71dc7850e4551e6b34d42c1f88cf39635f03",
		"static/hash-wasm/LICENSE":           "c14dea172f72f2714284a0ac2ab1b00b5352a01409d58255a46227ffc541debd",
	}
	for path, want := range pins {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: SHA-256 %s, pinned %s", path, got, want)
		}
	}
	// What is served is the pinned file.
	e := newEnv(t, nil)
	r := do(t, e.h, http.MethodGet, "/user/captcha/argon2.umd.min.js", ipA, nil)
	sum := sha256.Sum256(r.body)
	if r.status != 200 || hex.EncodeToString(sum[:]) != pins["static/hash-wasm/argon2.umd.min.js"] {
		t.Errorf("served argon2 build: %d, SHA-256 %x", r.status, sum)
	}
}

func TestPageAndAssets(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_DIFFICULTY_LEVEL": "medium", "POW_TOKEN_HOURS": "12", "POW_TOKEN_MAX_IPS": "3"})
	r := do(t, e.h, http.MethodGet, "/user/captcha", ipA, nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("page: %d %s", r.status, r.header.Get("Content-Type"))
	}
	page := string(r.body)
	for _, want := range []string{"<b>medium</b>", "about 900 hashes", "<b>12 hours</b>", "at most <b>3</b> addresses", "30 minutes"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q allows inline code or another origin", csp)
	}
	// Nothing inline: every script and style comes from the page's own files.
	if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>|<style|\son[a-z]+=`).MatchString(page) {
		t.Error("the page has inline script, style or event handlers, which its CSP forbids")
	}
	// No third-party request: no absolute URL anywhere the browser loads.
	absolute := regexp.MustCompile(`(?i)(?:src|href)\s*=\s*["']?(?:https?:)?//|importScripts\(\s*["'](?:https?:)?//|fetch\(\s*["'](?:https?:)?//`)
	for _, name := range []string{"", "/page.js", "/worker.js", "/style.css", "/argon2.umd.min.js"} {
		r := do(t, e.h, http.MethodGet, "/user/captcha"+name, ipA, nil)
		if r.status != 200 {
			t.Errorf("GET /user/captcha%s: %d", name, r.status)
			continue
		}
		if r.header.Get("Content-Security-Policy") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("/user/captcha%s served without CSP or nosniff", name)
		}
		if loc := absolute.FindString(string(r.body)); loc != "" {
			t.Errorf("/user/captcha%s loads from another origin: %q", name, loc)
		}
	}
	// The headers every tollgate page sends; the page shares its origin
	// with the admin UI under Hosting.
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Content-Security-Policy": csp} {
		if r.header.Get(k) != v {
			t.Errorf("page %s: %q, want %q", k, r.header.Get(k), v)
		}
	}
	if r := do(t, e.h, http.MethodGet, "/user/captcha/worker.js", ipA, nil); !strings.HasPrefix(r.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("worker.js Content-Type %q", r.header.Get("Content-Type"))
	}
}

// The page's JSON endpoints read a body of any Content-Type, so a page of
// another site could post to them from its visitors' browsers without a
// preflight: each unknown token asked to refresh took one of the
// visitor's address's ten, and the visitor was locked out of refreshing.
// What a browser says comes from another site (Sec-Fetch-Site) is refused
// before it counts.
func TestCrossSitePostsRefused(t *testing.T) {
	e := newEnv(t, nil)
	post := func(path, site string, body any) reply {
		t.Helper()
		raw, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-Test-IP", ipA)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return reply{rec.Code, rec.Header(), rec.Body.Bytes()}
	}
	for i := range 15 {
		site := []string{"cross-site", "same-site"}[i%2]
		r := post("/user/captcha/challenge", site, map[string]string{"action": "refresh", "token": fmt.Sprintf("guessed-token-%02d", i)})
		if r.status != http.StatusForbidden || !strings.Contains(r.errorText(t), "another site") {
			t.Errorf("refresh %d (%s): %d %s", i, site, r.status, r.body)
		}
	}
	if r := post("/user/captcha/verify", "cross-site", map[string]string{"challenge": "x", "solution": "1"}); r.status != http.StatusForbidden {
		t.Errorf("verify from another site: %d %s", r.status, r.body)
	}
	for _, site := range []string{"same-origin", ""} {
		r := post("/user/captcha/challenge", site, map[string]string{"action": "refresh", "token": "unknown-token-0001"})
		if r.status != http.StatusNotFound {
			t.Fatalf("Sec-Fetch-Site %q, after the refused posts: %d %s", site, r.status, r.body)
		}
	}
	if c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"}); c.Challenge == "" {
		t.Fatal("no challenge for the page itself")
	}
}
