package captcha_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/functions/proxy/captcha"
	"tollgate.dev/tollgate/shared/pow"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

func TestIssuesAnOrdinaryTemporaryUser(t *testing.T) {
	e := newEnv(t, nil)
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	if c.Work != 4 || c.Params.IP != ipA || c.Params.Refresh != "" {
		t.Fatalf("challenge = work %d, %+v", c.Work, c.Params)
	}
	if got := e.clock.Now().Add(30 * time.Minute).UnixMilli(); c.Params.Expires != got {
		t.Errorf("challenge expires %d, want POW_CHALLENGE_TIMEOUT (30 min) from now, %d", c.Params.Expires, got)
	}
	r := verify(t, e.h, ipA, c, solve(t, c))
	if r.status != http.StatusOK {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	var got issued
	r.decode(t, &got)
	wantExp := e.clock.Now().Add(24 * time.Hour).UnixMilli()
	if got.ExpiresAt != wantExp || got.MaxIPs != 2 || got.TokenLimits["gpt4o"] != 50000 || got.Refreshed {
		t.Errorf("issued = %+v; want expiry in POW_TOKEN_HOURS (24 h), 2 IPs, the TOKEN_QUOTA_GPT4O quota", got)
	}
	u, err := e.store.Get(ctx(t), got.Token)
	if err != nil {
		t.Fatalf("the issued token is not in the store: %v", err)
	}
	if u.Type != users.Temporary || u.ExpiresAt != wantExp || u.MaxIPsOr(0) != 2 || !u.Refreshable() ||
		!slices.Equal(u.IP, []string{ipA}) || u.TokenLimits["gpt4o"] != 50000 || u.CreatedAt != e.clock.Now().UnixMilli() {
		t.Errorf("stored user = %+v", u)
	}
	// Expiry is the gatekeeper's ordinary rule for temporary users.
	if u.Expired(e.clock.Now().Add(24*time.Hour-time.Millisecond)) || !u.Expired(e.clock.Now().Add(24*time.Hour)) {
		t.Error("the issued user does not expire after POW_TOKEN_HOURS")
	}
}

func TestSolutionIsSingleUse(t *testing.T) {
	e := newEnv(t, nil)
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	sol := solve(t, c)
	if r := verify(t, e.h, ipA, c, sol); r.status != http.StatusOK {
		t.Fatalf("first verify: %d %s", r.status, r.body)
	}
	e.clock.Advance(2 * time.Minute) // past the per-minute limit
	r := verify(t, e.h, ipA, c, sol)
	if r.status != http.StatusConflict || !strings.Contains(r.errorText(t), "already used") {
		t.Fatalf("replay: %d %s, want 409", r.status, r.body)
	}
	list, _ := e.store.List(ctx(t))
	if len(list) != 1 {
		t.Errorf("%d users after a replay, want 1", len(list))
	}
	// Replays cost a hash each, so they lock the address out like wrong
	// solutions do.
	verify(t, e.h, ipA, c, sol)
	verify(t, e.h, ipA, c, sol)
	if r := verify(t, e.h, ipA, c, sol); r.status != http.StatusTooManyRequests {
		t.Errorf("after 3 replays: %d %s, want 429", r.status, r.body)
	}
}

func TestVerifyRefuses(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_DIFFICULTY_LEVEL": "1000000000"})
	other := newHandler(t, loadConfig(t, map[string]string{"ADMIN_KEY": "another-admin-key", "POW_DIFFICULTY_LEVEL": "1000000000"}), e.store, e.clock)
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	foreign := getChallenge(t, other, ipA, map[string]string{"action": "new"})
	payload, sig, _ := strings.Cut(c.Challenge, ".")
	tampered := strings.Replace(payload, payload[10:11], map[bool]string{true: "B", false: "A"}[payload[10] == 'A'], 1) + "." + sig
	tests := []struct {
		name, ip, challenge, solution string
		status                        int
		msg                           string
	}{
		{"tampered challenge", ipA, tampered, "1", 400, "not issued by this proxy"},
		{"another proxy's challenge", ipA, foreign.Challenge, "1", 400, "not issued by this proxy"},
		{"garbage", ipA, "not-a-challenge", "1", 400, "malformed"},
		{"other address", ipB, c.Challenge, "1", 400, "address the challenge was issued to"},
		{"wrong solution", ipA, c.Challenge, "1", 400, "does not solve"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, e.h, http.MethodPost, "/user/captcha/verify", tc.ip, map[string]string{"challenge": tc.challenge, "solution": tc.solution})
			if r.status != tc.status || !strings.Contains(r.errorText(t), tc.msg) {
				t.Errorf("%d %s, want %d with %q", r.status, r.body, tc.status, tc.msg)
			}
		})
	}
	list, _ := e.store.List(ctx(t))
	if len(list) != 0 {
		t.Errorf("%d users issued by refused solutions", len(list))
	}
}

func TestExpiredChallenge(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_CHALLENGE_TIMEOUT": "5"})
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	sol := solve(t, c)
	e.clock.Advance(5*time.Minute + time.Millisecond)
	r := verify(t, e.h, ipA, c, sol)
	if r.status != http.StatusBadRequest || !strings.Contains(r.errorText(t), "expired") {
		t.Fatalf("late verify: %d %s", r.status, r.body)
	}
}

func TestFailedSolutionsLockTheAddressOut(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_DIFFICULTY_LEVEL": "1000000000"})
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	for i := range 3 {
		if r := verify(t, e.h, ipA, c, "1"); r.status != http.StatusBadRequest {
			t.Fatalf("wrong solution %d: %d %s", i, r.status, r.body)
		}
	}
	r := verify(t, e.h, ipA, c, "1")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 3 wrong solutions: %d %s, want 429 with Retry-After", r.status, r.body)
	}
	// Another address is not affected.
	cb := getChallenge(t, e.h, ipB, map[string]string{"action": "new"})
	if r := verify(t, e.h, ipB, cb, "1"); r.status != http.StatusBadRequest {
		t.Errorf("other address: %d %s, want its own 400", r.status, r.body)
	}
}

// Wrong solutions sent at once from one address are counted before they
// are hashed: no more of them cost a hash than the lockout allows, and the
// rest are refused at once.
func TestConcurrentWrongSolutionsStopAtTheLockout(t *testing.T) {
	cfg := loadConfig(t, map[string]string{"POW_DIFFICULTY_LEVEL": "1000000000"})
	e := newEnv(t, nil)
	h, err := captcha.New(captcha.Options{Config: cfg, Store: e.store, Log: zerolog.Nop(), Now: e.clock.Now, ClientIP: testIP,
		Params: pow.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1, HashLen: 32}})
	if err != nil {
		t.Fatal(err)
	}
	c := getChallenge(t, h, ipA, map[string]string{"action": "new"})
	const n = 24
	var wrong, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch r := verify(t, h, ipA, c, strconv.Itoa(i+1)); {
			case r.status == http.StatusBadRequest && strings.Contains(string(r.body), "does not solve"):
				wrong.Add(1)
			case r.status == http.StatusTooManyRequests:
				refused.Add(1)
			default:
				t.Errorf("solution %d: %d %s", i+1, r.status, r.body)
			}
		})
	}
	wg.Wait()
	if wrong.Load() != 3 || refused.Load() != n-3 {
		t.Errorf("of %d wrong solutions at once: %d hashed and refused as wrong, %d refused as locked out; want 3 and %d",
			n, wrong.Load(), refused.Load(), n-3)
	}
}

// A solution waits for a hashing slot no longer than the slot wait: then
// 503 with Retry-After, and the attempt does not count as a failure.
func TestVerifyWaitsForASlotBoundedly(t *testing.T) {
	e := newEnv(t, nil)
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	release := captcha.Busy(e.h, 50*time.Millisecond)
	for range 4 { // more than the lockout allows, were they counted
		if r := verify(t, e.h, ipA, c, solve(t, c)); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			release()
			t.Fatalf("every slot busy: %d %s, want 503 with Retry-After", r.status, r.body)
		}
	}
	release()
	if r := verify(t, e.h, ipA, c, solve(t, c)); r.status != http.StatusOK {
		t.Fatalf("a slot free again: %d %s", r.status, r.body)
	}
}

func TestOneTokenAMinutePerAddress(t *testing.T) {
	e := newEnv(t, nil)
	earn(t, e.h, ipA)
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	r := verify(t, e.h, ipA, c, solve(t, c))
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("second token within the minute: %d %s, want 429", r.status, r.body)
	}
	earn(t, e.h, ipB) // another address is not held back
	e.clock.Advance(time.Minute)
	earn(t, e.h, ipA)
}

func TestMaxTokensPerIP(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_MAX_TOKENS_PER_IP": "2", "POW_TOKEN_HOURS": "1"})
	e.clock.now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // a window starts
	for range 2 {
		earn(t, e.h, ipA)
		e.clock.Advance(time.Minute)
	}
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	r := verify(t, e.h, ipA, c, solve(t, c))
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.errorText(t), "its 2 tokens") {
		t.Fatalf("third token in the hour: %d %s, want 429", r.status, r.body)
	}
	earn(t, e.h, ipB)
	e.clock.Advance(time.Hour)
	earn(t, e.h, ipA)
}

func TestRequestErrors(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/user/captcha/challenge", `{"action":"steal"}`, 400},
		{"POST", "/user/captcha/challenge", `{"action":"new","token":"abc"}`, 400},
		{"POST", "/user/captcha/challenge", `{"action":"new","extra":1}`, 400},
		{"POST", "/user/captcha/challenge", `{"action":"new"}{}`, 400},
		{"POST", "/user/captcha/challenge", `[`, 400},
		{"POST", "/user/captcha/challenge", `{"action":"refresh"}`, 400},
		{"POST", "/user/captcha/challenge", `{"action":"refresh","token":"no-such-token"}`, 404},
		{"POST", "/user/captcha/verify", `{"challenge":"x","solution":"1","more":true}`, 400},
		{"POST", "/user/captcha/verify", strings.Repeat(" ", 5000) + `{}`, 400},
		{"GET", "/user/captcha/challenge", "", 405},
		{"DELETE", "/user/captcha", "", 405},
		{"GET", "/user/captcha/nothing", "", 404},
		{"GET", "/user/captcha/static/page.html", "", 404},
	}
	for _, tc := range tests {
		r := do(t, e.h, tc.method, tc.path, ipA, tc.body)
		if r.status != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, r.status, r.body, tc.status)
			continue
		}
		r.errorText(t)
	}
}

func TestDisabledMode(t *testing.T) {
	cfg := loadConfig(t, map[string]string{"CAPTCHA_MODE": "none"})
	h := newHandler(t, cfg, nil, newClock())
	for _, path := range []string{"/user/captcha", "/user/captcha/challenge", "/user/captcha/worker.js"} {
		if r := do(t, h, http.MethodGet, path, ipA, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s with CAPTCHA_MODE=none: %d", path, r.status)
		}
	}
}

// Issuing prunes expired marks, so that spent challenges and address
// slots do not pile up in the store.
func TestIssuancePrunesExpiredMarks(t *testing.T) {
	e := newEnv(t, nil)
	marks := e.store.(users.Marks)
	if ok, _ := marks.Mark(ctx(t), "stale", e.clock.Now().Add(-time.Second)); !ok {
		t.Fatal("setup: Mark")
	}
	earn(t, e.h, ipA)
	if ok, err := marks.Mark(ctx(t), "stale", e.clock.Now().Add(-time.Second)); !ok || err != nil {
		t.Errorf("the expired mark survived an issuance: Mark = %v, %v", ok, err)
	}
}

// A lifetime under a millisecond (POW_TOKEN_HOURS accepts fractions) still
// windows the per-address cap instead of dividing by zero.
func TestTinyTokenLifetime(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_TOKEN_HOURS": "0.0000000001", "POW_MAX_TOKENS_PER_IP": "1"})
	earn(t, e.h, ipA)
}

// A spent mark outlives its challenge by a margin, so that an instance
// whose clock runs behind cannot accept a replay after a pruning.
func TestSpentMarkOutlivesTheChallenge(t *testing.T) {
	e := newEnv(t, map[string]string{"POW_CHALLENGE_TIMEOUT": "1"})
	c := getChallenge(t, e.h, ipA, map[string]string{"action": "new"})
	if r := verify(t, e.h, ipA, c, solve(t, c)); r.status != http.StatusOK {
		t.Fatalf("verify: %d %s", r.status, r.body)
	}
	marks := e.store.(users.Marks)
	n, err := marks.PruneMarks(ctx(t), time.UnixMilli(c.Params.Expires).Add(time.Second), 100)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 { // the address's minute only
		t.Errorf("pruned %d marks a second after the challenge expired, want 1 (not the spent one)", n)
	}
	if n, _ := marks.PruneMarks(ctx(t), time.UnixMilli(c.Params.Expires).Add(time.Minute+time.Millisecond), 100); n != 1 {
		t.Errorf("pruned %d marks after the margin, want the spent one", n)
	}
}

// The per-address issuance limits count an IPv6 /64 as one address, as the
// lockouts do: a client that holds the /64 whole cannot earn a token a
// minute from each of its addresses, nor pass POW_MAX_TOKENS_PER_IP so.
func TestIssuanceLimitsCountAnIPv6Slash64Once(t *testing.T) {
	const v6a, v6b, v6c, other = "2001:db8:7:1::1", "2001:db8:7:1::2", "2001:db8:7:1:ffff::3", "2001:db8:7:2::1"
	e := newEnv(t, map[string]string{"POW_MAX_TOKENS_PER_IP": "2", "POW_TOKEN_HOURS": "1"})
	e.clock.now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // a window starts
	earn(t, e.h, v6a)
	c := getChallenge(t, e.h, v6b, map[string]string{"action": "new"})
	if r := verify(t, e.h, v6b, c, solve(t, c)); r.status != http.StatusTooManyRequests {
		t.Fatalf("a second token within the minute from the same /64: %d %s, want 429", r.status, r.body)
	}
	earn(t, e.h, other) // another /64 is another address
	e.clock.Advance(time.Minute)
	earn(t, e.h, v6b)
	e.clock.Advance(time.Minute)
	c = getChallenge(t, e.h, v6c, map[string]string{"action": "new"})
	r := verify(t, e.h, v6c, c, solve(t, c))
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.errorText(t), "its 2 tokens") {
		t.Fatalf("a third token in the hour from the same /64: %d %s, want 429", r.status, r.body)
	}
}

// Two deployments that share SIGNING_KEY/ADMIN_KEY but not a store
// (another database, or another users node in one) keep separate
// single-use marks, so a challenge issued by one is refused by the other:
// one solution cannot earn a token on each. Another instance of the same
// deployment verifies it.
func TestChallengeOfAnotherDeploymentRefused(t *testing.T) {
	deployA := map[string]string{"GATEKEEPER_STORE": "memory", "FIREBASE_RTDB_URL": "https://deploy-a.firebaseio.com"}
	clk := newClock()
	a := newHandler(t, loadConfig(t, deployA), memory.New(), clk)
	for name, vars := range map[string]map[string]string{
		"another database":   {"GATEKEEPER_STORE": "memory", "FIREBASE_RTDB_URL": "https://deploy-b.firebaseio.com"},
		"another users node": {"GATEKEEPER_STORE": "memory", "FIREBASE_RTDB_URL": "https://deploy-a.firebaseio.com", "FIREBASE_USERS_REF_NAME": "users-b"},
	} {
		storeB := memory.New()
		b := newHandler(t, loadConfig(t, vars), storeB, clk)
		c := getChallenge(t, a, ipA, map[string]string{"action": "new"})
		r := verify(t, b, ipA, c, solve(t, c))
		if r.status != http.StatusBadRequest || !strings.Contains(r.errorText(t), "not issued by this proxy") {
			t.Errorf("%s: A's challenge verified by B: %d %s, want 400", name, r.status, r.body)
		}
		if list, _ := storeB.List(ctx(t)); len(list) != 0 {
			t.Errorf("%s: %d users issued by B for A's challenge", name, len(list))
		}
	}
	sameDeploy := newHandler(t, loadConfig(t, deployA), memory.New(), clk)
	c := getChallenge(t, a, ipA, map[string]string{"action": "new"})
	if r := verify(t, sameDeploy, ipA, c, solve(t, c)); r.status != http.StatusOK {
		t.Fatalf("another instance of A verifies A's challenge: %d %s, want 200", r.status, r.body)
	}
}
