package gatekeeper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// With LIMITS_SCOPE=cluster a request's rate count and its place in flight
// are kept in the store, for every instance: one conditional write to
// enter, one to leave. A place in flight is a lease: an instance that
// crashes mid-request frees it when the lease runs out, and a request that
// outlasts half a lease renews it (the instance has CPU while it serves).
//
// A record outlives its key's last request by its window or its lease,
// and then keeps nothing. A request that creates a record pays for
// pruning: a step that looks at pruneStep records from a random one and
// deletes the stale ones, each by a conditional delete. As each new record
// pays for pruneStep looked at, stale records stay near 1/pruneStep of
// all while the steps keep up (the rest are records in use). The step is
// started by the request and runs beside it, never on a timer (an idle
// instance may get no CPU), and nothing waits for it.
const (
	clusterWindow = users.LimitsWindow
	leaseTTL      = 10 * time.Minute
	leaveTimeout  = 5 * time.Second // an enter's or a leave's writes
	pruneStep     = 8
	pruneParallel = 4 // steps under way on one instance at most
	pruneTimeout  = 5 * time.Second
)

// maxKeptLeaves bounds the leaves an instance keeps to give back.
const maxKeptLeaves = 10000

// keptLeaves are the leaves the database failed (an outage: the client's
// own retries failed too), and the refunds of enters whose answers were
// lost, by key, until their leases run out. The key's next request on
// this instance gives them back in its enter's own write: else a user
// limited to one request in flight would be refused everywhere for the
// rest of the lease, though its request is over. A leave given twice,
// or for an entry never made, does nothing.
type keptLeaves struct {
	n  atomic.Int64 // kept: with none, enter takes no lock
	mu sync.Mutex
	by map[string][]keptLeave
}

type keptLeave struct {
	users.LimitsLeave
	until time.Time // past its lease, there is nothing left to give back
}

// keep keeps ls for key, at now. When full, it first drops the leaves
// whose leases have run out (keys that never came back); still full, it
// keeps no more: those leases run out by themselves.
func (k *keptLeaves) keep(key string, now time.Time, ls ...keptLeave) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, l := range ls {
		if k.n.Load() >= maxKeptLeaves {
			k.dropRunOutLocked(now)
		}
		if k.n.Load() >= maxKeptLeaves {
			return
		}
		if k.by == nil {
			k.by = map[string][]keptLeave{}
		}
		k.by[key] = append(k.by[key], l)
		k.n.Add(1)
	}
}

func (k *keptLeaves) dropRunOutLocked(now time.Time) {
	for key, list := range k.by {
		kept := slices.DeleteFunc(list, func(l keptLeave) bool { return !now.Before(l.until) })
		k.n.Add(int64(len(kept) - len(list)))
		if len(kept) == 0 {
			delete(k.by, key)
		} else {
			k.by[key] = kept
		}
	}
}

// take removes key's leaves and returns those whose leases still run.
func (k *keptLeaves) take(key string, now time.Time) []keptLeave {
	if k.n.Load() == 0 {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	list := k.by[key]
	delete(k.by, key)
	k.n.Add(-int64(len(list)))
	return slices.DeleteFunc(list, func(l keptLeave) bool { return !now.Before(l.until) })
}

// pruner runs one instance's prune steps.
type pruner struct {
	slots chan struct{}
	wg    sync.WaitGroup
}

func (g *Gatekeeper) enterCluster(ctx context.Context, p *Principal, kind string, limit int) (*Admission, error) {
	now := g.now()
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := kind + "-" + hex.EncodeToString(b[:])
	// Neither a client that leaves nor the drain's cut stops the enter
	// halfway: its outcome is known, and a place taken is given back
	// when the request ends, for every instance at once.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	kept := g.kept.take(p.Key, now)
	entry := users.LimitsEntry{
		ID: id, Kind: kind, Now: now, Window: clusterWindow,
		Rate: limit, Inflight: inflightLimit(g.cfg.ConcurrencyLimit, p), LeaseUntil: now.Add(leaseTTL),
	}
	for _, l := range kept {
		entry.Leave = append(entry.Leave, l.LimitsLeave)
	}
	d, err := g.cluster.EnterLimits(ctx, p.Key, entry)
	if err != nil {
		// The write may have been made and its answer lost (the call's
		// deadline passed): the request, which never ran, gives its
		// entry back as a refused one's, with the key's next request.
		g.kept.keep(p.Key, now, append(kept, keptLeave{users.LimitsLeave{ID: id, Refund: true}, now.Add(leaseTTL)})...)
		return nil, unavailable(err)
	}
	if d.Created {
		g.pruneSome()
	}
	rate := ratelimit.Decision{Allowed: d.RateOK, Limit: limit, Remaining: max(d.Remaining, 0), Reset: d.Reset}
	switch {
	case !d.RateOK:
		rate.RetryIn = d.Reset.Sub(now)
		return &Admission{Rate: rate}, &users.Error{
			Code:              users.CodeRateLimited,
			Message:           "Rate limit exceeded: too many requests per minute; try again later.",
			RetryAfterSeconds: max(int(rate.RetryIn.Round(time.Second)/time.Second), 1),
		}
	case !d.InflightOK:
		return &Admission{Rate: rate}, users.Errorf(users.CodeConcurrency, "Too many requests in flight for this token; wait for one to finish.")
	}
	a := &Admission{Rate: rate, g: g, p: p, lease: id}
	a.renewMu.Lock()
	a.renewal = time.AfterFunc(leaseTTL/2, func() { a.renewLease() })
	a.renewMu.Unlock()
	return a, nil
}

// renewRetry is how soon a renewal the database failed is tried again:
// half a lease later would be when the lease runs out.
const renewRetry = leaseTTL / 20

// renewLease moves the request's lease on by leaseTTL, and again half a
// lease later (renewRetry, when it failed), until the request is
// released. It returns when it renews next (0: no more). A renewal that
// comes after the lease ran out takes it again (users.Limits): so it
// holds renewMu while it writes, and Release, which takes renewMu before
// it leaves, never has its leave undone by a renewal written after it.
func (a *Admission) renewLease() time.Duration {
	a.renewMu.Lock()
	defer a.renewMu.Unlock()
	if a.released.Load() {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	next := leaseTTL / 2
	if err := a.g.cluster.RenewLimits(ctx, a.p.Key, a.lease, a.g.now().Add(leaseTTL)); err != nil {
		next = renewRetry // the lease runs on meanwhile
	}
	a.renewal.Reset(next)
	return next
}

// leave ends a request's lease in the cluster-wide limits. It runs when
// the request ends, with a deadline of its own: the client may be gone.
// Should the database fail it, it is kept for the key's next request on
// this instance (keptLeaves); the lease runs out by itself at the latest.
func (g *Gatekeeper) leave(key, id string, refund bool) {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := g.cluster.LeaveLimits(ctx, key, id, refund); users.ErrorCode(err) == users.CodeUnavailable {
		now := g.now()
		g.kept.keep(key, now, keptLeave{users.LimitsLeave{ID: id, Refund: refund}, now.Add(leaseTTL)})
	}
}

// pruneSome starts a prune step unless pruneParallel are under way: a
// flood of new keys on one instance is pruned as fast as those steps go,
// and the maintenance action prune-limits sweeps what they leave.
func (g *Gatekeeper) pruneSome() {
	select {
	case g.pruner.slots <- struct{}{}:
	default:
		return
	}
	g.pruner.wg.Go(func() {
		defer func() { <-g.pruner.slots }()
		ctx, cancel := context.WithTimeout(context.Background(), pruneTimeout)
		defer cancel()
		// Failing, the records wait for the next step or the maintenance sweep.
		_, _ = g.cluster.PruneLimits(ctx, users.LimitsSweep{Now: g.now(), Window: clusterWindow, Max: pruneStep, Random: true})
	})
}
