package gatekeeper_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// slotFree reports whether the store would let one more request of key
// in under a concurrency limit of 1, asking the store itself.
func slotFree(t *testing.T, l users.Limits, key string, now time.Time) bool {
	t.Helper()
	id := fmt.Sprintf("text-probe-%d", now.UnixMilli())
	d, err := l.EnterLimits(ctx(t), key, users.LimitsEntry{ID: id, Kind: "text", Now: now, Window: time.Minute,
		Inflight: 1, LeaseUntil: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if d.InflightOK {
		if err := l.LeaveLimits(ctx(t), key, id, true); err != nil {
			t.Fatal(err)
		}
	}
	return d.InflightOK
}

// With LIMITS_SCOPE=cluster a leave the database fails (an outage: the
// client's own retries failed too) is kept by the instance and given
// back by the key's next request there, before it enters: the user is
// not refused as "too many requests in flight" for the rest of the
// lease. (Before, one failed leave kept a user limited to one request
// in flight out on every instance for 10 minutes.)
func TestClusterFailedLeaveGivenBackByTheKeysNextRequest(t *testing.T) {
	gk, st, srv, clk := rtdbGatekeeper(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "0"), nil)
	p, err := gk.Authenticate(ctx(t), request(clientIP, tokA))
	if err != nil {
		t.Fatal(err)
	}
	a, err := gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetDown(true)
	a.Release() // every try fails
	srv.SetDown(false)
	if slotFree(t, st, tokA, clk.Now()) {
		t.Fatal("the place came free though every leave failed: the test shows nothing")
	}
	clk.Add(time.Second)
	a2, err := gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatalf("the user's next request after the outage: %v", err)
	}
	a2.Release()
	if !slotFree(t, st, tokA, clk.Now()) {
		t.Error("the user's place is still taken after both requests ended")
	}
}

// lostEnters is the memory store whose EnterLimits is applied but
// answered with an error, as a write the database took whose answer
// never came back (the call's deadline passed): lose times, then it
// works. It counts the limits writes.
type lostEnters struct {
	*memory.Store
	lose           atomic.Int32
	enters, leaves atomic.Int32
}

func (s *lostEnters) EnterLimits(ctx context.Context, key string, e users.LimitsEntry) (users.LimitsDecision, error) {
	s.enters.Add(1)
	d, err := s.Store.EnterLimits(ctx, key, e)
	if err == nil && s.lose.Add(-1) >= 0 {
		return users.LimitsDecision{}, &users.Error{Code: users.CodeUnavailable, Message: "The user database is unavailable; try again shortly.",
			Err: context.DeadlineExceeded}
	}
	return d, err
}

func (s *lostEnters) LeaveLimits(ctx context.Context, key, id string, refund bool) error {
	s.leaves.Add(1)
	return s.Store.LeaveLimits(ctx, key, id, refund)
}

// An enter whose answer was lost (answered 503: the request never ran)
// may still have been written, holding a lease for 10 minutes and a
// count in the rate window. The instance gives it back, as a refused
// request, before the key's next request enters there. (Before, a user
// limited to one request in flight was then refused everywhere for the
// lease's whole term.)
func TestClusterEnterWithoutAnAnswerIsGivenBack(t *testing.T) {
	lost := &lostEnters{}
	f := newFixtureOn(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "2"),
		func(m *memory.Store) users.Store { lost.Store = m; return lost })
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	lost.lose.Store(1)
	if a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1); err == nil {
		a.Release()
		t.Fatal("admitted though the enter's answer was lost")
	} else {
		wantCode(t, err, users.CodeUnavailable, "")
	}
	for i := range 2 { // the rate limit (2) is whole: the lost enter's count was taken back
		f.clock.Add(time.Second)
		a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
		if err != nil {
			t.Fatalf("request %d after the lost enter: %v", i+1, err)
		}
		a.Release()
	}
}

// However many entries a key's requests left behind during an outage
// (a client retrying every second), its next request gives them all back
// in its own enter: one write, so its deadline is not spent on them.
func TestClusterManyLostEntersGivenBackInOneWrite(t *testing.T) {
	lost := &lostEnters{}
	f := newFixtureOn(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "4"),
		func(m *memory.Store) users.Store { lost.Store = m; return lost })
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	const outage = 50
	lost.lose.Store(outage)
	for range outage {
		f.clock.Add(time.Second)
		if a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1); err == nil {
			a.Release()
			t.Fatal("admitted though the enter's answer was lost")
		}
	}
	enters, leaves := lost.enters.Load(), lost.leaves.Load()
	f.clock.Add(time.Second)
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatalf("the first request after the outage: %v", err)
	}
	if e, l := lost.enters.Load()-enters, lost.leaves.Load()-leaves; e != 1 || l != 0 {
		t.Errorf("the first request after the outage made %d enters and %d leaves, want 1 and 0", e, l)
	}
	a.Release()
}

// cancelingEnters ends the request's context (its client left) while
// the enter is on its way, and answers as the database client does: a
// write made, but the caller's context ended first.
type cancelingEnters struct {
	*memory.Store
	cancel context.CancelFunc
}

func (s *cancelingEnters) EnterLimits(ctx context.Context, key string, e users.LimitsEntry) (users.LimitsDecision, error) {
	if s.cancel != nil {
		s.cancel()
	}
	d, err := s.Store.EnterLimits(ctx, key, e)
	if err == nil && ctx.Err() != nil {
		return users.LimitsDecision{}, &users.Error{Code: users.CodeUnavailable, Message: "The user database is unavailable; try again shortly.", Err: ctx.Err()}
	}
	return d, err
}

// A client that leaves while its request's enter is on its way does not
// cut the enter short: its outcome is known, so a place taken is given
// back when the request ends, at once and for every instance.
func TestClusterEnterOutlivesAClientThatLeaves(t *testing.T) {
	ce := &cancelingEnters{}
	f := newFixtureOn(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "0"),
		func(m *memory.Store) users.Store { ce.Store = m; return ce })
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx(t))
	ce.cancel = cancel
	if a, err := f.gk.Enter(rctx, p, []string{"gpt4o"}); err == nil {
		a.Release() // the request ends: its client is gone
	}
	ce.cancel = nil
	if !slotFree(t, f.mem, tokA, f.clock.Now()) {
		t.Error("the user's place is held after the request whose client left ended")
	}
}

// failingRenewals is the memory store whose RenewLimits fails while fail
// is set, as the database does when it cannot be reached.
type failingRenewals struct {
	*memory.Store
	fail atomic.Bool
}

func (s *failingRenewals) RenewLimits(ctx context.Context, key, id string, until time.Time) error {
	if s.fail.Load() {
		return &users.Error{Code: users.CodeUnavailable, Message: "The user database is unavailable; try again shortly."}
	}
	return s.Store.RenewLimits(ctx, key, id, until)
}

// A renewal the database fails is tried again within a minute, not half
// a lease later, when the lease would run out with the request still
// running and its place be given to another. A renewal that works comes
// again half a lease later; after the request has left, none comes.
func TestClusterFailedRenewalTriedAgainSoon(t *testing.T) {
	fr := &failingRenewals{}
	f := newFixtureOn(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "0"),
		func(m *memory.Store) users.Store { fr.Store = m; return fr })
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(5 * time.Minute)
	fr.fail.Store(true)
	if next := a.RenewLease(); next <= 0 || next > time.Minute {
		t.Errorf("after a failed renewal, the next in %s; want within a minute", next)
	}
	fr.fail.Store(false)
	f.clock.Add(30 * time.Second)
	if next := a.RenewLease(); next != 5*time.Minute {
		t.Errorf("after a renewal, the next in %s; want 5m", next)
	}
	f.clock.Add(5*time.Minute + 30*time.Second) // 11 minutes in: held by the renewal
	if slotFree(t, f.mem, tokA, f.clock.Now()) {
		t.Error("the request's place was given away while it ran")
	}
	a.Release()
	if next := a.RenewLease(); next != 0 {
		t.Errorf("a renewal after the request left set the next in %s", next)
	}
}

// A lease that ran out while its request still ran (its instance given
// no CPU past the lease, or the database down for every renewal) is
// taken again by the next renewal: the request is in flight, and a user
// limited to one request in flight gets no second one beside it for the
// rest of its run. (Before, the renewal found no lease and left it so:
// the request ran on uncounted, and every later request was let in
// beside it.)
func TestClusterLeaseRunOutIsTakenAgainByItsRenewal(t *testing.T) {
	f := newFixture(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "0"))
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(11 * time.Minute) // no renewal ran
	if !slotFree(t, f.mem, tokA, f.clock.Now()) {
		t.Fatal("the lease did not run out: the test shows nothing")
	}
	if next := a.RenewLease(); next != 5*time.Minute {
		t.Errorf("after the late renewal, the next in %s; want 5m", next)
	}
	if slotFree(t, f.mem, tokA, f.clock.Now()) {
		t.Error("a request whose lease ran out runs on uncounted after its renewal")
	}
	if _, err := f.gk.Admit(ctx(t), p, "gpt4o", 1); users.ErrorCode(err) != users.CodeConcurrency {
		t.Errorf("a second request beside it: %v, want the concurrency refusal", err)
	}
	a.Release()
	if !slotFree(t, f.mem, tokA, f.clock.Now()) {
		t.Error("the place is still taken after the request left")
	}
	if next := a.RenewLease(); next != 0 || !slotFree(t, f.mem, tokA, f.clock.Now()) {
		t.Errorf("a renewal after the request left: next in %s, or the place taken again", next)
	}
}

// slowRenewals is the memory store whose RenewLimits, once started,
// waits for go before it writes.
type slowRenewals struct {
	*memory.Store
	started, goOn chan struct{}
}

func (s *slowRenewals) RenewLimits(ctx context.Context, key, id string, until time.Time) error {
	close(s.started)
	<-s.goOn
	return s.Store.RenewLimits(ctx, key, id, until)
}

// A request that leaves while its renewal is being written leaves after
// it: the renewal, which takes a lease that ran out again, cannot bring
// back the lease of a request that has left.
func TestClusterLeaveWaitsForARenewalUnderWay(t *testing.T) {
	sr := &slowRenewals{started: make(chan struct{}), goOn: make(chan struct{})}
	f := newFixtureOn(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "0"),
		func(m *memory.Store) users.Store { sr.Store = m; return sr })
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(5 * time.Minute)
	renewed := make(chan struct{})
	go func() { a.RenewLease(); close(renewed) }()
	<-sr.started
	released := make(chan struct{})
	go func() { a.Release(); close(released) }()
	select {
	case <-released:
	case <-time.After(100 * time.Millisecond):
	}
	close(sr.goOn)
	<-renewed
	<-released
	if !slotFree(t, f.mem, tokA, f.clock.Now()) {
		t.Error("the request left, and its renewal took its place back")
	}
}
