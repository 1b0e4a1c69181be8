package lookup_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/proxy/lookup"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/userstest"
	"tollgate.dev/tollgate/shared/web"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	t     *testing.T
	deps  lookup.Options
	clock *clock
	srv   *httptest.Server
}

// newEnv serves the page as the proxy function will: under web.Mount.
func newEnv(t *testing.T, vars map[string]string) *env {
	t.Helper()
	return newEnvWith(t, vars, memory.New())
}

// newEnvWith is newEnv over store.
func newEnvWith(t *testing.T, vars map[string]string, store users.Store) *env {
	t.Helper()
	vals := map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": "admin-key-for-tests", "MAX_IPS_PER_USER": "5"}
	for k, v := range vars {
		vals[k] = v
	}
	cfg, err := config.FromMap(vals)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)}
	d := lookup.Options{Config: cfg, Store: store, Now: c.Now}
	e := &env{t: t, deps: d, clock: c}
	e.srv = httptest.NewServer(web.Mount("proxy", lookup.New(d)))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) put(token, doc string) {
	e.t.Helper()
	p, err := users.ParsePatch([]byte(doc))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, _, err := (&users.Service{Store: e.deps.Store, Now: e.deps.Now}).Upsert(context.Background(), token, p); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) user(token string) *users.User {
	e.t.Helper()
	u, err := e.deps.Store.Get(context.Background(), token)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(method, path string, form url.Values) response {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func (e *env) lookup(token string) response {
	return e.do(http.MethodPost, "/proxy/user/lookup", url.Values{"token": {token}})
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfIn(t testing.TB, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no nickname form:\n%s", body)
	}
	return html.UnescapeString(m[1])
}

const tok = "8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50"

const nightOwl = `{"type":"normal","nickname":"night owl","ip":["203.0.113.7","2001:db8::42"],"maxIps":3,
	"promptCount":1523,"tokenCounts":{"gpt4o":910233,"claude":402211,"aws-claude":5},"tokenLimits":{"gpt4o":1000000,"claude":0},
	"tokenRefresh":{"gpt4o":250000},"createdAt":1714380000000,"lastUsedAt":1730712345678}`

func TestForm(t *testing.T) {
	e := newEnv(t, nil)
	res := e.do(http.MethodGet, "/proxy/user/lookup", nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET: %d", res.status)
	}
	// The token goes in a POSTed password field, never in a URL.
	if !strings.Contains(res.body, `<form method="post" action="/proxy/user/lookup"`) || !strings.Contains(res.body, `type="password" id="token" name="token"`) {
		t.Fatalf("form:\n%s", res.body)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Error("the page may be cached")
	}
	// The inline stylesheet is allowed by its hash, and nothing else is.
	start := strings.Index(res.body, "<style>") + len("<style>")
	css := res.body[start : start+strings.Index(res.body[start:], "</style>")]
	sum := sha256.Sum256([]byte(css))
	csp := res.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q does not allow exactly the inline style", csp)
	}
	for _, m := range []string{http.MethodPut, http.MethodDelete} {
		if res := e.do(m, "/proxy/user/lookup", nil); res.status != http.StatusMethodNotAllowed || res.header.Get("Allow") == "" {
			t.Errorf("%s: %d", m, res.status)
		}
	}
	if res := e.do(http.MethodGet, "/proxy/user/other", nil); res.status != http.StatusNotFound {
		t.Errorf("other path: %d", res.status)
	}
}

func TestLookup(t *testing.T) {
	e := newEnv(t, map[string]string{"QUOTA_REFRESH_PERIOD": "daily", "TOKEN_QUOTA_CLAUDE": "1000"})
	e.put(tok, nightOwl)
	res := e.lookup(tok)
	if res.status != http.StatusOK {
		t.Fatalf("lookup: %d\n%s", res.status, res.body)
	}
	for _, want := range []string{
		`id="masked">…4f50<`, "night owl", "normal", "1,523", `id="status">active`,
		"2024-04-29 08:40 UTC", // created
		"2 of 3",               // IPs and the user's own limit
		"<td>gpt4o</td><td class=\"num\">910,233</td><td class=\"num\">1,000,000</td><td class=\"num\">89,767</td><td class=\"num\">+250,000 (daily)</td>",
		"<td>claude</td><td class=\"num\">402,211</td><td class=\"num\">unlimited</td><td class=\"num\">—</td><td class=\"num\">+1,000 (daily)</td>",
		"<td>aws-claude</td>",
	} {
		if !strings.Contains(html.UnescapeString(res.body), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Count(res.body, tok) != 1 || !strings.Contains(res.body, `name="token" value="`+tok+`"`) {
		t.Error("the full token should appear only in the nickname form's hidden field")
	}
	if strings.Contains(res.body, "<td>gpt4</td>") {
		t.Error("families the user has no numbers for are listed")
	}
}

// The page counts the addresses of one IPv6 /64 once against the limit,
// as the limit does, and lists every address recorded (redacted).
func TestLookupCountsAnIPv6Slash64Once(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, `{"ip":["2001:db8:1:2::1","2001:db8:1:2::2","203.0.113.7"],"maxIps":3}`)
	body := html.UnescapeString(e.lookup(tok).body)
	if !strings.Contains(body, "2 of 3") || !strings.Contains(body, `id="ip-note">(3 addresses; those of one IPv6 /64 count once)`) {
		t.Errorf("count:\n%s", body)
	}
	if n := strings.Count(body, "<li><code>2001:db8:…</code></li>"); n != 2 {
		t.Errorf("%d IPv6 addresses listed, want 2", n)
	}
	e.put(tok, `{"ip":["203.0.113.7","203.0.113.8"]}`)
	if body := e.lookup(tok).body; !strings.Contains(body, "2 of 3") || strings.Contains(body, "ip-note") {
		t.Error("IPv4 addresses should count one each, without a note")
	}
}

func TestLookupTypes(t *testing.T) {
	e := newEnv(t, nil)
	e.put("temporary-user-0001", `{"type":"temporary","expiresAt":1742000000000,"tokenLimits":{"claude":5}}`)
	e.put("special-user-00001", `{"type":"special","tokenLimits":{"claude":5}}`)
	e.put("default-ips-00001", `{"type":"normal"}`)
	res := e.lookup("temporary-user-0001")
	if !strings.Contains(res.body, `id="expires">2025-03-15 00:53 UTC`) || !strings.Contains(res.body, `id="status">active`) {
		t.Errorf("temporary:\n%s", res.body)
	}
	e.clock.Add(24 * time.Hour)
	if res := e.lookup("temporary-user-0001"); !strings.Contains(res.body, `id="status">expired`) {
		t.Error("an expired temporary user is not shown as expired")
	}
	res = e.lookup("special-user-00001")
	if !strings.Contains(res.body, "0 of unlimited") || !strings.Contains(res.body, `<td class="num">unlimited</td>`) {
		t.Errorf("special users have no limits:\n%s", res.body)
	}
	if res := e.lookup("default-ips-00001"); !strings.Contains(res.body, "0 of 5") {
		t.Error("MAX_IPS_PER_USER is not shown as the limit")
	}
}

func TestNotFoundAndRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, nightOwl)
	for i := range 10 {
		token := "wrong-token-" + strconv.Itoa(i)
		if i == 3 {
			token = "not a token <at all>"
		}
		res := e.lookup(token)
		if res.status != http.StatusNotFound || !strings.Contains(res.body, "Token not found.") {
			t.Fatalf("attempt %d: %d\n%s", i, res.status, res.body)
		}
		if strings.Contains(res.body, "<at all>") {
			t.Fatal("the wrong token is echoed")
		}
	}
	res := e.lookup(tok)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("11th lookup after 10 failures: %d", res.status)
	}
	e.clock.Add(10*time.Minute + time.Second)
	if res := e.lookup(tok); res.status != http.StatusOK {
		t.Fatalf("after the window: %d", res.status)
	}
	if res := e.lookup("   "); res.status != http.StatusBadRequest {
		t.Errorf("empty token: %d", res.status)
	}
}

// Lookups sent at once cannot together try more unknown tokens than the
// lockout allows: each counts as a failure from the moment it arrives,
// not only once the database has answered that its token is unknown.
func TestConcurrentUnknownTokensStopAtTheLockout(t *testing.T) {
	store := userstest.NewHeldStore(memory.New())
	e := newEnvWith(t, nil, store)
	const sent = 30
	counts := store.SendAtOnce(t, sent, func(i int) int { return e.lookup(fmt.Sprintf("unknown-token-%02d", i)).status })
	if counts[http.StatusNotFound] > 10 || counts[http.StatusNotFound]+counts[http.StatusTooManyRequests] != sent {
		t.Fatalf("of %d unknown tokens sent at once, %d were looked up (the lockout allows 10); statuses %v",
			sent, counts[http.StatusNotFound], counts)
	}
	// A known token found meanwhile takes nothing of the allowance.
	e.clock.Add(10*time.Minute + time.Second)
	e.put(tok, nightOwl)
	for range 12 {
		if res := e.lookup(tok); res.status != http.StatusOK {
			t.Fatalf("known token after the window: %d", res.status)
		}
	}
	for i := range 10 {
		if res := e.lookup(fmt.Sprintf("unknown-token-%02d", i)); res.status != http.StatusNotFound {
			t.Fatalf("unknown token %d after known ones: %d", i, res.status)
		}
	}
	if res := e.lookup(tok); res.status != http.StatusTooManyRequests {
		t.Fatalf("after 10 unknown tokens: %d", res.status)
	}
}

// IP_BLACKLIST is refused everywhere, the self-service page included,
// with its live additions: a banned address can neither look tokens up
// nor rename them.
func TestBlacklistedAddressRefused(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"environment": {"IP_BLACKLIST": "127.0.0.0/8"},
		"live":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			// A form token as a lookup from elsewhere hands it out (the
			// same keys and clock sign alike).
			clean := newEnv(t, nil)
			clean.put(tok, nightOwl)
			csrf := csrfIn(t, clean.lookup(tok).body)
			e := newEnv(t, vars)
			e.put(tok, nightOwl)
			e.put(tok, `{"ip":["127.0.0.1"]}`)
			if vars == nil {
				if err := e.deps.Store.(users.LiveLists).SetIPLists(context.Background(), users.IPLists{Blacklist: []string{"127.0.0.1"}}); err != nil {
					t.Fatal(err)
				}
			}
			if res := e.do(http.MethodGet, "/proxy/user/lookup", nil); res.status != http.StatusForbidden || strings.Contains(res.body, `name="token"`) {
				t.Errorf("GET from a blacklisted address: %d", res.status)
			}
			res := e.lookup(tok)
			if res.status != http.StatusForbidden || strings.Contains(res.body, "night owl") || strings.Contains(res.body, "1,523") {
				t.Errorf("lookup from a blacklisted address: %d\n%s", res.status, res.body)
			}
			form := url.Values{"action": {"nickname"}, "token": {tok}, "csrf": {csrf}, "nickname": {"banned but renamed"}}
			if res := e.do(http.MethodPost, "/proxy/user/lookup", form); res.status != http.StatusForbidden || e.user(tok).Nickname != "night owl" {
				t.Errorf("rename from a blacklisted address: %d, nickname %q", res.status, e.user(tok).Nickname)
			}
		})
	}
}

func TestDisabledUser(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, `{"type":"normal","nickname":"banned","disabledAt":1730000000000,"disabledReason":"IP address limit exceeded."}`)
	res := e.lookup(tok)
	if res.status != http.StatusOK || !strings.Contains(res.body, `id="reason">IP address limit exceeded.`) || !strings.Contains(res.body, `id="status">disabled`) {
		t.Fatalf("disabled:\n%s", res.body)
	}
	if strings.Contains(res.body, `name="nickname"`) {
		t.Error("a disabled user is offered the nickname form")
	}
	// A forged rename of a disabled user is refused even with a valid form
	// token (taken from when it was active).
	e.deps.Store.Modify(context.Background(), tok, false, func(u *users.User, _ bool) error { u.Reactivate(); return nil })
	csrf := csrfIn(t, e.lookup(tok).body)
	e.deps.Store.Modify(context.Background(), tok, false, func(u *users.User, _ bool) error { u.Disable(time.Now(), "abuse"); return nil })
	res = e.do(http.MethodPost, "/proxy/user/lookup", url.Values{"action": {"nickname"}, "token": {tok}, "csrf": {csrf}, "nickname": {"back"}})
	if res.status != http.StatusForbidden || e.user(tok).Nickname != "banned" {
		t.Fatalf("rename of a disabled user: %d, nickname %q", res.status, e.user(tok).Nickname)
	}
}

func TestRename(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, nightOwl)
	e.put(tok, `{"ip":["203.0.113.7","2001:db8::42","127.0.0.1"]}`) // renamed from an address of its own
	e.put("other-user-00000001", `{"type":"normal"}`)
	csrf := csrfIn(t, e.lookup(tok).body)
	otherCSRF := csrfIn(t, e.lookup("other-user-00000001").body)
	rename := func(nick, csrf string) response {
		return e.do(http.MethodPost, "/proxy/user/lookup", url.Values{"action": {"nickname"}, "token": {tok}, "csrf": {csrf}, "nickname": {nick}})
	}
	for name, bad := range map[string]string{"missing": "", "other token's": otherCSRF, "garbage": "1.abc"} {
		if res := rename("forged", bad); res.status != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d", name, res.status)
		}
	}
	if e.user(tok).Nickname != "night owl" {
		t.Fatal("a forged form renamed the user")
	}
	res := rename("  early bird  ", csrf)
	if res.status != http.StatusOK || !strings.Contains(res.body, "Nickname saved.") || !strings.Contains(res.body, `id="nickname">early bird`) {
		t.Fatalf("rename: %d\n%s", res.status, res.body)
	}
	u := e.user(tok)
	if u.Nickname != "early bird" || u.PromptCount != 1523 || u.TokenLimits["gpt4o"] != 1000000 {
		t.Fatalf("user after rename: %+v", u)
	}
	if res := rename(strings.Repeat("x", 81), csrf); res.status != http.StatusBadRequest || !strings.Contains(res.body, "at most 80 characters") {
		t.Errorf("long nickname: %d", res.status)
	}
	// A token holder's nickname is visible text: one that breaks a line,
	// sends a terminal escape or turns the text around could pass for
	// another user's in the operator's lists and exports.
	for _, bad := range []string{"early\nbird", "early\x1b[2Jbird", "\u202Eowl thgin", "night\u200Bowl", "owl\u2066x\u2069"} {
		if res := rename(bad, csrf); res.status != http.StatusBadRequest || !strings.Contains(res.body, "visible text") {
			t.Errorf("nickname %q: %d", bad, res.status)
		}
	}
	if u := e.user(tok); u.Nickname != "early bird" {
		t.Fatalf("nickname after refused renames: %q", u.Nickname)
	}
	if res := rename("ночная сова 🦉", csrf); res.status != http.StatusOK || e.user(tok).Nickname != "ночная сова 🦉" {
		t.Errorf("a nickname in another script: %d %q", res.status, e.user(tok).Nickname)
	}
	if res := rename("", csrf); res.status != http.StatusOK || e.user(tok).Nickname != "" {
		t.Errorf("clearing the nickname: %d %q", res.status, e.user(tok).Nickname)
	}
	e.clock.Add(time.Hour + time.Second)
	if res := rename("late", csrf); res.status != http.StatusForbidden {
		t.Errorf("expired form: %d", res.status)
	}
}

func TestEscaping(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, `{"type":"normal","nickname":"<script>alert(1)</script>","disabledAt":1,"disabledReason":"<img src=x onerror=alert(2)>"}`)
	res := e.lookup(tok)
	if strings.Contains(res.body, "<script>alert") || strings.Contains(res.body, "<img src=x") {
		t.Fatal("user text is not escaped")
	}
	if !strings.Contains(res.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("the nickname is not shown")
	}
}

func TestNoticeOutsideUserTokenMode(t *testing.T) {
	e := newEnv(t, map[string]string{"GATEKEEPER": "none", "ADMIN_KEY": ""})
	if res := e.do(http.MethodGet, "/proxy/user/lookup", nil); !strings.Contains(res.body, "does not use personal tokens") {
		t.Fatal("no notice")
	}
	// At the function's root too.
	if res := e.do(http.MethodGet, "/user/lookup", nil); res.status != http.StatusOK || !strings.Contains(res.body, `action="/user/lookup"`) {
		t.Fatalf("at root: %d", res.status)
	}
}

// A page of another site can make its visitors' browsers post to this
// one (a form, or fetch in no-cors mode), and each unknown token so sent
// would take one of the visitor's address's ten: a few posts locked the
// visitor out of the page. What a browser says comes from another site
// (Sec-Fetch-Site) is refused before it counts; the page's own form, and
// clients that say nothing, are served as before.
func TestCrossSitePostsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, nightOwl)
	post := func(token, site string) response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/proxy/user/lookup", strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return response{status: res.StatusCode, header: res.Header, body: string(b)}
	}
	for i := range 15 {
		site := []string{"cross-site", "same-site"}[i%2]
		res := post(fmt.Sprintf("guessed-token-%02d", i), site)
		if res.status != http.StatusForbidden || !strings.Contains(res.body, "another site") {
			t.Errorf("post %d (%s): %d, want 403 saying it came from another site", i, site, res.status)
		}
	}
	if res := post(tok, "cross-site"); res.status != http.StatusForbidden || strings.Contains(res.body, "night owl") {
		t.Errorf("a known token from another site: %d", res.status)
	}
	for _, site := range []string{"same-origin", "none", ""} {
		if res := post(tok, site); res.status != http.StatusOK || !strings.Contains(res.body, "night owl") {
			t.Fatalf("Sec-Fetch-Site %q, after the refused posts: %d", site, res.status)
		}
	}
}

// A known token never locks the address out, so the lookups one address
// may make are counted too: past web.PageReadsPerMinute a minute, 429
// with Retry-After and no store read, so that a client looping on a token
// it holds costs the database a bounded number of reads. An honest
// sequence (look up, rename, look up) is far from the limit.
func TestLookupsOfAKnownTokenAreLimitedPerAddress(t *testing.T) {
	store := userstest.NewCountedStore(memory.New())
	e := newEnvWith(t, nil, store)
	var mu sync.Mutex
	from := "127.0.0.1"
	setFrom := func(ip string) { mu.Lock(); from = ip; mu.Unlock() }
	e.deps.ClientIP = func(*http.Request) string { mu.Lock(); defer mu.Unlock(); return from }
	e.srv = httptest.NewServer(web.Mount("proxy", lookup.New(e.deps)))
	t.Cleanup(e.srv.Close)
	e.put(tok, nightOwl)
	e.put(tok, `{"ip":["203.0.113.7","2001:db8::42","127.0.0.1"]}`) // may be renamed from 127.0.0.1

	res := e.lookup(tok)
	csrf := csrfIn(t, res.body)
	res = e.do(http.MethodPost, "/proxy/user/lookup", url.Values{"action": {"nickname"}, "token": {tok}, "csrf": {csrf}, "nickname": {"early bird"}})
	if res.status != http.StatusOK || !strings.Contains(res.body, "Nickname saved.") {
		t.Fatalf("honest rename: %d\n%s", res.status, res.body)
	}
	if res := e.lookup(tok); res.status != http.StatusOK || !strings.Contains(res.body, "early bird") {
		t.Fatalf("honest lookup after the rename: %d", res.status)
	}

	const sent = 100
	before := store.Reads()
	counts := map[int]int{}
	var refused response
	for i := range sent {
		setFrom(fmt.Sprintf("2001:db8:7:7::%x", i+1)) // every address of one /64 counts as one
		res := e.lookup(tok)
		counts[res.status]++
		if res.status == http.StatusTooManyRequests {
			refused = res
		}
	}
	reads := store.Reads() - before
	if reads > web.PageReadsPerMinute {
		t.Fatalf("%d lookups of a known token within a minute read the store %d times; want at most %d", sent, reads, web.PageReadsPerMinute)
	}
	if counts[http.StatusOK] != web.PageReadsPerMinute || counts[http.StatusTooManyRequests] != sent-web.PageReadsPerMinute {
		t.Fatalf("of %d lookups within a minute from one /64, statuses %v; want %d served", sent, counts, web.PageReadsPerMinute)
	}
	secs, _ := strconv.Atoi(refused.header.Get("Retry-After"))
	if secs < 1 || secs > 60 || !strings.Contains(refused.body, "Too many lookups from your address.") || strings.Contains(refused.body, "early bird") {
		t.Fatalf("refused lookup: Retry-After %q\n%s", refused.header.Get("Retry-After"), refused.body)
	}
	for _, ip := range []string{"2001:db8:7:8::1", "127.0.0.1"} {
		setFrom(ip)
		if res := e.lookup(tok); res.status != http.StatusOK {
			t.Errorf("another address, %s: %d", ip, res.status)
		}
	}
	e.clock.Add(time.Minute)
	setFrom("2001:db8:7:7::1")
	if res := e.lookup(tok); res.status != http.StatusOK {
		t.Fatalf("a minute later: %d", res.status)
	}
}
