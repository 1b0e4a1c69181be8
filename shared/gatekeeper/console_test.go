package gatekeeper_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// listsStore counts reads of the live lists and can fail them.
type listsStore struct {
	*memory.Store
	mu    sync.Mutex
	reads int
	fail  bool
}

func (s *listsStore) IPLists(ctx context.Context) (users.IPLists, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.fail {
		return users.IPLists{}, users.Errorf(users.CodeUnavailable, "down")
	}
	return s.Store.IPLists(ctx)
}

func TestLiveBlacklist(t *testing.T) {
	var ls *listsStore
	f := newFixtureOn(t, userEnv("USER_CACHE_TTL", "5s", "IP_BLACKLIST", "192.0.2.0/24"), func(m *memory.Store) users.Store {
		ls = &listsStore{Store: m}
		return ls
	})
	f.addUser(t, tokA, nil)
	if _, err := f.auth(t, clientIP, tokA); err != nil {
		t.Fatalf("before the list: %v", err)
	}
	if err := f.mem.SetIPLists(ctx(t), users.IPLists{Blacklist: []string{clientIP}}); err != nil {
		t.Fatal(err)
	}
	// Within USER_CACHE_TTL the instance may still use its copy...
	f.clock.Add(4 * time.Second)
	if _, err := f.auth(t, clientIP, tokA); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	// ...and past it, the address is refused.
	f.clock.Add(2 * time.Second)
	_, err := f.auth(t, clientIP, tokA)
	wantCode(t, err, users.CodeForbidden, "Forbidden (by IP_BLACKLIST).")
	_, err = f.auth(t, clientIP, adminKey)
	wantCode(t, err, users.CodeForbidden, "Forbidden (by IP_BLACKLIST).")
	if _, err := f.auth(t, "198.51.100.8", tokA); err != nil {
		t.Errorf("another address: %v", err)
	}
	reads := ls.reads

	// The store goes down: the lists last read stay, and the environment's
	// list is the floor. The outage is not retried by every request.
	ls.mu.Lock()
	ls.fail = true
	ls.mu.Unlock()
	f.clock.Add(6 * time.Second)
	for range 3 {
		_, err = f.auth(t, clientIP, tokA)
		wantCode(t, err, users.CodeForbidden, "Forbidden (by IP_BLACKLIST).")
	}
	_, err = f.auth(t, "192.0.2.44", tokA)
	wantCode(t, err, users.CodeForbidden, "Forbidden (by IP_BLACKLIST).")
	if ls.reads != reads+1 {
		t.Errorf("%d reads of the lists during the outage, want 1 per TTL", ls.reads-reads)
	}

	// Removed from the list: served again once the copy is stale.
	ls.mu.Lock()
	ls.fail = false
	ls.mu.Unlock()
	if err := f.mem.SetIPLists(ctx(t), users.IPLists{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(6 * time.Second)
	if _, err := f.auth(t, clientIP, tokA); err != nil {
		t.Errorf("after removal: %v", err)
	}
}

func TestLiveWhitelistAdmitsAdminKey(t *testing.T) {
	f := newFixture(t, userEnv("USER_CACHE_TTL", "1s", "ADMIN_WHITELIST", "10.9.0.0/16"))
	p, err := f.auth(t, clientIP, adminKey)
	wantCode(t, err, users.CodeUnauthorized, "")
	if p != nil {
		t.Fatal("admin key accepted outside the whitelist")
	}
	if err := f.mem.SetIPLists(ctx(t), users.IPLists{Whitelist: []string{"198.51.100.0/24"}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Second)
	p, err = f.auth(t, clientIP, adminKey)
	if err != nil || !p.Admin {
		t.Fatalf("admin key from a live whitelist entry: %+v, %v", p, err)
	}
	// The environment's entry still counts: live entries only add.
	if p, err := f.auth(t, "10.9.1.1", adminKey); err != nil || !p.Admin {
		t.Errorf("admin key from ADMIN_WHITELIST: %+v, %v", p, err)
	}
}

// eventStore records or fails events, and can hold them.
type eventStore struct {
	*memory.Store
	fail  error
	block chan struct{}
	done  chan struct{}
}

func (s *eventStore) AddEvent(ctx context.Context, token string, e users.Event) error {
	defer close(s.done)
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.fail != nil {
		return s.fail
	}
	return s.Store.AddEvent(ctx, token, e)
}

func eventFixture(t *testing.T, logging string, es **eventStore) *fixture {
	t.Helper()
	return newFixtureOn(t, userEnv("EVENT_LOGGING", logging), func(m *memory.Store) users.Store {
		*es = &eventStore{Store: m, done: make(chan struct{})}
		return *es
	})
}

func waitDone(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("the event write never ran")
	}
}

func TestChargeRecordsEvent(t *testing.T) {
	var es *eventStore
	f := eventFixture(t, "true", &es)
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, "203.0.113.57", tokA)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gk.ChargeRequest(ctx(t), p, gatekeeper.Charged{Family: "gpt4o", Model: "gpt-4o-mini", Input: 120, Output: 30, Status: 200}); err != nil {
		t.Fatal(err)
	}
	waitDone(t, es.done)
	page, err := f.mem.EventPage(ctx(t), tokA, "", 10)
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("events = %+v, %v", page, err)
	}
	e := page.Events[0]
	if e.At != t0.UnixMilli() || e.Family != "gpt4o" || e.Model != "gpt-4o-mini" || e.Input != 120 || e.Output != 30 || e.IPTail != "….57" || e.Status != 200 {
		t.Errorf("event = %+v", e)
	}
	if u := f.user(t, tokA); u.TokenCounts["gpt4o"] != 150 {
		t.Errorf("charged %v, want 150", u.TokenCounts)
	}
}

func TestChargeWithoutEventLogging(t *testing.T) {
	var es *eventStore
	f := eventFixture(t, "false", &es)
	f.addUser(t, tokA, nil)
	p, _ := f.auth(t, clientIP, tokA)
	if err := f.gk.ChargeRequest(ctx(t), p, gatekeeper.Charged{Family: "gpt4o", Input: 1, Output: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if page, _ := f.mem.EventPage(ctx(t), tokA, "", 10); len(page.Events) != 0 {
		t.Errorf("EVENT_LOGGING=false recorded %+v", page.Events)
	}
}

// A failed event write loses the event only: the charge lands, Charge
// succeeds, and the failure is reported.
func TestEventFailureLeavesChargeAlone(t *testing.T) {
	var es *eventStore
	f := eventFixture(t, "true", &es)
	es.fail = errors.New("database down")
	reported := make(chan string, 1)
	f.gk.OnEventError(func(token string, err error) { reported <- token + ": " + err.Error() })
	f.addUser(t, tokA, nil)
	p, _ := f.auth(t, clientIP, tokA)
	if err := f.gk.ChargeRequest(ctx(t), p, gatekeeper.Charged{Family: "claude", Input: 10, Output: 5, Status: 200}); err != nil {
		t.Fatalf("ChargeRequest with a failing event write: %v", err)
	}
	if u := f.user(t, tokA); u.TokenCounts["claude"] != 15 || u.PromptCount != 1 {
		t.Errorf("charge lost: %v, %d prompts", u.TokenCounts, u.PromptCount)
	}
	select {
	case msg := <-reported:
		if msg != tokA+": database down" {
			t.Errorf("reported %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the failed event write was not reported")
	}
}

// A slow event write does not hold the charge up.
func TestSlowEventDoesNotDelayCharge(t *testing.T) {
	var es *eventStore
	f := eventFixture(t, "true", &es)
	es.block = make(chan struct{})
	f.addUser(t, tokA, nil)
	p, _ := f.auth(t, clientIP, tokA)
	returned := make(chan error, 1)
	go func() {
		returned <- f.gk.ChargeRequest(ctx(t), p, gatekeeper.Charged{Family: "gpt4o", Input: 1, Output: 2, Status: 200})
	}()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ChargeRequest waited for the event write")
	}
	close(es.block)
	waitDone(t, es.done)
	if page, _ := f.mem.EventPage(ctx(t), tokA, "", 10); len(page.Events) != 1 {
		t.Errorf("the held event was not written after all: %+v", page.Events)
	}
}

// heldLists holds the next read of the live lists after the store has
// answered it, until release is closed: an answer on its way.
type heldLists struct {
	*memory.Store
	mu      sync.Mutex
	hold    chan struct{} // nil: reads are not held
	read    chan struct{} // closed once the held read has its answer
	release chan struct{}
}

func (s *heldLists) IPLists(ctx context.Context) (users.IPLists, error) {
	l, err := s.Store.IPLists(ctx)
	s.mu.Lock()
	hold := s.hold
	s.hold = nil
	s.mu.Unlock()
	if hold != nil {
		close(s.read)
		<-s.release
	}
	return l, err
}

// Lists saved through an instance apply there at once, even while a
// read of the older lists is on its way: that read's answer is used by
// the checks waiting for it, but not kept as fresh. (Before, it was kept
// for USER_CACHE_TTL: the address just blacklisted was still served.)
func TestSavedListsApplyAtOnceDespiteAReadUnderWay(t *testing.T) {
	mem := memory.New()
	hl := &heldLists{Store: mem, hold: make(chan struct{}), read: make(chan struct{}), release: make(chan struct{})}
	cfg, err := config.FromMap(userEnv("USER_CACHE_TTL", "5s"))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	ips := gatekeeper.NewLiveIPs(cfg, hl, clk.Now)

	checked := make(chan bool, 1)
	go func() { checked <- ips.Blacklisted(ctx(t), clientIP) }() // a request's check starts a read
	<-hl.read
	if _, err := ips.Replace(ctx(t), users.IPLists{Blacklist: []string{clientIP}}, "198.51.100.8"); err != nil {
		t.Fatal(err)
	}
	close(hl.release)
	if <-checked {
		t.Log("the check under way saw the new lists") // either is right for it
	}
	if !ips.Blacklisted(ctx(t), clientIP) {
		t.Error("an address blacklisted through this instance is served there: a read begun before the save was kept as fresh")
	}
}

// hangingLists holds every read of the live lists while hang is set,
// until release is closed or the read's deadline passes: a database that
// has stopped answering.
type hangingLists struct {
	*memory.Store
	hang    atomic.Bool
	release chan struct{}
	reads   atomic.Int32
}

func (s *hangingLists) IPLists(ctx context.Context) (users.IPLists, error) {
	s.reads.Add(1)
	if s.hang.Load() {
		select {
		case <-s.release:
		case <-ctx.Done():
			return users.IPLists{}, ctx.Err()
		}
	}
	return s.Store.IPLists(ctx)
}

// When the lists are due to be read again and the database has stopped
// answering, checks go on with the last lists read after a short wait
// (not the read's 3 s deadline), and one read serves them all; its
// answer, when it comes, is used from then on. (Before, every request of
// the instance waited for the read: up to 3 s, once every
// USER_CACHE_TTL, in every gatekeeper mode.)
func TestListsDueDoNotHoldChecksWhileTheDatabaseHangs(t *testing.T) {
	hl := &hangingLists{Store: memory.New(), release: make(chan struct{})}
	cfg, err := config.FromMap(userEnv("USER_CACHE_TTL", "5s"))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	ips := gatekeeper.NewLiveIPs(cfg, hl, clk.Now)
	if err := hl.SetIPLists(ctx(t), users.IPLists{Blacklist: []string{clientIP}}); err != nil {
		t.Fatal(err)
	}
	if !ips.Blacklisted(ctx(t), clientIP) {
		t.Fatal("the live blacklist is not applied")
	}
	clk.Add(6 * time.Second) // due to be read again
	hl.hang.Store(true)
	release := sync.OnceFunc(func() { close(hl.release) })
	t.Cleanup(release)
	reads := hl.reads.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if !ips.Blacklisted(ctx(t), clientIP) {
				t.Error("the last lists read are not in force while the database hangs")
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("checks waited %s for a read of the lists from a database that does not answer", took)
	}
	if n := hl.reads.Load() - reads; n != 1 {
		t.Errorf("%d reads of the lists for 10 checks, want 1", n)
	}
	if err := hl.Store.SetIPLists(ctx(t), users.IPLists{}); err != nil {
		t.Fatal(err)
	}
	release() // the read under way is answered: the address is off the list
	waitFor(t, "the read under way to be used", func() bool { return !ips.Blacklisted(ctx(t), clientIP) })
}
