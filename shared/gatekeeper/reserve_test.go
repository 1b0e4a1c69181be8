package gatekeeper_test

import (
	"context"
	"maps"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// quotaFixture has tokA with a gpt4o quota of 1000, nothing used, and no
// rate or concurrency limit in the way.
func quotaFixture(t *testing.T, extra ...string) *fixture {
	t.Helper()
	env := append([]string{"TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "0"}, extra...)
	f := newFixture(t, userEnv(env...))
	f.addUser(t, tokA, func(u *users.User) { u.TokenLimits = map[string]int64{"gpt4o": 1000} })
	return f
}

func (f *fixture) mustAuth(t *testing.T, token string) *gatekeeper.Principal {
	t.Helper()
	p, err := f.auth(t, clientIP, token)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReservationsCountRequestsInFlight(t *testing.T) {
	f := quotaFixture(t)
	p := f.mustAuth(t, tokA)
	first, err := f.gk.Admit(ctx(t), p, "gpt4o", 600)
	if err != nil {
		t.Fatal(err)
	}
	// 600 are spoken for until first is charged or released.
	_, err = f.gk.Admit(ctx(t), p, "gpt4o", 600)
	e := wantCode(t, err, users.CodeQuota, "")
	if e.Quota != 1000 || e.Used != 600 || e.Requested != 600 {
		t.Errorf("quota %d used %d requested %d, want 1000 600 600", e.Quota, e.Used, e.Requested)
	}
	second, err := f.gk.Admit(ctx(t), p, "gpt4o", 400)
	if err != nil {
		t.Fatalf("400 more fit exactly: %v", err)
	}
	if _, err := f.gk.Admit(ctx(t), p, "gpt4o", 1); err == nil {
		t.Fatal("admitted past a quota fully reserved")
	}
	// Released twice: the second release must not free second's share.
	first.Release()
	first.Release()
	if _, err := f.gk.Admit(ctx(t), p, "gpt4o", 601); err == nil {
		t.Fatal("a double release freed another request's reservation")
	}
	third, err := f.gk.Admit(ctx(t), p, "gpt4o", 600)
	if err != nil {
		t.Fatalf("released reservation not given back: %v", err)
	}
	third.Release()
	second.Release()
	// Nothing held: the whole quota is there again.
	all, err := f.gk.Admit(ctx(t), p, "gpt4o", 1000)
	if err != nil {
		t.Fatalf("reservations leaked: %v", err)
	}
	all.Release()
}

// A charge lands in the count before the reservation goes: a request
// authenticated before another's charge still sees it.
func TestReservationChargedThenReleased(t *testing.T) {
	f := quotaFixture(t)
	early := f.mustAuth(t, tokA) // its copy of the user: nothing used
	p := f.mustAuth(t, tokA)
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 900)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gk.Charge(ctx(t), p, "gpt4o", 900); err != nil {
		t.Fatal(err)
	}
	a.Release()
	_, err = f.gk.Admit(ctx(t), early, "gpt4o", 200)
	if e := wantCode(t, err, users.CodeQuota, ""); e.Used != 900 {
		t.Errorf("used = %d, want 900", e.Used)
	}
	if got := f.user(t, tokA).TokenCounts["gpt4o"]; got != 900 {
		t.Errorf("charged %d, want 900", got)
	}
}

// hookStore counts Lookups and runs hook (once) after a Lookup has read
// the user and before it returns: what another request does in that gap.
type hookStore struct {
	*memory.Store
	mu      sync.Mutex
	hook    func()
	lookups atomic.Int64
}

// hookedUser is tokA (gpt4o quota 1000) on a hookStore, authenticated.
func hookedUser(t *testing.T) (*fixture, *hookStore, *gatekeeper.Principal) {
	var hs *hookStore
	f := newFixtureOn(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "0"), func(m *memory.Store) users.Store {
		hs = &hookStore{Store: m}
		return hs
	})
	f.addUser(t, tokA, func(u *users.User) {
		u.TokenLimits = map[string]int64{"gpt4o": 1000}
		u.IP = []string{clientIP} // known: authentication writes nothing
	})
	return f, hs, f.mustAuth(t, tokA)
}

func (s *hookStore) Lookup(ctx context.Context, token string, read func(*users.User)) error {
	s.lookups.Add(1)
	err := s.Store.Lookup(ctx, token, read)
	s.mu.Lock()
	hook := s.hook
	s.hook = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return err
}

// A charge (and its release) that lands after the check read the user but
// before it counts the reservations is counted all the same.
func TestReservationCountsChargeDuringCheck(t *testing.T) {
	f, hs, p := hookedUser(t)
	other, err := f.gk.Admit(ctx(t), p, "gpt4o", 890)
	if err != nil {
		t.Fatal(err)
	}
	// A charge since authentication: the check reads the user again.
	small, err := f.gk.Admit(ctx(t), p, "gpt4o", 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gk.Charge(context.Background(), p, "gpt4o", 10); err != nil {
		t.Fatal(err)
	}
	small.Release()
	ran := false
	hs.mu.Lock()
	hs.hook = func() {
		ran = true
		if err := f.gk.Charge(context.Background(), p, "gpt4o", 890); err != nil {
			t.Error(err)
		}
		other.Release()
	}
	hs.mu.Unlock()
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 200)
	if !ran {
		t.Fatal("the check did not read the user again after a charge since authentication")
	}
	if err == nil {
		a.Release()
		t.Fatal("admitted 200 on top of 900 charged, 890 of them during the check (quota 1000)")
	}
	wantCode(t, err, users.CodeQuota, "")
}

// Without a charge of the user since authentication, the check trusts the
// copy read then: the user is read once per request. A charge since then
// makes the check read it again, and count it.
func TestReservationReadsTheUserAgainOnlyAfterACharge(t *testing.T) {
	f, cs, p := hookedUser(t)
	lookups := cs.lookups.Load()
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.lookups.Load() - lookups; n != 0 {
		t.Errorf("the check read the user %d times with no charge since authentication", n)
	}
	if err := f.gk.Charge(context.Background(), p, "gpt4o", 950); err != nil {
		t.Fatal(err)
	}
	a.Release()
	// p's copy says 0 used; 950 have been charged since.
	if b, err := f.gk.Admit(ctx(t), p, "gpt4o", 100); err == nil {
		b.Release()
		t.Fatal("admitted 100 on a stale copy after 950 were charged (quota 1000)")
	}
	if n := cs.lookups.Load() - lookups; n != 1 {
		t.Errorf("the check read the user %d times after a charge, want 1", n)
	}
}

// A body that takes long to arrive gets the user read again, without any
// charge since: the copy from authentication is too old to stand for a
// read of a shared store's cache.
func TestReservationReadsTheUserAgainAfterASlowBody(t *testing.T) {
	f, cs, p := hookedUser(t)
	f.clock.Add(2 * time.Second) // the body's upload
	lookups := cs.lookups.Load()
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 100)
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	if n := cs.lookups.Load() - lookups; n != 1 {
		t.Errorf("the check read the user %d times two seconds after authentication, want 1", n)
	}
}

// Many requests of one user at once never charge past the quota when each
// is charged no more than it asked for.
func TestParallelRequestsStayWithinQuota(t *testing.T) {
	f := quotaFixture(t)
	const n = 40
	principals := make([]*gatekeeper.Principal, n)
	for i := range principals {
		principals[i] = f.mustAuth(t, tokA) // all read the user before any charge
	}
	start := make(chan struct{})
	var tried, wg sync.WaitGroup
	tried.Add(n)
	var mu sync.Mutex
	admitted := 0
	for i := range n {
		wg.Go(func() {
			<-start
			p := principals[i]
			a, err := f.gk.Admit(context.Background(), p, "gpt4o", 150)
			// Every request has been decided before any is charged: all
			// of them are in flight at once.
			tried.Done()
			tried.Wait()
			if err != nil {
				if users.ErrorCode(err) != users.CodeQuota {
					t.Error(err)
				}
				return
			}
			defer a.Release()
			mu.Lock()
			admitted++
			mu.Unlock()
			if err := f.gk.Charge(context.Background(), p, "gpt4o", 100+int64(i%51)); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	got := f.user(t, tokA).TokenCounts["gpt4o"]
	if got > 1000 {
		t.Errorf("charged %d over a quota of 1000 (%d requests admitted)", got, admitted)
	}
	if admitted != 6 {
		t.Errorf("%d requests admitted at once, want 6 (of 150 in 1000)", admitted)
	}
}

func TestReserveRefusesHugeRequests(t *testing.T) {
	f := quotaFixture(t)
	f.addUser(t, tokB, func(u *users.User) {
		u.TokenLimits = map[string]int64{"gpt4o": 1000}
		u.TokenCounts = map[string]int64{"gpt4o": 10}
	})
	p := f.mustAuth(t, tokB)
	for _, n := range []int64{math.MaxInt64, math.MaxInt64 - 5, -1} {
		if a, err := f.gk.Admit(ctx(t), p, "gpt4o", n); err == nil {
			a.Release()
			t.Errorf("requested %d: admitted (the sum wrapped)", n)
		} else {
			wantCode(t, err, users.CodeQuota, "")
		}
	}
}

func TestReserveRefusalKeepsRateBudget(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "2", "USER_CONCURRENCY_LIMIT", "0", "ALLOWED_MODEL_FAMILIES", "gpt4o"))
	f.addUser(t, tokA, func(u *users.User) { u.TokenLimits = map[string]int64{"gpt4o": 1000} })
	p := f.mustAuth(t, tokA)
	for range 5 {
		a, err := f.gk.Enter(context.Background(), p, []string{"gpt4o", "gpt4"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.gk.Reserve(ctx(t), a, "gpt4o", 5000); users.ErrorCode(err) != users.CodeQuota {
			t.Fatalf("Reserve = %v, want a quota refusal", err)
		}
		a, err = f.gk.Enter(context.Background(), p, []string{"gpt4o", "gpt4"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.gk.Reserve(ctx(t), a, "gpt4", 1); users.ErrorCode(err) != users.CodeForbidden {
			t.Fatalf("Reserve = %v, want the family refused", err)
		}
	}
	for i := range 2 {
		a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
		if err != nil {
			t.Fatalf("request %d after refusals: %v", i, err)
		}
		a.Release()
	}
	if _, err := f.gk.Admit(ctx(t), p, "gpt4o", 1); users.ErrorCode(err) != users.CodeRateLimited {
		t.Fatalf("third request = %v, want the rate limit", err)
	}
}

// Enter refuses what no body could change: families none of which is
// allowed, a quota used up in every family the route reaches.
func TestEnterBeforeTheBody(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "0", "ALLOWED_MODEL_FAMILIES", "gpt4o,gpt4,o3"))
	f.addUser(t, tokA, func(u *users.User) {
		u.TokenLimits = map[string]int64{"gpt4o": 100, "gpt4": 50, "o3": 1000}
		u.TokenCounts = map[string]int64{"gpt4o": 100, "gpt4": 70, "o3": 200}
	})
	p := f.mustAuth(t, tokA)
	tests := []struct {
		name  string
		reach []string
		code  users.Code
		msg   string
	}{
		{"one family used up", []string{"gpt4o"}, users.CodeQuota, "You have exceeded your token quota for the gpt4o model family."},
		{"every family used up", []string{"gpt4o", "gpt4", "dall-e"}, users.CodeQuota, "You have exceeded your token quota for every model family this route serves (gpt4o, gpt4)."},
		{"one family left", []string{"gpt4o", "o3"}, "", ""},
		{"families not allowed are skipped", []string{"gpt4o", "claude", "turbo"}, users.CodeQuota, ""},
		{"none allowed", []string{"claude", "turbo"}, users.CodeForbidden, "None of the model families this route serves is allowed on this proxy."},
		{"the one family not allowed", []string{"dall-e"}, users.CodeForbidden, "The dall-e model family is not allowed on this proxy."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := f.gk.Enter(context.Background(), p, tt.reach)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				a.Release()
				return
			}
			wantCode(t, err, tt.code, tt.msg)
		})
	}
	// Reservations count as used: a quota fully reserved is used up.
	a, err := f.gk.Admit(ctx(t), p, "o3", 800)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.gk.Enter(context.Background(), p, []string{"o3"})
	if e := wantCode(t, err, users.CodeQuota, ""); e.Quota != 1000 || e.Used != 1000 {
		t.Errorf("quota %d used %d, want 1000 1000", e.Quota, e.Used)
	}
	a.Release()
	if a, err := f.gk.Enter(context.Background(), p, []string{"o3"}); err != nil {
		t.Fatal(err)
	} else {
		a.Release()
	}
}

func TestEnterImageRoutesUseTheImageLimit(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "3", "IMAGE_MODEL_RATE_LIMIT", "1", "USER_CONCURRENCY_LIMIT", "0", "ALLOWED_MODEL_FAMILIES", "gpt4o,dall-e,gpt-image"))
	f.addUser(t, tokA, nil)
	p := f.mustAuth(t, tokA)
	image := []string{"dall-e", "gpt-image"}
	a, err := f.gk.Enter(context.Background(), p, image)
	if err != nil {
		t.Fatal(err)
	}
	if a.Rate.Limit != 1 {
		t.Errorf("image limit = %d, want 1", a.Rate.Limit)
	}
	if _, err := f.gk.Enter(context.Background(), p, image); users.ErrorCode(err) != users.CodeRateLimited {
		t.Fatalf("second image request = %v, want rate limited", err)
	}
	text, err := f.gk.Enter(context.Background(), p, []string{"gpt4o", "dall-e"})
	if err != nil {
		t.Fatalf("text route: %v", err)
	}
	if text.Rate.Limit != 3 {
		t.Errorf("text limit = %d, want 3", text.Rate.Limit)
	}
}

func TestEnterHoldsTheConcurrencySlot(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1"))
	f.addUser(t, tokA, nil)
	p := f.mustAuth(t, tokA)
	a, err := f.gk.Enter(context.Background(), p, []string{"gpt4o"})
	if err != nil {
		t.Fatal(err)
	}
	// While its body is still being read, the request is in flight.
	_, err = f.gk.Enter(context.Background(), p, []string{"gpt4o"})
	if e := wantCode(t, err, users.CodeConcurrency, ""); !strings.Contains(e.Message, "in flight") {
		t.Errorf("message %q", e.Message)
	}
	a.Release()
	if b, err := f.gk.Enter(context.Background(), p, []string{"gpt4o"}); err != nil {
		t.Fatal(err)
	} else {
		b.Release()
	}
}

// Instances see only their own reservations. When each sees the others'
// charges at once (here: one shared memory store), n instances with
// USER_CONCURRENCY_LIMIT=1 overshoot a quota by at most one reservation
// per other instance: the README's bound.
func TestInstancesOvershootByAtMostOneReservationEach(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		t.Run(strconv.Itoa(n)+" instances", func(t *testing.T) {
			env := userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1")
			f := newFixture(t, env)
			f.addUser(t, tokA, func(u *users.User) { u.TokenLimits = map[string]int64{"gpt4o": 1000} })
			const each = 300
			var wg sync.WaitGroup
			var admitted atomic.Int64
			for range n {
				gk := gatekeeper.New(f.cfg, f.store, f.clock.Now) // an instance of its own
				for range 3 {                                     // clients per instance
					wg.Go(func() {
						for {
							p, err := gk.Authenticate(context.Background(), request(clientIP, tokA))
							if err != nil {
								t.Error(err)
								return
							}
							a, err := gk.Admit(context.Background(), p, "gpt4o", each)
							switch {
							case err == nil:
							case users.ErrorCode(err) == users.CodeConcurrency:
								runtime.Gosched()
								continue
							case users.ErrorCode(err) == users.CodeQuota:
								return
							default:
								t.Error(err)
								return
							}
							admitted.Add(1)
							time.Sleep(time.Millisecond) // the upstream at work
							if err := gk.Charge(context.Background(), p, "gpt4o", each); err != nil {
								t.Error(err)
							}
							a.Release()
						}
					})
				}
			}
			wg.Wait()
			got := f.user(t, tokA).TokenCounts["gpt4o"]
			t.Logf("%d instances: %d requests admitted, %d of 1000 charged", n, admitted.Load(), got)
			if limit := int64(1000 + (n-1)*each); got > limit {
				t.Errorf("%d instances charged %d (%d requests), over 1000 + %d reservations of %d", n, got, admitted.Load(), n-1, each)
			}
			if n == 1 && got != 900 {
				t.Errorf("one instance charged %d, want 900 (3 of 300 fit in 1000)", got)
			}
		})
	}
}

// A body may take as long as the function's timeout to arrive: a user
// whose temporary token runs out, or who is disabled, while a request's
// body is on its way is refused at Reserve, before anything is sent, and
// the refused request gives back its rate-limit count. (Before, a request
// started a moment before its token's end was served after it.)
func TestReserveRefusesAUserEndedDuringTheBody(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "2", "USER_CONCURRENCY_LIMIT", "1", "ALLOWED_MODEL_FAMILIES", "gpt4o,claude"))
	f.addUser(t, tokA, func(u *users.User) {
		u.Type = users.Temporary
		u.ExpiresAt = t0.Add(time.Minute).UnixMilli()
	})
	f.addUser(t, tokB, func(u *users.User) { u.TokenLimits = map[string]int64{"gpt4o": 1000} })
	f.clock.Add(59 * time.Second)
	for _, tc := range []struct {
		token, family string
		end           func()
		msg           string
	}{
		{tokA, "claude", func() { f.clock.Add(2 * time.Second) }, "Temporary token expired."},
		{tokB, "gpt4o", func() {
			if _, err := f.mem.Modify(ctx(t), tokB, false, func(u *users.User, _ bool) error {
				u.Disable(f.clock.Now(), "Sharing the token.")
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			f.clock.Add(2 * time.Second)
		}, "Your token has been disabled: Sharing the token."},
	} {
		p, err := f.auth(t, clientIP, tc.token)
		if err != nil {
			t.Fatal(err)
		}
		a, err := f.gk.Enter(ctx(t), p, []string{tc.family})
		if err != nil {
			t.Fatal(err)
		}
		tc.end() // while the body arrives
		wantCode(t, f.gk.Reserve(ctx(t), a, tc.family, 10), users.CodeForbidden, tc.msg)
		if a.Rate.Remaining != 2 {
			t.Errorf("%s: %d requests left in the minute, want 2 (the refusal's count taken back)", tc.msg, a.Rate.Remaining)
		}
	}
}

// Move comes once the upstream has answered: a token that ended since
// is not refused there (the answer is charged, not thrown away).
func TestMoveKeepsARequestWhoseTokenEndedSinceItWasSent(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1", "ALLOWED_MODEL_FAMILIES", "gpt4o,gpt4"))
	f.addUser(t, tokA, func(u *users.User) {
		u.Type = users.Temporary
		u.ExpiresAt = t0.Add(time.Minute).UnixMilli()
	})
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	f.clock.Add(2 * time.Minute)
	if err := f.gk.Move(ctx(t), a, "gpt4", 10); err != nil {
		t.Errorf("Move after the token's end: %v", err)
	}
}

// A principal's quota is its own copy of the user's, read at
// authentication: charges that land after it (from other requests, in
// other goroutines, which the race detector watches) change the store's
// user, never the principal's quota.
func TestPrincipalQuotaIsACopy(t *testing.T) {
	f := quotaFixture(t)
	p := f.mustAuth(t, tokA)
	limits0, used0 := p.Quota()
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for range 10 {
				q, err := f.auth(t, clientIP, tokA)
				if err != nil {
					t.Error(err)
					return
				}
				a, err := f.gk.Admit(context.Background(), q, "gpt4o", 1)
				if err != nil {
					if users.ErrorCode(err) != users.CodeQuota {
						t.Error(err)
					}
					return
				}
				if err := f.gk.Charge(context.Background(), q, "gpt4o", 1); err != nil {
					t.Error(err)
				}
				a.Release()
			}
		})
	}
	wg.Wait()
	if got := f.user(t, tokA).TokenCounts["gpt4o"]; got != used0["gpt4o"]+n*10 {
		t.Fatalf("charged %d, want %d", got, used0["gpt4o"]+n*10)
	}
	if limits, used := p.Quota(); !maps.Equal(limits, limits0) || !maps.Equal(used, used0) {
		t.Fatalf("the principal's quota changed with the store's user: %v %v, was %v %v", limits, used, limits0, used0)
	}
}

// A second family's reservation (ReserveAlso: a text request's images in
// the image family) counts against that family's quota while the
// request runs, is refused as Reserve refuses, and is freed with the
// admission.
func TestReserveAlsoHoldsASecondFamily(t *testing.T) {
	f := quotaFixture(t, "ALLOWED_MODEL_FAMILIES", "gpt4o,gpt-image")
	f.addUser(t, tokB, func(u *users.User) { u.TokenLimits = map[string]int64{"gpt4o": 1000, "gpt-image": 5000} })
	p := f.mustAuth(t, tokB)
	first, err := f.gk.Admit(ctx(t), p, "gpt4o", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gk.ReserveAlso(ctx(t), first, "gpt-image", 4000); err != nil {
		t.Fatalf("4000 of 5000: %v", err)
	}
	second, err := f.gk.Admit(ctx(t), p, "gpt4o", 100)
	if err != nil {
		t.Fatal(err)
	}
	err = f.gk.ReserveAlso(ctx(t), second, "gpt-image", 4000)
	wantCode(t, err, users.CodeQuota, "")
	// The refusal released second: its text reservation too.
	if _, err := f.gk.Admit(ctx(t), p, "gpt4o", 900); err != nil {
		t.Fatalf("second's text reservation kept after its refusal: %v", err)
	}
	first.Release()
	third, err := f.gk.Admit(ctx(t), p, "gpt4o", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gk.ReserveAlso(ctx(t), third, "gpt-image", 5000); err != nil {
		t.Fatalf("first's image reservation kept after its release: %v", err)
	}
	third.Release()
}
