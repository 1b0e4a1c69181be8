package gatekeeper_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// rtdbGatekeeper is a gatekeeper over the RTDB store on the in-process
// fake, with tokA (gpt4o quota 1000, created at t0) in the database.
func rtdbGatekeeper(t *testing.T, env map[string]string, edit func(u *users.User)) (*gatekeeper.Gatekeeper, *rtdb.Store, *rtdbfake.Server, *clock) {
	t.Helper()
	t.Setenv("FIREBASE_DATABASE_EMULATOR_HOST", "")
	srv := rtdbfake.Start(t)
	c := &clock{t: t0}
	st, err := rtdb.Open(context.Background(), rtdb.Options{
		URL: srv.URL(), CacheTTL: 5 * time.Second, FlushEvery: time.Hour,
		CallTimeout: 2 * time.Second, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Modify(ctx(t), tokA, true, func(u *users.User, _ bool) error {
		*u = *users.New(tokA, users.Normal, t0, cfg.TokenQuota)
		u.TokenLimits["gpt4o"] = 1000
		if edit != nil {
			edit(u)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return gatekeeper.New(cfg, st, c.Now), st, srv, c
}

// A charge the database could not take at once is kept by the store as
// pending usage. A later request from a new address goes through admitIP,
// whose Store.Modify answers the user as the database holds it, without
// that usage: the quota check must not trust that copy.
func TestNewAddressAfterAKeptChargeKeepsTheQuota(t *testing.T) {
	gk, st, srv, _ := rtdbGatekeeper(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1"), nil)

	p, err := gk.Authenticate(ctx(t), request(clientIP, tokA))
	if err != nil {
		t.Fatal(err)
	}
	a, err := gk.Admit(ctx(t), p, "gpt4o", 900)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetDown(true) // the write of the charge fails: it is kept
	err = gk.Charge(ctx(t), p, "gpt4o", 900)
	if !errors.Is(err, gatekeeper.ErrChargeKept) {
		t.Fatalf("charge: %v, want ErrChargeKept", err)
	}
	a.Release()
	srv.SetDown(false)

	// The instance's own view counts the kept charge.
	if u, err := users.LookupCopy(ctx(t), st, tokA); err != nil || u.TokenCounts["gpt4o"] != 900 {
		t.Fatalf("Lookup: %v, count %d, want 900", err, u.TokenCounts["gpt4o"])
	}
	// Same user, same instance, a second address.
	p2, err := gk.Authenticate(ctx(t), request("203.0.113.9", tokA))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := gk.Admit(ctx(t), p2, "gpt4o", 500)
	if err == nil {
		a2.Release()
		t.Fatalf("admitted 500 more tokens with 900 of 1000 used: quota overshoot")
	}
}

// flushHook runs hook (once) when a flush starts: what another request
// of the instance does between a charge being recorded and written.
type flushHook struct {
	*rtdb.Store
	hook func()
}

func (s *flushHook) Flush(ctx context.Context) error {
	if h := s.hook; h != nil {
		s.hook = nil
		h()
	}
	return s.Store.Flush(ctx)
}

// No outage needed: a request from a new address that authenticates
// while another request's charge is recorded but not yet flushed gets
// the database's copy (admitIP's Modify), without that charge. Once the
// charging request has released its reservation, the quota check must
// still count the charge, though none started since and the copy is
// under a second old.
func TestNewAddressDuringAFlushKeepsTheQuota(t *testing.T) {
	env := userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1")
	_, st, _, c := rtdbGatekeeper(t, env, nil)
	cfg, _ := config.FromMap(env)
	hs := &flushHook{Store: st}
	gk := gatekeeper.New(cfg, hs, c.Now)

	p, err := gk.Authenticate(ctx(t), request(clientIP, tokA))
	if err != nil {
		t.Fatal(err)
	}
	a, err := gk.Admit(ctx(t), p, "gpt4o", 900)
	if err != nil {
		t.Fatal(err)
	}
	var p2 *gatekeeper.Principal
	hs.hook = func() {
		p2, err = gk.Authenticate(ctx(t), request("203.0.113.9", tokA))
	}
	if err := gk.Charge(ctx(t), p, "gpt4o", 900); err != nil {
		t.Fatal(err)
	}
	a.Release()
	if err != nil {
		t.Fatal(err)
	}
	a2, err := gk.Admit(ctx(t), p2, "gpt4o", 500)
	if err == nil {
		a2.Release()
		t.Fatalf("admitted 500 more tokens with 900 of 1000 charged: quota overshoot (principal saw %v used)", used(p2))
	}
}

// TOKEN_QUOTA_* and tokenRefresh accept values up to 2^53; a refresh
// grants count + q, held at 2^53, which the RTDB store can write: were it
// not, the refresh would stay due and every request of the user fail.
func TestRefreshOfAHugeAmountStaysWritable(t *testing.T) {
	gk, _, _, c := rtdbGatekeeper(t, userEnv("QUOTA_REFRESH_PERIOD", "hourly", "TEXT_MODEL_RATE_LIMIT", "0"), func(u *users.User) {
		u.TokenRefresh = map[string]int64{"gpt4o": 1 << 53} // accepted by ParsePatch
		u.TokenCounts["gpt4o"] = 10
	})
	// Before the boundary: served.
	if _, err := gk.Authenticate(ctx(t), request(clientIP, tokA)); err != nil {
		t.Fatal(err)
	}
	c.Set(t0.Add(time.Hour)) // past the next hourly boundary
	for i := range 2 {
		_, err := gk.Authenticate(ctx(t), request(clientIP, tokA))
		if err != nil {
			t.Errorf("request %d after the refresh boundary: %v", i, err)
		}
	}
}

// The same refresh, run by the maintenance endpoint, reaches the users
// after that one.
func TestRefreshOfAHugeAmountByMaintenance(t *testing.T) {
	_, st, _, _ := rtdbGatekeeper(t, userEnv(), func(u *users.User) {
		u.TokenRefresh = map[string]int64{"gpt4o": 1 << 53}
		u.TokenCounts["gpt4o"] = 10
	})
	const other = "99999999-9999-4999-8999-999999999999" // after tokA in key order
	if _, err := st.Modify(ctx(t), other, true, func(u *users.User, _ bool) error {
		*u = *users.New(other, users.Normal, t0, nil)
		u.TokenRefresh = map[string]int64{"gpt4o": 100}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	svc := &users.Service{Store: st, Now: func() time.Time { return t0.Add(time.Hour) }}
	n, err := svc.Maintain(ctx(t), users.ActionRefreshQuotas)
	u, _ := st.Get(ctx(t), other)
	if err != nil || u.TokenLimits["gpt4o"] != 100 {
		t.Fatalf("refresh-quotas: %d refreshed, err %v; the other user's gpt4o limit is %d, want 100", n, err, u.TokenLimits["gpt4o"])
	}
}

// flushFails is a store whose every flush fails with err, counted.
type flushFails struct {
	users.Store
	err     error
	flushes atomic.Int64
}

func (s *flushFails) Flush(context.Context) error { s.flushes.Add(1); return s.err }

// A charge tries the flush again only while the database is unavailable:
// a write refused for good (one user's record the database will not take)
// would be refused again, and make every charge of the instance wait.
func TestChargeRetriesOnlyAnUnavailableDatabase(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int64
	}{
		{users.Errorf(users.CodeUnavailable, "The user database is unavailable."), 3},
		{users.Errorf(users.CodeInvalid, "A number is too large for the database."), 1},
	} {
		var fs *flushFails
		f := newFixtureOn(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0"), func(m *memory.Store) users.Store {
			fs = &flushFails{Store: m, err: c.err}
			return fs
		})
		f.addUser(t, tokA, nil)
		p := f.mustAuth(t, tokA)
		if err := f.gk.Charge(ctx(t), p, "gpt4o", 10); !errors.Is(err, gatekeeper.ErrChargeKept) {
			t.Fatalf("%v: charge %v, want ErrChargeKept", c.err, err)
		}
		if n := fs.flushes.Load(); n != c.want {
			t.Errorf("%v: %d flushes, want %d", c.err, n, c.want)
		}
	}
}

// With LIMITS_SCOPE=cluster, an enter's write that the database made but
// whose answer was lost is sent again by the database client; the request
// must be admitted as the write admitted it, not refused by its own place
// in flight, which nothing would then give back before its lease ran out:
// the user would be refused on every instance for 10 minutes.
func TestClusterEnterRetriedAfterALostAnswerIsAdmitted(t *testing.T) {
	gk, _, srv, c := rtdbGatekeeper(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "4"), nil)
	p, err := gk.Authenticate(ctx(t), request(clientIP, tokA))
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Bool
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		return conditional && strings.Contains(path, "_limits/") && lost.CompareAndSwap(false, true)
	})
	a, err := gk.Admit(ctx(t), p, "gpt4o", 1)
	if !lost.Load() {
		t.Fatal("no answer was lost: the case did not happen")
	}
	if err != nil {
		t.Fatalf("the request whose enter's answer was lost: %v, want admitted", err)
	}
	a.Release()
	c.Add(time.Second)
	a, err = gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatalf("the user's next request: %v, want admitted", err)
	}
	a.Release()
}

// A client moving through the addresses of its IPv6 /64 (2^64 of them)
// brings a new address with every request. Such an address takes no place
// under the IP limit (its /64 is recorded): it is recorded with the next
// flush, not by a write of the user's whole record per request, before
// the rate limit has been asked. Else one token holder makes the shared
// database take a write per request however many the rate limit refuses.
func TestNewAddressesOfAKnownSlash64DoNotWriteEachRequest(t *testing.T) {
	gk, st, srv, _ := rtdbGatekeeper(t, userEnv("TEXT_MODEL_RATE_LIMIT", "1", "USER_CONCURRENCY_LIMIT", "1", "MAX_IPS_PER_USER", "2"), nil)
	var writes atomic.Int32
	srv.OnWrite(func(method, path string, conditional bool) { writes.Add(1) })
	const n = 100
	served := 0
	for i := range n {
		p, err := gk.Authenticate(ctx(t), request(fmt.Sprintf("2001:db8:1:2::%x", i+1), tokA))
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if a, err := gk.Admit(ctx(t), p, "gpt4o", 1); err == nil {
			served++
			a.Release()
		}
	}
	if served != 1 {
		t.Fatalf("%d of %d requests served under a rate limit of 1", served, n)
	}
	if w := writes.Load(); w != 1 {
		t.Fatalf("%d requests, %d refused by the rate limit, made %d database writes, want 1 (the first address)", n, n-served, w)
	}
	if err := st.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	u, err := st.Get(ctx(t), tokA)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.IP) != n || u.IPsCounted() != 1 {
		t.Fatalf("after the flush %d addresses recorded in %d places, want each of the %d in one place", len(u.IP), u.IPsCounted(), n)
	}
	// The limit (2) still holds: a second network takes the other place,
	// a third is refused.
	for i, ip := range []string{"203.0.113.1", "203.0.113.2"} {
		_, err := gk.Authenticate(ctx(t), request(ip, tokA))
		if (err == nil) != (i == 0) {
			t.Fatalf("%s: %v", ip, err)
		}
	}
}

// Without an IP limit (MAX_IPS_PER_USER=0, the default) no address needs
// the database's judgement, and a client with an IPv6 /48 holds 65,536
// networks, more than a record keeps (1000), which it can cycle through
// for ever: every address is recorded with the flush, none by a write of
// its own per request.
func TestNewNetworksWithoutAnIPLimitDoNotWriteEachRequest(t *testing.T) {
	gk, st, srv, _ := rtdbGatekeeper(t, userEnv("TEXT_MODEL_RATE_LIMIT", "1", "USER_CONCURRENCY_LIMIT", "1"), nil)
	var writes atomic.Int32
	srv.OnWrite(func(method, path string, conditional bool) { writes.Add(1) })
	const n = 100
	for i := range n {
		p, err := gk.Authenticate(ctx(t), request(fmt.Sprintf("2001:db8:1:%x::1", i+1), tokA))
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if a, err := gk.Admit(ctx(t), p, "gpt4o", 1); err == nil {
			a.Release()
		}
	}
	if w := writes.Load(); w != 0 {
		t.Fatalf("%d requests from as many /64s made %d database writes, want 0 before the flush", n, w)
	}
	if err := st.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	u, err := st.Get(ctx(t), tokA)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.IP) != n || u.IPsCounted() != n {
		t.Fatalf("after the flush %d addresses recorded in %d places, want %d", len(u.IP), u.IPsCounted(), n)
	}
}

// A charge whose write the database made but whose answer was lost is
// sent again by the Firebase client, and its transaction runs again on the
// record its own write left: the charge is counted once. Counted twice, it
// would take quota the user never used and refuse the next request.
func TestChargeWhoseAnswerWasLostCountsOnce(t *testing.T) {
	gk, st, srv, _ := rtdbGatekeeper(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1"), nil)
	p, err := gk.Authenticate(ctx(t), request(clientIP, tokA))
	if err != nil {
		t.Fatal(err)
	}
	a, err := gk.Admit(ctx(t), p, "gpt4o", 600)
	if err != nil {
		t.Fatal(err)
	}
	var lost atomic.Bool
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		return conditional && path == "/users/"+tokA && lost.CompareAndSwap(false, true)
	})
	if err := gk.Charge(ctx(t), p, "gpt4o", 600); err != nil {
		t.Fatalf("charge whose answer was lost: %v", err)
	}
	a.Release()
	if !lost.Load() {
		t.Fatal("no answer was lost: the case did not happen")
	}
	if u, err := st.Get(ctx(t), tokA); err != nil || u.PromptCount != 1 || u.TokenCounts["gpt4o"] != 600 {
		t.Fatalf("stored: %+v, %v; want 1 prompt and 600 gpt4o tokens", u, err)
	}
	a, err = gk.Admit(ctx(t), p, "gpt4o", 300)
	if err != nil {
		t.Fatalf("300 more tokens with 600 of 1000 used: %v", err)
	}
	a.Release()
}

func used(p *gatekeeper.Principal) map[string]int64 { _, u := p.Quota(); return u }
