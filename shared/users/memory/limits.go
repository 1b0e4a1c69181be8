package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// limits are the cluster-wide limits of a one-process store.
type limits struct {
	mu   sync.Mutex
	recs map[string]*users.LimitsRecord
	// beforeDelete, when set, runs once in the next prune between its
	// judging a page and its deletes (export_test.go: the suite's race).
	beforeDelete func()
}

var _ users.Limits = (*Store)(nil)

// EnterLimits implements users.Limits.
func (s *Store) EnterLimits(_ context.Context, key string, e users.LimitsEntry) (users.LimitsDecision, error) {
	var d users.LimitsDecision
	created := s.editLimits(key, true, func(r *users.LimitsRecord) { d = r.Enter(e) })
	d.Created = created
	return d, nil
}

// RenewLimits implements users.Limits.
func (s *Store) RenewLimits(_ context.Context, key, id string, until time.Time) error {
	s.editLimits(key, true, func(r *users.LimitsRecord) { r.Renew(id, until) }) // a pruned record too
	return nil
}

// LeaveLimits implements users.Limits.
func (s *Store) LeaveLimits(_ context.Context, key, id string, refund bool) error {
	s.editLimits(key, false, func(r *users.LimitsRecord) { r.Leave(id, refund) })
	return nil
}

// editLimits applies edit to key's record (a new one only with create),
// dropping the record once it keeps nothing; it reports a record created.
func (s *Store) editLimits(key string, create bool, edit func(r *users.LimitsRecord)) (created bool) {
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	if r == nil {
		if !create {
			return false
		}
		if l.recs == nil {
			l.recs = map[string]*users.LimitsRecord{}
		}
		r = &users.LimitsRecord{}
		l.recs[key] = r
		created = true
	}
	edit(r)
	if r.Empty() {
		delete(l.recs, key)
		return false
	}
	return created
}

// PruneLimits implements users.Limits in the database store's two steps:
// a page is chosen and judged, then each record judged stale is judged
// again under the lock as it is deleted. The lock is not held between
// the steps, nor while the keys of an ordered page are sorted.
func (s *Store) PruneLimits(_ context.Context, sw users.LimitsSweep) (users.LimitsSwept, error) {
	if sw.Max <= 0 {
		return users.LimitsSwept{}, nil
	}
	page := s.limitsPage(sw)
	out := sw.Swept(page)
	l := &s.limits
	l.mu.Lock()
	stale := slices.DeleteFunc(page, func(k string) bool {
		r := l.recs[k]
		return r == nil || !r.Stale(sw.Now, sw.Window)
	})
	hook := l.beforeDelete
	l.beforeDelete = nil
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range stale {
		if r := l.recs[k]; r != nil && r.Stale(sw.Now, sw.Window) {
			delete(l.recs, k)
			out.Pruned++
		}
	}
	return out, nil
}

// limitsPage names up to sw.Max records: from a random one (the map's
// order), or the next ones after sw.After in key order.
func (s *Store) limitsPage(sw users.LimitsSweep) []string {
	l := &s.limits
	l.mu.Lock()
	var keys []string
	for k := range l.recs {
		if sw.Random {
			if len(keys) == sw.Max {
				break
			}
			keys = append(keys, k)
		} else if k > sw.After {
			keys = append(keys, k)
		}
	}
	l.mu.Unlock()
	if !sw.Random {
		slices.Sort(keys)
		keys = keys[:min(len(keys), sw.Max)]
	}
	return keys
}
