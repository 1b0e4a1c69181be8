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
	var d users.LimitsDecision
	s.editLimits(key, true, func(r *users.LimitsRecord) { d = r.Enter(e) })
	return d, nil
}

// RenewLimits implements users.Limits.
func (s *Store) RenewLimits(_ context.Context, key, id string, until time.Time) error {
	s.editLimits(key, false, func(r *users.LimitsRecord) { r.Renew(id, until) })
	return nil
}

// LeaveLimits implements users.Limits.
func (s *Store) LeaveLimits(_ context.Context, key, id string, refund bool) error {
	s.editLimits(key, false, func(r *users.LimitsRecord) { r.Leave(id, refund) })
	return nil
}

// editLimits applies edit to key's record (a new one only with create),
// dropping the record once it keeps nothing.
func (s *Store) editLimits(key string, create bool, edit func(r *users.LimitsRecord)) {
	l := &s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	if r == nil {
		if !create {
			return
		}
		if l.recs == nil {
			l.recs = map[string]*users.LimitsRecord{}
		}
		r = &users.LimitsRecord{}
		l.recs[key] = r
	}
	edit(r)
	if r.Empty() {
		delete(l.recs, key)
	}
}
