package captcha_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/userstest"
	"tollgate.dev/tollgate/shared/web"
)

func refreshOnce(t *testing.T, e *env, ip, token string) reply {
	t.Helper()
	c := getChallenge(t, e.h, ip, map[string]string{"action": "refresh", "token": token})
	if c.Work != 2 || c.Params.Refresh != token {
		t.Fatalf("refresh challenge: work %d (want half of 4), refresh %q", c.Work, c.Params.Refresh)
	}
	return verify(t, e.h, ip, c, solve(t, c))
}

func TestRefreshExtendsAnExpiredToken(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_TOKEN_HOURS": "2"})
	tok := earn(t, e.h, ipA).Token
	// It expires, the maintenance sweep disables it; until the purge
	// window ends it can still be refreshed.
	e.clock.Advance(3 * time.Hour)
	svc := &users.Service{Store: e.store, Now: e.clock.Now}
	if n, err := svc.Maintain(ctx(t), users.ActionExpireTemporary); n != 1 || err != nil {
		t.Fatalf("expire-temporary = %d, %v", n, err)
	}
	r := refreshOnce(t, e, ipA, tok)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	var got issued
	r.decode(t, &got)
	want := e.clock.Now().Add(2 * time.Hour).UnixMilli()
	if got.Token != tok || !got.Refreshed || got.ExpiresAt != want {
		t.Errorf("refresh answer = %+v, want the same token until %d", got, want)
	}
	u, _ := e.store.Get(ctx(t), tok)
	if u.Disabled() || u.ExpiresAt != want || u.Expired(e.clock.Now()) {
		t.Errorf("refreshed user = %+v: still disabled or expired", u)
	}
	list, _ := e.store.List(ctx(t))
	if len(list) != 1 {
		t.Errorf("%d users after a refresh, want 1", len(list))
	}
}

func TestRefreshLimits(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_TOKEN_MAX_REFRESHES": "1", "POW_TOKEN_PURGE_HOURS": "1", "POW_TOKEN_MAX_IPS": "1"})
	tok := earn(t, e.h, ipA).Token
	e.clock.Advance(time.Minute)
	if r := refreshOnce(t, e, ipA, tok); r.status != http.StatusOK {
		t.Fatalf("first refresh: %d %s", r.status, r.body)
	}
	e.clock.Advance(time.Minute)
	r := do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipA, map[string]string{"action": "refresh", "token": tok})
	if r.status != http.StatusForbidden || !strings.Contains(r.errorText(t), "refreshed 1 times") {
		t.Errorf("refresh beyond POW_TOKEN_MAX_REFRESHES: %d %s", r.status, r.body)
	}

	other := earn(t, e.h, ipB).Token
	// From an address beyond the token's POW_TOKEN_MAX_IPS (1).
	e.clock.Advance(time.Minute)
	r = do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipA, map[string]string{"action": "refresh", "token": other})
	if r.status != http.StatusForbidden || !strings.Contains(r.errorText(t), "too many addresses") {
		t.Errorf("refresh from a new address over the limit: %d %s", r.status, r.body)
	}
	// Past expiry plus POW_TOKEN_PURGE_HOURS.
	e.clock.Advance(24*time.Hour + time.Hour + time.Second)
	r = do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipB, map[string]string{"action": "refresh", "token": other})
	if r.status != http.StatusForbidden || !strings.Contains(r.errorText(t), "too long ago") {
		t.Errorf("refresh after the purge window: %d %s", r.status, r.body)
	}
}

func TestRefreshRefusesOtherTokens(t *testing.T) {
	e := newEnv(t, nil)
	svc := &users.Service{Store: e.store, Now: e.clock.Now}
	normal, _ := svc.Create(ctx(t), users.Patch{})
	banned, _ := svc.Create(ctx(t), users.Patch{
		Type:      users.Opt[users.Type]{Set: true, Value: users.Temporary},
		ExpiresAt: users.Opt[int64]{Set: true, Value: e.clock.Now().Add(time.Hour).UnixMilli()},
		Meta:      users.Opt[map[string]any]{Set: true, Value: map[string]any{"refreshable": true}},
	})
	if _, err := svc.Disable(ctx(t), banned.Token, "abuse"); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"normal": normal.Token, "disabled by an admin": banned.Token} {
		r := do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipA, map[string]string{"action": "refresh", "token": tok})
		if r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", name, r.status, r.body)
		}
	}
}

// A temporary token without its own maxIps has MAX_IPS_PER_USER as its
// address limit, as at authentication: it is not refreshed from an
// address the proxy would refuse it from.
func TestRefreshHoldsTheDefaultAddressLimit(t *testing.T) {
	e := newEnv(t, map[string]string{"MAX_IPS_PER_USER": "1"})
	svc := &users.Service{Store: e.store, Now: e.clock.Now}
	u, err := svc.Create(ctx(t), users.Patch{
		Type:      users.Opt[users.Type]{Set: true, Value: users.Temporary},
		ExpiresAt: users.Opt[int64]{Set: true, Value: e.clock.Now().Add(time.Hour).UnixMilli()},
		IP:        users.Opt[[]string]{Set: true, Value: []string{ipB}},
		Meta:      users.Opt[map[string]any]{Set: true, Value: map[string]any{"refreshable": true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipA, map[string]string{"action": "refresh", "token": u.Token})
	if r.status != http.StatusForbidden || !strings.Contains(r.errorText(t), "too many addresses") {
		t.Errorf("refresh from a second address under MAX_IPS_PER_USER=1: %d %s, want 403", r.status, r.body)
	}
	if r := refreshOnce(t, e, ipB, u.Token); r.status != http.StatusOK {
		t.Errorf("refresh from the token's own address: %d %s", r.status, r.body)
	}
}

// Asking to refresh unknown tokens is limited per address as the lookup
// page is: after 10 within 10 minutes the address is refused without a
// store read, even for a real token, and another address is not.
func TestRefreshOfUnknownTokensLocksTheAddressOut(t *testing.T) {
	e := newEnv(t, nil)
	tok := earn(t, e.h, ipB).Token
	for i := range 10 {
		r := do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipA, map[string]string{"action": "refresh", "token": fmt.Sprintf("guess-%04d", i)})
		if r.status != http.StatusNotFound {
			t.Fatalf("unknown token %d: %d %s, want 404", i, r.status, r.body)
		}
	}
	r := do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipA, map[string]string{"action": "refresh", "token": tok})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 10 unknown tokens: %d %s, want 429 with Retry-After", r.status, r.body)
	}
	e.clock.Advance(time.Minute)
	if r := do(t, e.h, http.MethodPost, "/user/captcha/challenge", ipB, map[string]string{"action": "refresh", "token": tok}); r.status != http.StatusOK {
		t.Errorf("another address: %d %s, want its challenge", r.status, r.body)
	}
}

// Refreshes asked at once cannot together try more unknown tokens than
// the lockout allows: each counts as a failure from the moment it
// arrives, not only once the database has answered that its token is
// unknown.
func TestConcurrentRefreshesOfUnknownTokensStopAtTheLockout(t *testing.T) {
	mem := memory.New()
	store := userstest.NewHeldStore(mem)
	h := newHandler(t, loadConfig(t, nil), struct {
		*userstest.HeldStore
		users.Marks
	}{store, mem}, newClock())
	const sent = 30
	counts := store.SendAtOnce(t, sent, func(i int) int {
		return do(t, h, http.MethodPost, "/user/captcha/challenge", ipA, map[string]string{"action": "refresh", "token": fmt.Sprintf("guess-%04d", i)}).status
	})
	if counts[http.StatusNotFound] > 10 || counts[http.StatusNotFound]+counts[http.StatusTooManyRequests] != sent {
		t.Fatalf("of %d unknown tokens sent at once, %d were looked up (the lockout allows 10); statuses %v",
			sent, counts[http.StatusNotFound], counts)
	}
}

// IP_BLACKLIST is refused everywhere: a banned address earns no token,
// new or extended, and is given no challenge to work on.
func TestBlacklistedAddressEarnsNothing(t *testing.T) {
	e := newEnv(t, nil)
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"}) // solved after the ban
	tok := earn(t, e.h, ipA).Token
	e.clock.Advance(time.Minute)
	banned := newHandler(t, loadConfig(t, map[string]string{"IP_BLACKLIST": ipA}), e.store, e.clock)
	if r := verify(t, banned, ipA, c, solve(t, c)); r.status != http.StatusForbidden {
		t.Errorf("a solution sent from a blacklisted address: %d %s", r.status, r.body)
	}
	for _, req := range []map[string]string{{"action": "new"}, {"action": "refresh", "token": tok}} {
		if r := do(t, banned, http.MethodPost, "/user/captcha/challenge", ipA, req); r.status != http.StatusForbidden {
			t.Errorf("challenge %v for a blacklisted address: %d %s", req, r.status, r.body)
		}
	}
	if all, _ := e.store.List(ctx(t)); len(all) != 1 {
		t.Fatalf("%d users: a blacklisted address was issued a token", len(all))
	}
	// Another address is served as before.
	if r := do(t, banned, http.MethodPost, "/user/captcha/challenge", ipB, map[string]string{"action": "new"}); r.status != http.StatusOK {
		t.Errorf("another address: %d %s", r.status, r.body)
	}
}

// The rule is checked again when the solution comes back: an admin who
// disables the token meanwhile wins.
func TestRefreshRecheckedAtVerify(t *testing.T) {
	e := newEnv(t, nil)
	tok := earn(t, e.h, ipA).Token
	e.clock.Advance(time.Minute)
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "refresh", "token": tok})
	svc := &users.Service{Store: e.store, Now: e.clock.Now}
	if _, err := svc.Disable(ctx(t), tok, "abuse"); err != nil {
		t.Fatal(err)
	}
	r := verify(t, e.h, ipA, c, solve(t, c))
	if r.status != http.StatusForbidden {
		t.Fatalf("verify of a refresh for a token disabled meanwhile: %d %s", r.status, r.body)
	}
	if u, _ := e.store.Get(ctx(t), tok); !u.Disabled() {
		t.Error("the disabled token was revived")
	}
}

// An issued and refreshed user is an ordinary record: its JSON (what the
// admin API and the users.json export show) imports back unchanged.
func TestIssuedUserRoundTripsThroughExport(t *testing.T) {
	e := newEnv(t, nil)
	tok := earn(t, e.h, ipA).Token
	e.clock.Advance(time.Minute)
	if r := refreshOnce(t, e, ipA, tok); r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	u, _ := e.store.Get(ctx(t), tok)
	doc, err := json.Marshal(map[string]any{"users": []*users.User{u}, "count": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type":"temporary"`, `"expiresAt":`, `"maxIps":2`, `"refreshable":true`, `"powRefreshes":1`} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("export %s lacks %s", doc, want)
		}
	}
	ps, err := users.ParsePatchList(doc)
	if err != nil {
		t.Fatalf("the export does not import: %v", err)
	}
	other := memory.New()
	svc := &users.Service{Store: other, Now: e.clock.Now}
	if _, err := svc.Import(ctx(t), ps); err != nil {
		t.Fatal(err)
	}
	back, _ := other.Get(ctx(t), tok)
	a, _ := json.Marshal(u)
	b, _ := json.Marshal(back)
	if string(a) != string(b) {
		t.Errorf("re-imported user differs:\n%s\n%s", a, b)
	}
}

// A known token never locks the address out, so asking to refresh is
// counted too: past web.PageReadsPerMinute asks a minute from one
// address (an IPv6 /64 is one), 429 with Retry-After and no store read,
// so that a client looping on a token it holds costs the database a
// bounded number of reads. Other addresses, and the address a minute
// later, are served.
func TestRefreshAsksOfAKnownTokenAreLimitedPerAddress(t *testing.T) {
	mem := memory.New()
	store := userstest.NewCountedStore(mem)
	clk := newClock()
	h := newHandler(t, loadConfig(t, nil), struct {
		*userstest.CountedStore
		users.Marks
	}{store, mem}, clk)
	tok := earn(t, h, ipA).Token
	ask := func(ip string) reply {
		return do(t, h, http.MethodPost, "/user/captcha/challenge", ip, map[string]string{"action": "refresh", "token": tok})
	}
	const sent = 100
	before := store.Reads()
	counts := map[int]int{}
	var refused reply
	for i := range sent {
		// Every address of one /64 counts as one.
		r := ask(fmt.Sprintf("2001:db8:7:7::%x", i+1))
		counts[r.status]++
		if r.status == http.StatusTooManyRequests {
			refused = r
		}
	}
	reads := store.Reads() - before
	if reads > web.PageReadsPerMinute {
		t.Fatalf("%d asks to refresh a known token within a minute read the store %d times; want at most %d", sent, reads, web.PageReadsPerMinute)
	}
	if counts[http.StatusOK] != web.PageReadsPerMinute || counts[http.StatusTooManyRequests] != sent-web.PageReadsPerMinute {
		t.Fatalf("of %d asks within a minute from one /64, statuses %v; want %d served", sent, counts, web.PageReadsPerMinute)
	}
	secs, _ := strconv.Atoi(refused.header.Get("Retry-After"))
	if secs < 1 || secs > 60 || !strings.Contains(refused.errorText(t), "Too many refreshes asked") || refused.header.Get("Content-Type") != "application/json" {
		t.Fatalf("refused ask: Retry-After %q, %s", refused.header.Get("Retry-After"), refused.body)
	}
	if r := ask("2001:db8:7:8::1"); r.status != http.StatusOK {
		t.Errorf("another /64: %d %s", r.status, r.body)
	}
	if r := ask(ipA); r.status != http.StatusOK {
		t.Errorf("another address: %d %s", r.status, r.body)
	}
	clk.Advance(time.Minute)
	if r := refreshOnce(t, &env{t: t, h: h, store: store, clock: clk}, "2001:db8:7:7::1", tok); r.status != http.StatusOK {
		t.Errorf("a refresh a minute later: %d %s", r.status, r.body)
	}
}
