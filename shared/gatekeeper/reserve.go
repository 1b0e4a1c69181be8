package gatekeeper

import (
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// ledger holds, per user, the tokens that this instance's admitted
// requests have reserved and not yet released, so that the quota check of
// one request counts what the requests running beside it may still charge:
// used + reserved + requested ≤ quota.
type ledger struct {
	mu       sync.Mutex
	accounts map[string]*account // by user token; only while in use
	spare    []*account          // emptied accounts, reused: most requests open one
}

// maxSpare bounds the emptied accounts kept for reuse.
const maxSpare = 64

// account is one user's open reservations. settled counts the tokens
// charged while the account was open, which lets a check that read the
// user's counts before a charge landed count that charge anyway: a
// request releases its reservation right after its charge, and the copy
// of the user read by a concurrent check may predate the charge.
type account struct {
	refs     int              // reservations held plus checks under way
	reserved map[string]int64 // family → tokens
	settled  map[string]int64 // family → tokens charged since opened
}

func newLedger() *ledger { return &ledger{accounts: map[string]*account{}} }

// open starts a check for token and returns the family's settled count,
// to be given back to reserve or close.
func (l *ledger) open(token, family string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.accounts[token]
	if a == nil {
		if n := len(l.spare); n > 0 {
			a, l.spare = l.spare[n-1], l.spare[:n-1]
		} else {
			a = &account{reserved: map[string]int64{}, settled: map[string]int64{}}
		}
		l.accounts[token] = a
	}
	a.refs++
	return a.settled[family]
}

// close ends a check that reserved nothing.
func (l *ledger) close(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked(token)
}

func (l *ledger) dropLocked(token string) {
	a := l.accounts[token]
	if a == nil {
		return
	}
	if a.refs--; a.refs <= 0 {
		delete(l.accounts, token)
		if len(l.spare) < maxSpare {
			clear(a.reserved)
			clear(a.settled)
			a.refs = 0
			l.spare = append(l.spare, a)
		}
	}
}

// reserve checks the quota of token's user (of type typ, whose family
// has limit and has used used, as read after open returned settled0) for
// requested more tokens, counting the reservations of other requests and
// what was charged since, and reserves them when they fit. On refusal
// the check is closed.
func (l *ledger) reserve(token string, typ users.Type, family string, limit, used, requested, settled0 int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.accounts[token]
	extra := satAdd(a.reserved[family], a.settled[family]-settled0)
	asked := satAdd(requested, extra)
	if limit > 0 && asked > limit {
		asked = limit + 1 // over either way; CheckQuota's sum must not wrap
	}
	if err := users.CheckFamilyQuota(typ, family, limit, used, asked); err != nil {
		l.dropLocked(token)
		var e *users.Error
		if errors.As(err, &e) && e.Code == users.CodeQuota {
			e.Used, e.Requested = satAdd(e.Used, extra), requested
		}
		return err
	}
	a.reserved[family] += requested
	return nil
}

// release gives back a reservation made by reserve; exactly once.
func (l *ledger) release(token, family string, tokens int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[token]; a != nil {
		if a.reserved[family] -= tokens; a.reserved[family] <= 0 {
			delete(a.reserved, family)
		}
	}
	l.dropLocked(token)
}

// settle notes tokens just charged to token's family, for the checks
// under way (see account).
func (l *ledger) settle(token, family string, tokens int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[token]; a != nil {
		a.settled[family] = satAdd(a.settled[family], tokens)
	}
}

// reserved is what token's admitted requests hold for family now.
func (l *ledger) reserved(token, family string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[token]; a != nil {
		return a.reserved[family]
	}
	return 0
}

// satAdd adds non-negative counts without wrapping: a hostile request
// asking for nearly MaxInt64 tokens must not come out negative and pass
// the quota check. A negative count is taken as the largest.
func satAdd(a, b int64) int64 {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// charges tells whether a charge of a user has landed on this instance
// since a given moment, so that a quota check can trust the copy of the
// user read at authentication instead of reading it again. Users share
// buckets by a seeded hash of their token, as the limiters' shards do:
// another user's charge in the bucket only costs a read that was not
// needed. Each bucket counts charges started and finished; a charge counts
// as started before its usage is recorded and as finished after the
// ledger has it.
type charges struct {
	seed    maphash.Seed
	buckets [1024]struct{ started, finished atomic.Uint64 }
}

func newCharges() *charges { return &charges{seed: maphash.MakeSeed()} }

// chargeMark is where a bucket stood when the user was read (at): ok
// when no charge was under way.
type chargeMark struct {
	started uint64
	ok      bool
	at      time.Time
}

// trustRead is how long the copy read at authentication may stand for a
// new read: a body that takes longer to arrive (a slow or hostile client)
// gets the user read again, so that its quota check is as fresh as the
// store's cache.
const trustRead = time.Second

func (c *charges) bucket(token string) int {
	return int(maphash.String(c.seed, token) % uint64(len(c.buckets)))
}

// mark is taken before the user is read, at now.
func (c *charges) mark(token string, now time.Time) chargeMark {
	b := &c.buckets[c.bucket(token)]
	finished := b.finished.Load() // first: a charge finishing between the loads leaves them unequal
	started := b.started.Load()
	return chargeMark{started: started, ok: started == finished, at: now}
}

// none reports that no charge of the bucket was under way at m or has
// started since: every charge of the user is in the copy read after m.
func (c *charges) none(token string, m chargeMark) bool {
	return m.ok && c.buckets[c.bucket(token)].started.Load() == m.started
}

// start counts a charge as started; finish it, with the bucket start
// returns, once the charge is recorded.
func (c *charges) start(token string) int {
	i := c.bucket(token)
	c.buckets[i].started.Add(1)
	return i
}

func (c *charges) finish(bucket int) { c.buckets[bucket].finished.Add(1) }
