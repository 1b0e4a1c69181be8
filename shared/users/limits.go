package users

import (
	"context"
	"strings"
	"time"
)

// Limits keeps the rate window and the requests in flight of a key (a
// user token, or a client IP) for every instance at once
// (LIMITS_SCOPE=cluster). Shared stores keep them in the database.
type Limits interface {
	// EnterLimits admits a request of kind ("text", "image") for key at
	// now: at most rate requests of that kind in the window ending now (0:
	// no limit) and at most inflight requests in flight (0: no limit). An
	// admitted request is recorded under id, in flight until leaseUntil
	// at the latest (so that a crashed instance frees its requests).
	EnterLimits(ctx context.Context, key string, e LimitsEntry) (LimitsDecision, error)
	// LeaveLimits ends request id's lease; refund also takes back its
	// count in the rate window (a request refused after it entered).
	LeaveLimits(ctx context.Context, key, id string, refund bool) error
	// RenewLimits moves request id's lease on to until: a request that
	// runs longer than a lease keeps its place. A lease that ran out
	// meanwhile (its instance given no CPU, or the database down, past
	// it) is taken again, whatever is in flight beside it: the request
	// is still running. Never called once the request has left.
	RenewLimits(ctx context.Context, key, id string, until time.Time) error
	// PruneLimits looks at up to sw.Max records and deletes those that are
	// Stale at sw.Now. Each delete judges its record again on the state it
	// deletes (a conditional delete), so a request entering meanwhile is
	// kept.
	PruneLimits(ctx context.Context, sw LimitsSweep) (LimitsSwept, error)
}

// LimitsWindow is the rate window of the cluster-wide limits: the rate
// limits are per minute.
const LimitsWindow = time.Minute

// LimitsSweep is one bounded step of pruning: up to Max records, in the
// store's order of records from just after After ("": the first), or,
// with Random, from a random record on (so that instances pruning at once
// look at different records).
type LimitsSweep struct {
	Now    time.Time
	Window time.Duration // the rate window the records' hits count in
	Max    int
	After  string
	Random bool
}

// LimitsSwept is what a step did. Next is where the following step starts
// (LimitsSweep.After); "" when this step reached the last record, and
// always with Random.
type LimitsSwept struct {
	Seen, Pruned int
	Next         string
}

// Swept starts the report of a step that looked at page (record names,
// in the store's order): Next is the last name of a full ordered page.
func (sw LimitsSweep) Swept(page []string) LimitsSwept {
	out := LimitsSwept{Seen: len(page)}
	if !sw.Random && len(page) == sw.Max && len(page) > 0 {
		out.Next = page[len(page)-1]
	}
	return out
}

// LimitsEntry is one request asking to enter.
type LimitsEntry struct {
	ID, Kind       string
	Now            time.Time
	Window         time.Duration
	Rate, Inflight int
	LeaseUntil     time.Time
	// Leave ends first, in the same write, what earlier requests of the
	// key left behind: leaves an instance could not write, entries it
	// wrote without hearing back.
	Leave []LimitsLeave
}

// LimitsLeave is a request's leave: its lease ended, and with Refund its
// count in the window taken back.
type LimitsLeave struct {
	ID     string
	Refund bool
}

// LimitsDecision is what EnterLimits decided.
type LimitsDecision struct {
	RateOK, InflightOK bool
	Remaining          int       // requests left in the window
	Reset              time.Time // when the oldest counted request leaves it
	// Created: the key had no record and now has one (a new client, or
	// one back after its record was pruned).
	Created bool
}

// LimitsRecord is a key's cluster-wide limits as stored: request id →
// time (ms) for the rate window, request id → lease expiry (ms) for the
// requests in flight. Ids start with their kind.
type LimitsRecord struct {
	Hits   map[string]int64 `json:"hits,omitempty"`
	Leases map[string]int64 `json:"leases,omitempty"`
}

// Enter applies one entry to the record: the leaves it carries are
// applied, old hits and expired leases are dropped, then the request is
// counted if it fits.
func (r *LimitsRecord) Enter(e LimitsEntry) LimitsDecision {
	for _, l := range e.Leave {
		r.Leave(l.ID, l.Refund)
	}
	now := e.Now.UnixMilli()
	prefix := e.Kind + "-"
	oldest, counted := int64(0), 0
	for id, at := range r.Hits {
		if at <= now-e.Window.Milliseconds() {
			delete(r.Hits, id)
			continue
		}
		if strings.HasPrefix(id, prefix) {
			counted++
			if oldest == 0 || at < oldest {
				oldest = at
			}
		}
	}
	for id, until := range r.Leases {
		if until <= now {
			delete(r.Leases, id)
		}
	}
	d := LimitsDecision{RateOK: true, InflightOK: true, Reset: e.Now.Add(e.Window)}
	if oldest != 0 {
		d.Reset = time.UnixMilli(oldest).Add(e.Window)
	}
	if r.holds(e.ID) {
		// This enter was made before and admitted (a refused one leaves
		// nothing): the database client sent the write again, its answer
		// lost. It is that request, counted and in flight once already.
		d.Remaining = max(e.Rate-counted, 0)
		return d
	}
	if e.Rate > 0 && counted >= e.Rate {
		d.RateOK = false
		return d
	}
	if e.Inflight > 0 && len(r.Leases) >= e.Inflight {
		d.InflightOK = false
		return d
	}
	if e.Rate > 0 {
		if r.Hits == nil {
			r.Hits = map[string]int64{}
		}
		r.Hits[e.ID] = now
		d.Remaining = e.Rate - counted - 1
	}
	if e.Inflight > 0 {
		if r.Leases == nil {
			r.Leases = map[string]int64{}
		}
		r.Leases[e.ID] = e.LeaseUntil.UnixMilli()
	}
	return d
}

// holds reports whether request id is counted or in flight.
func (r *LimitsRecord) holds(id string) bool {
	_, hit := r.Hits[id]
	_, lease := r.Leases[id]
	return hit || lease
}

// Leave ends a request's lease (and, with refund, its count).
func (r *LimitsRecord) Leave(id string, refund bool) {
	delete(r.Leases, id)
	if refund {
		delete(r.Hits, id)
	}
}

// Renew moves a lease on to until, taking it again if it ran out (see
// Limits.RenewLimits).
func (r *LimitsRecord) Renew(id string, until time.Time) {
	if r.Leases == nil {
		r.Leases = map[string]int64{}
	}
	r.Leases[id] = until.UnixMilli()
}

// Empty reports a record with nothing left to keep.
func (r *LimitsRecord) Empty() bool { return len(r.Hits) == 0 && len(r.Leases) == 0 }

// Stale reports a record that keeps nothing at now: every hit older than
// window and every lease run out, as Enter would find it. Deleting it
// changes no decision.
func (r *LimitsRecord) Stale(now time.Time, window time.Duration) bool {
	ms := now.UnixMilli()
	for _, at := range r.Hits {
		if at > ms-window.Milliseconds() {
			return false
		}
	}
	for _, until := range r.Leases {
		if until > ms {
			return false
		}
	}
	return true
}
