package memory

import (
	"context"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// limits are the cluster-wide limits of a one-process store.
type limits struct {
	mu   sync.Mutex
	recs map[string]*users.LimitsRecord
}

// EnterLimits implements users.Limits.
func (s *Store) EnterLimits(_ context.Context, key string, e users.LimitsEntry) (users.LimitsDecision, error) {
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recs == nil {
		l.recs = map[string]*users.LimitsRecord{}
	}
	r := l.recs[key]
	if r == nil {
		r = &users.LimitsRecord{}
		l.recs[key] = r
	}
	d := r.Enter(e)
	if r.Empty() {
		delete(l.recs, key)
	}
	return d, nil
}

// RenewLimits implements users.Limits.
func (s *Store) RenewLimits(_ context.Context, key, id string, until time.Time) error {
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.recs[key]; r != nil {
		r.Renew(id, until)
	}
	return nil
}

// LeaveLimits implements users.Limits.
func (s *Store) LeaveLimits(_ context.Context, key, id string, refund bool) error {
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.recs[key]; r != nil {
		r.Leave(id, refund)
		if r.Empty() {
			delete(l.recs, key)
		}
	}
	return nil
}
