// Package ratelimit holds the per-instance limiters: a sliding-window
// request limiter, an in-flight (concurrency) limiter, and the admin login
// lockout. Keys are user tokens, or client IPs where there is no token.
package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
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

// ring holds the times of the last requests of one key, oldest first.
type ring struct {
	times []time.Time
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
		r = &ring{times: make([]time.Time, 0, min(limit, 16))}
		s.keys[key] = r
	}
	cutoff := now.Add(-w.window)
	drop := 0
	for drop < len(r.times) && !r.times[drop].After(cutoff) {
		drop++
	}
	r.times = r.times[drop:]
	if len(r.times) >= limit {
		oldest := r.times[len(r.times)-limit]
		reset := oldest.Add(w.window)
		return Decision{Limit: limit, Remaining: 0, Reset: reset, RetryIn: reset.Sub(now)}
	}
	r.times = append(r.times, now)
	reset := r.times[0].Add(w.window)
	return Decision{Allowed: true, Limit: limit, Remaining: limit - len(r.times), Reset: reset}
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
	for i := len(r.times) - 1; i >= 0; i-- {
		if r.times[i].Equal(at) {
			r.times = append(r.times[:i], r.times[i+1:]...)
			return
		}
	}
}

// sweepOld forgets keys with no request since cutoff, so idle users cost
// no memory.
func (s *windowShard) sweepOld(cutoff time.Time) {
	for k, r := range s.keys {
		if len(r.times) == 0 || !r.times[len(r.times)-1].After(cutoff) {
			delete(s.keys, k)
		}
	}
}

// Concurrency limits requests in flight per key.
type Concurrency struct {
	mu       sync.Mutex
	inflight map[string]int
}

// NewConcurrency returns an empty limiter.
func NewConcurrency() *Concurrency { return &Concurrency{inflight: make(map[string]int)} }

// Acquire takes a slot for key unless limit are in flight (limit 0: no
// limit). The release func must be called exactly once when ok.
func (c *Concurrency) Acquire(key string, limit int) (release func(), ok bool) {
	if limit <= 0 {
		return func() {}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[key] >= limit {
		return nil, false
	}
	c.inflight[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			if c.inflight[key]--; c.inflight[key] <= 0 {
				delete(c.inflight, key)
			}
			c.mu.Unlock()
		})
	}, true
}

// Lockout locks out a key (a client IP) after too many failures within a
// window; old failures decay out of the window, so the lock lifts by
// itself.
type Lockout struct {
	max    int
	window time.Duration
	mu     sync.Mutex
	fails  map[string][]time.Time
}

// NewLockout locks a key out after max failures within window; max 0
// never locks.
func NewLockout(max int, window time.Duration) *Lockout {
	return &Lockout{max: max, window: window, fails: make(map[string][]time.Time)}
}

// Locked reports whether key is locked out at now, and for how long.
func (l *Lockout) Locked(key string, now time.Time) (bool, time.Duration) {
	if l.max <= 0 { // no lockout configured
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
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
	l.fails[key] = append(l.prune(key, now), now)
	if len(l.fails) > 10000 { // bound memory under a spray of addresses
		for k := range l.fails {
			if len(l.prune(k, now)) == 0 {
				delete(l.fails, k)
			}
		}
	}
}

// Succeed clears key's failures.
func (l *Lockout) Succeed(key string) {
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
