// Package ratelimit holds the per-instance limiters: a sliding-window
// request limiter, an in-flight (concurrency) limiter, and the admin login
// lockout. Keys are user tokens, or client IPs where there is no token.
package ratelimit

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/netutil"
)

const shards = 64

// Window allows at most limit requests per key in any window-long span.
type Window struct {
	window time.Duration
	seed   maphash.Seed
	shards [shards]windowShard
}

type windowShard struct {
	mu    sync.Mutex
	keys  map[string]*ring
	sweep time.Time
}

// ring holds the times of the last requests of one key, oldest first, in
// a circular buffer: a busy key's window slides without reallocating. The
// times are kept as offsets from base, so that the buffer holds no
// pointers for the garbage collector to scan, and is a third the size.
type ring struct {
	base time.Time       // the first request's time since the ring was empty
	offs []time.Duration // circular: request times - base
	head int             // index of the oldest
	n    int             // how many are held
}

func (r *ring) off(i int) time.Duration { return r.offs[(r.head+i)%len(r.offs)] }

func (r *ring) at(i int) time.Time { return r.base.Add(r.off(i)) }

func (r *ring) dropOldest() {
	r.head = (r.head + 1) % len(r.offs)
	r.n--
}

func (r *ring) push(t time.Time) {
	if r.n == 0 {
		r.base, r.head = t, 0
	}
	if r.n == len(r.offs) {
		grown := make([]time.Duration, max(2*len(r.offs), 4))
		for i := range r.n {
			grown[i] = r.off(i)
		}
		r.offs, r.head = grown, 0
	}
	r.offs[(r.head+r.n)%len(r.offs)] = t.Sub(r.base)
	r.n++
}

// remove takes out the i-th oldest, keeping the order of the others.
func (r *ring) remove(i int) {
	for ; i < r.n-1; i++ {
		r.offs[(r.head+i)%len(r.offs)] = r.off(i + 1)
	}
	r.n--
}

// NewWindow returns a limiter with the given window (a minute for RPM).
func NewWindow(window time.Duration) *Window {
	w := &Window{window: window, seed: maphash.MakeSeed()}
	for i := range w.shards {
		w.shards[i].keys = make(map[string]*ring)
	}
	return w
}

// Decision is the outcome of one Allow call, with what the X-RateLimit-*
// headers report.
type Decision struct {
	Allowed   bool
	Limit     int
	Remaining int
	Reset     time.Time     // when the oldest counted request leaves the window
	RetryIn   time.Duration // when refused: how long until one is allowed
}

// Allow counts a request for key at now unless limit is reached; limit 0
// allows everything.
func (w *Window) Allow(key string, limit int, now time.Time) Decision {
	if limit <= 0 {
		return Decision{Allowed: true}
	}
	s := &w.shards[maphash.String(w.seed, key)%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.sweep) > w.window {
		s.sweepOld(now.Add(-w.window))
		s.sweep = now
	}
	r := s.keys[key]
	if r == nil {
		r = &ring{offs: make([]time.Duration, min(limit, 16))}
		s.keys[key] = r
	}
	cutoff := now.Add(-w.window).Sub(r.base)
	for r.n > 0 && r.off(0) <= cutoff {
		r.dropOldest()
	}
	if r.n >= limit {
		reset := r.at(r.n - limit).Add(w.window)
		return Decision{Limit: limit, Remaining: 0, Reset: reset, RetryIn: reset.Sub(now)}
	}
	r.push(now)
	return Decision{Allowed: true, Limit: limit, Remaining: limit - r.n, Reset: r.at(0).Add(w.window)}
}

// Undo takes back a request that Allow counted for key at at, for a request
// refused by a later check.
func (w *Window) Undo(key string, at time.Time) {
	s := &w.shards[maphash.String(w.seed, key)%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.keys[key]
	if r == nil {
		return
	}
	for i := r.n - 1; i >= 0; i-- {
		if r.off(i) == at.Sub(r.base) {
			r.remove(i)
			return
		}
	}
}

// sweepOld forgets keys with no request since cutoff, so idle users cost
// no memory.
func (s *windowShard) sweepOld(cutoff time.Time) {
	for k, r := range s.keys {
		if r.n == 0 || !r.at(r.n-1).After(cutoff) {
			delete(s.keys, k)
		}
	}
}

// Concurrency limits requests in flight per key. Keys are spread over
// shards, as in Window, so that requests of different users do not wait
// for one another.
type Concurrency struct {
	seed   maphash.Seed
	shards [shards]concurrencyShard
}

type concurrencyShard struct {
	mu       sync.Mutex
	inflight map[string]int
}

// NewConcurrency returns an empty limiter.
func NewConcurrency() *Concurrency {
	c := &Concurrency{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].inflight = make(map[string]int)
	}
	return c
}

// Slot is a request in flight, taken by Take. Its zero value holds
// nothing.
type Slot struct {
	c   *Concurrency
	key string
}

// Take takes a slot for key unless limit are in flight (limit 0: no
// limit, and the slot holds nothing). The slot must be released exactly
// once when ok.
func (c *Concurrency) Take(key string, limit int) (Slot, bool) {
	if limit <= 0 {
		return Slot{}, true
	}
	s := &c.shards[maphash.String(c.seed, key)%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[key] >= limit {
		return Slot{}, false
	}
	s.inflight[key]++
	return Slot{c: c, key: key}, true
}

// Release frees the slot. Releasing one slot twice frees someone else's.
func (sl Slot) Release() {
	if sl.c == nil {
		return
	}
	s := &sl.c.shards[maphash.String(sl.c.seed, sl.key)%shards]
	s.mu.Lock()
	if s.inflight[sl.key]--; s.inflight[sl.key] <= 0 {
		delete(s.inflight, sl.key)
	}
	s.mu.Unlock()
}

// Lockout locks out a key (a client IP) after too many failures within a
// window; old failures decay out of the window, so the lock lifts by
// itself. An IPv6 address is counted with its whole /64, which one
// client usually holds entirely, and an IPv4-mapped one as IPv4.
type Lockout struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	fails  map[string][]time.Time
	// sweepAt is the number of keys at which Fail next drops the decayed
	// ones: twice what the last sweep kept (maxKeys at most), so that a
	// spray of addresses costs each failure a constant share of one
	// sweep, not a whole one.
	sweepAt int
}

// minSweep is the fewest keys at which Fail sweeps.
const minSweep = 10000

// NewLockout locks a key out after max failures within window; max 0
// never locks.
func NewLockout(max int, window time.Duration) *Lockout {
	return &Lockout{max: max, window: window, fails: make(map[string][]time.Time), sweepAt: minSweep}
}

// Failed keys (admin or proxy keys) allowed per client address within
// KeyLockoutWindow before the address is locked out.
const (
	KeyLockoutMax    = 5
	KeyLockoutWindow = 15 * time.Minute
)

// NewKeyLockout is the lockout for guessed keys: KeyLockoutMax failures
// within KeyLockoutWindow.
func NewKeyLockout() *Lockout { return NewLockout(KeyLockoutMax, KeyLockoutWindow) }

// Locked reports whether key is locked out at now, and for how long.
func (l *Lockout) Locked(key string, now time.Time) (bool, time.Duration) {
	if l.max <= 0 { // no lockout configured
		return false, 0
	}
	key = netutil.ClientKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lockedLocked(key, now)
}

func (l *Lockout) lockedLocked(key string, now time.Time) (bool, time.Duration) {
	f := l.prune(key, now)
	if len(f) < l.max {
		return false, 0
	}
	// Unlocked once enough failures have aged out to fall below max.
	return true, f[len(f)-l.max].Add(l.window).Sub(now)
}

// Fail records a failed attempt by key at now.
func (l *Lockout) Fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failLocked(netutil.ClientKey(key), now)
}

func (l *Lockout) failLocked(key string, now time.Time) {
	f := append(l.prune(key, now), now)
	if l.max > 0 && len(f) > l.max {
		// Only the last max failures decide the lock and its end.
		f = append(f[:0], f[len(f)-l.max:]...)
	}
	l.fails[key] = f
	if len(l.fails) >= l.sweepAt { // bound memory under a spray of addresses
		for k := range l.fails {
			l.prune(k, now)
		}
		l.evict()
		l.sweepAt = min(max(minSweep, 2*len(l.fails)), maxKeys)
	}
}

// maxKeys bounds the addresses a lockout remembers (some 200 bytes each).
const maxKeys = 100_000

// evict forgets addresses down to maxKeys/2 when maxKeys are remembered:
// first those not locked out (a spray of addresses costs one failure
// each), so that an address cannot free itself by spraying others.
func (l *Lockout) evict() {
	if len(l.fails) < maxKeys {
		return
	}
	for _, locked := range []bool{false, true} {
		for k, f := range l.fails {
			if len(l.fails) <= maxKeys/2 {
				return
			}
			if locked || len(f) < l.max {
				delete(l.fails, k)
			}
		}
	}
}

// Attempt is a try counted as a failure before it is judged; see Begin.
type Attempt struct {
	l   *Lockout
	key string
	at  time.Time
}

// Begin starts an attempt by key at now, refused (locked true, with the
// wait) while key is locked out. The attempt counts as a failure at once,
// so that attempts made at the same time cannot together pass the limit;
// Cancel takes it back when the attempt turns out well.
func (l *Lockout) Begin(key string, now time.Time) (a Attempt, locked bool, wait time.Duration) {
	if l.max <= 0 {
		return Attempt{}, false, 0
	}
	key = netutil.ClientKey(key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if locked, wait := l.lockedLocked(key, now); locked {
		return Attempt{}, true, wait
	}
	l.failLocked(key, now)
	return Attempt{l: l, key: key, at: now}, false, 0
}

// Cancel takes back the failure Begin counted, if it is still counted.
func (a Attempt) Cancel() {
	if a.l == nil {
		return
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	f := a.l.fails[a.key]
	if i := slices.Index(f, a.at); i >= 0 {
		f = slices.Delete(f, i, i+1)
		if len(f) == 0 {
			delete(a.l.fails, a.key)
			return
		}
		a.l.fails[a.key] = f
	}
}

// Succeed clears key's failures.
func (l *Lockout) Succeed(key string) {
	key = netutil.ClientKey(key)
	l.mu.Lock()
	delete(l.fails, key)
	l.mu.Unlock()
}

func (l *Lockout) prune(key string, now time.Time) []time.Time {
	f := l.fails[key]
	cutoff := now.Add(-l.window)
	i := 0
	for i < len(f) && !f[i].After(cutoff) {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = f
	return f
}
