package ratelimit_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func TestWindowSliding(t *testing.T) {
	w := ratelimit.NewWindow(time.Minute)
	type step struct {
		at        int // seconds after t0
		allowed   bool
		remaining int
		reset     int // seconds after t0
		retry     int // seconds, when refused
	}
	steps := []step{
		{at: 0, allowed: true, remaining: 2, reset: 60},
		{at: 10, allowed: true, remaining: 1, reset: 60},
		{at: 20, allowed: true, remaining: 0, reset: 60},
		{at: 30, allowed: false, remaining: 0, reset: 60, retry: 30},
		{at: 59, allowed: false, remaining: 0, reset: 60, retry: 1},
		// At 60 the request of 0 has slid out; the window now starts at 10.
		{at: 60, allowed: true, remaining: 0, reset: 70},
		{at: 65, allowed: false, remaining: 0, reset: 70, retry: 5},
		{at: 70, allowed: true, remaining: 0, reset: 80},
		// Long idle: everything has left.
		{at: 500, allowed: true, remaining: 2, reset: 560},
	}
	for _, s := range steps {
		d := w.Allow("user", 3, sec(s.at))
		if d.Allowed != s.allowed || d.Limit != 3 || d.Remaining != s.remaining || !d.Reset.Equal(sec(s.reset)) {
			t.Fatalf("at %ds: got %+v, want allowed %v remaining %d reset %ds", s.at, d, s.allowed, s.remaining, s.reset)
		}
		wantRetry := time.Duration(s.retry) * time.Second
		if d.RetryIn != wantRetry {
			t.Fatalf("at %ds: RetryIn = %s, want %s", s.at, d.RetryIn, wantRetry)
		}
	}
}

func TestWindowRefusedRequestsAreNotCounted(t *testing.T) {
	w := ratelimit.NewWindow(time.Minute)
	w.Allow("k", 1, sec(0))
	for i := 1; i < 50; i++ {
		if d := w.Allow("k", 1, sec(i)); d.Allowed {
			t.Fatalf("allowed at %ds", i)
		}
	}
	if d := w.Allow("k", 1, sec(60)); !d.Allowed {
		t.Fatalf("hammering while refused extended the window: %+v", d)
	}
}

func TestWindowLimitZeroAllowsAll(t *testing.T) {
	w := ratelimit.NewWindow(time.Minute)
	for i := range 1000 {
		for _, limit := range []int{0, -1} {
			if d := w.Allow("k", limit, sec(0)); !d.Allowed || d.Limit != 0 {
				t.Fatalf("request %d with limit %d: %+v", i, limit, d)
			}
		}
	}
	// Unlimited requests were not recorded against a later limit.
	if d := w.Allow("k", 1, sec(0)); !d.Allowed {
		t.Fatalf("limit 1 after unlimited requests: %+v", d)
	}
}

func TestWindowLimitLowered(t *testing.T) {
	w := ratelimit.NewWindow(time.Minute)
	for i := range 5 {
		w.Allow("k", 10, sec(i*10)) // at 0, 10, 20, 30, 40
	}
	// Now limited to 2: one more is allowed once only two of the five
	// remain, i.e. when the one at 20 has left.
	d := w.Allow("k", 2, sec(45))
	if d.Allowed || !d.Reset.Equal(sec(90)) || d.RetryIn != 45*time.Second {
		t.Fatalf("got %+v, want refused until 90s", d)
	}
	if d := w.Allow("k", 2, sec(90)); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("at 90s: %+v", d)
	}
}

func TestWindowKeysAreIndependent(t *testing.T) {
	w := ratelimit.NewWindow(time.Minute)
	for i := range 2000 {
		key := fmt.Sprintf("user-%d", i)
		if d := w.Allow(key, 1, sec(0)); !d.Allowed {
			t.Fatalf("%s refused on its first request", key)
		}
		if d := w.Allow(key, 1, sec(1)); d.Allowed {
			t.Fatalf("%s allowed twice", key)
		}
	}
	// After the window every key starts afresh (and the sweep ran).
	for i := range 2000 {
		key := fmt.Sprintf("user-%d", i)
		if d := w.Allow(key, 1, sec(61)); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("%s after the window: %+v", key, d)
		}
	}
}

func TestConcurrency(t *testing.T) {
	c := ratelimit.NewConcurrency()
	s1, ok := c.Take("a", 2)
	if !ok {
		t.Fatal("first take refused")
	}
	s2, ok := c.Take("a", 2)
	if !ok {
		t.Fatal("second take refused")
	}
	if _, ok := c.Take("a", 2); ok {
		t.Fatal("third take over limit 2 allowed")
	}
	if _, ok := c.Take("b", 2); !ok {
		t.Fatal("another key refused")
	}
	s1.Release()
	s3, ok := c.Take("a", 2)
	if !ok {
		t.Fatal("take after release refused")
	}
	if _, ok := c.Take("a", 2); ok {
		t.Fatal("one release freed two slots")
	}
	s2.Release()
	s3.Release()
	// Limit 0 (or less) never refuses and its slot holds nothing.
	for range 100 {
		sl, ok := c.Take("a", 0)
		if !ok {
			t.Fatal("limit 0 refused")
		}
		sl.Release()
	}
	if sl, ok := c.Take("a", -3); !ok {
		t.Fatal("negative limit refused")
	} else {
		sl.Release()
	}
	var zero ratelimit.Slot
	zero.Release() // holds nothing: frees nothing
	// All released: the full limit is available again, and no more.
	for i := range 2 {
		if _, ok := c.Take("a", 2); !ok {
			t.Fatalf("slot %d not available after all releases", i)
		}
	}
	if _, ok := c.Take("a", 2); ok {
		t.Fatal("limit-0 slots or the zero slot freed a slot")
	}
}

func TestLockout(t *testing.T) {
	l := ratelimit.NewLockout(3, 10*time.Minute)
	ip := "198.51.100.7"
	check := func(at time.Time, wantLocked bool, wantFor time.Duration) {
		t.Helper()
		locked, d := l.Locked(ip, at)
		if locked != wantLocked || d != wantFor {
			t.Fatalf("Locked at %s = %v, %s; want %v, %s", at.Sub(t0), locked, d, wantLocked, wantFor)
		}
	}
	check(t0, false, 0)
	l.Fail(ip, sec(0))
	l.Fail(ip, sec(60))
	check(sec(61), false, 0)
	l.Fail(ip, sec(120))
	// Third failure within 10 minutes: locked until the first one decays.
	check(sec(120), true, 8*time.Minute)
	check(sec(599), true, time.Second)
	if locked, _ := l.Locked("203.0.113.1", sec(130)); locked {
		t.Fatal("another address is locked")
	}
	// The first failure decays at 600s: two remain, below the limit.
	check(sec(600), false, 0)
	// One more failure locks again, until the one at 60 decays.
	l.Fail(ip, sec(601))
	check(sec(601), true, 59*time.Second)
	// Success clears everything.
	l.Succeed(ip)
	check(sec(602), false, 0)
	l.Fail(ip, sec(603))
	l.Fail(ip, sec(604))
	check(sec(605), false, 0)
	// With no failure for a whole window the counter is back to zero.
	l.Fail(ip, sec(1300))
	l.Fail(ip, sec(1301))
	check(sec(1302), false, 0)
}

func TestLockoutMaxZeroNeverLocks(t *testing.T) {
	l := ratelimit.NewLockout(0, time.Minute)
	if locked, _ := l.Locked("k", t0); locked {
		t.Fatal("locked with no failure")
	}
	l.Fail("k", t0)
	if locked, _ := l.Locked("k", t0); locked {
		t.Fatal("max 0 locked")
	}
}

func TestLockoutManyAddresses(t *testing.T) {
	l := ratelimit.NewLockout(2, time.Minute)
	for i := range 10050 {
		l.Fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0)
	}
	// Old entries are dropped under a spray, fresh ones kept.
	l.Fail("victim", sec(120))
	l.Fail("victim", sec(121))
	if locked, _ := l.Locked("victim", sec(121)); !locked {
		t.Fatal("fresh failures lost")
	}
	if locked, _ := l.Locked("10.0.0.1", sec(121)); locked {
		t.Fatal("decayed address still locked")
	}
}

// TestRace hammers every limiter from many goroutines; run with -race.
func TestRace(t *testing.T) {
	w := ratelimit.NewWindow(time.Minute)
	c := ratelimit.NewConcurrency()
	l := ratelimit.NewLockout(5, time.Minute)
	const goroutines, perG, limit = 16, 200, 50
	var allowed, peak, inflight atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				now := sec(i % 30)
				if w.Allow("shared", limit, now).Allowed {
					allowed.Add(1)
				}
				w.Allow(fmt.Sprintf("g%d-%d", g, i%7), 3, now)
				if sl, ok := c.Take("shared", 4); ok {
					n := inflight.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					inflight.Add(-1)
					sl.Release()
				}
				key := fmt.Sprintf("ip%d", i%3)
				l.Fail(key, now)
				l.Locked(key, now)
				if i%50 == 0 {
					l.Succeed(key)
				}
			}
		})
	}
	wg.Wait()
	// All requests fall within one window, so exactly limit pass.
	if allowed.Load() != limit {
		t.Errorf("allowed %d requests under limit %d", allowed.Load(), limit)
	}
	if peak.Load() > 4 {
		t.Errorf("%d in flight under limit 4", peak.Load())
	}
	for i := range 4 {
		if _, ok := c.Take("shared", 4); !ok {
			t.Fatalf("slot %d leaked", i)
		}
	}
}

func BenchmarkWindowAllow(b *testing.B) {
	w := ratelimit.NewWindow(time.Minute)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Allow(keys[i%len(keys)], 100, t0.Add(time.Duration(i)*time.Millisecond))
		i++
	}
}

func BenchmarkConcurrency(b *testing.B) {
	c := ratelimit.NewConcurrency()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if sl, ok := c.Take("k", 1<<20); ok {
				sl.Release()
			}
		}
	})
}

func TestWindowUndo(t *testing.T) {
	w := ratelimit.NewWindow(time.Minute)
	at := time.Unix(1000, 0)
	w.Allow("k", 1, at)
	w.Undo("k", at)
	if d := w.Allow("k", 1, at.Add(time.Second)); !d.Allowed {
		t.Fatal("an undone request still counts")
	}
	w.Undo("missing", at) // unknown keys are ignored
}

// An IPv6 client usually holds a whole /64: its addresses count together,
// and an IPv4-mapped address counts as the IPv4 one.
func TestLockoutCountsIPv6ByPrefix(t *testing.T) {
	l := ratelimit.NewLockout(3, time.Minute)
	l.Fail("2001:db8:1:2::1", t0)
	l.Fail("2001:db8:1:2::2", t0)
	l.Fail("2001:db8:1:2:ffff:ffff:ffff:ffff", t0)
	if locked, _ := l.Locked("2001:db8:1:2::99", t0); !locked {
		t.Fatal("another address of the same /64 is not locked")
	}
	if locked, _ := l.Locked("2001:db8:1:3::1", t0); locked {
		t.Fatal("the next /64 is locked")
	}
	l.Succeed("2001:db8:1:2::5")
	if locked, _ := l.Locked("2001:db8:1:2::1", t0); locked {
		t.Fatal("a success in the /64 did not clear it")
	}
	for range 3 {
		l.Fail("::ffff:198.51.100.7", t0)
	}
	if locked, _ := l.Locked("198.51.100.7", t0); !locked {
		t.Fatal("the IPv4-mapped address and the IPv4 one count apart")
	}
	if locked, _ := l.Locked("198.51.100.8", t0); locked {
		t.Fatal("an IPv4 address locked its neighbour")
	}
}

// Attempts begun at the same time count before they are judged: of many
// at once, only max get through, and a cancelled one frees its place.
func TestLockoutBeginCountsAttemptsInFlight(t *testing.T) {
	l := ratelimit.NewLockout(3, time.Minute)
	var began atomic.Int64
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			if _, locked, _ := l.Begin("198.51.100.7", t0); !locked {
				began.Add(1)
			}
		})
	}
	wg.Wait()
	if n := began.Load(); n != 3 {
		t.Fatalf("%d of 24 attempts at once began; want 3", n)
	}
	l2 := ratelimit.NewLockout(3, time.Minute)
	for i := range 10 {
		a, locked, _ := l2.Begin("198.51.100.7", sec(i))
		if locked {
			t.Fatalf("attempt %d refused after every earlier one was cancelled", i)
		}
		a.Cancel()
	}
	a, _, _ := l2.Begin("198.51.100.7", sec(20))
	l2.Begin("198.51.100.7", sec(21))
	a.Cancel()
	l2.Begin("198.51.100.7", sec(22))
	if locked, _ := l2.Locked("198.51.100.7", sec(23)); locked {
		t.Fatal("a cancelled attempt still counts")
	}
	l2.Begin("198.51.100.7", sec(23))
	if _, locked, wait := l2.Begin("198.51.100.7", sec(24)); !locked || wait != 57*time.Second {
		t.Fatalf("after 3 uncancelled attempts: locked %v, wait %s; want locked for 57s", locked, wait)
	}
}
