// Package memory is the in-process users.Store: one instance, nothing kept
// across restarts.
package memory

import (
	"context"
	"errors"
	"sync"

	"tollgate.dev/tollgate/shared/users"
)

// Store keeps users in a map guarded by one RWMutex; reads (the proxy's hot
// path) share the lock.
type Store struct {
	mu    sync.RWMutex
	users map[string]*users.User
}

// New returns an empty store.
func New() *Store { return &Store{users: make(map[string]*users.User)} }

var _ users.Store = (*Store)(nil)

func (s *Store) Get(ctx context.Context, token string) (*users.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.users[token]
	if !ok {
		return nil, users.ErrNotFound
	}
	return u.Clone(), nil
}

// Lookup is Get: a memory store has no cache to be stale.
func (s *Store) Lookup(ctx context.Context, token string) (*users.User, error) {
	return s.Get(ctx, token)
}

func (s *Store) List(ctx context.Context) ([]*users.User, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*users.User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.Clone())
	}
	return out, nil
}

func (s *Store) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := s.apply(token, create, fn)
	if err != nil {
		if errors.Is(err, users.ErrNoWrite) {
			return s.current(token), nil
		}
		return nil, err
	}
	s.users[token] = next
	return next.Clone(), nil
}

func (s *Store) ModifyMany(ctx context.Context, fns map[string]users.ModifyFunc) ([]*users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	staged := make(map[string]*users.User, len(fns))
	for token, fn := range fns {
		next, err := s.apply(token, true, fn)
		if errors.Is(err, users.ErrNoWrite) {
			continue
		}
		if err != nil {
			return nil, err
		}
		staged[token] = next
	}
	out := make([]*users.User, 0, len(staged))
	for token, u := range staged {
		s.users[token] = u
		out = append(out, u.Clone())
	}
	return out, nil
}

// apply runs fn on a copy; the caller holds the write lock.
func (s *Store) apply(token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	cur, exists := s.users[token]
	var next *users.User
	switch {
	case exists:
		next = cur.Clone()
	case create:
		next = &users.User{Token: token}
		next.Normalize()
	default:
		return nil, users.ErrNotFound
	}
	if err := fn(next, exists); err != nil {
		return nil, err
	}
	next.Token = token
	next.Normalize()
	return next, nil
}

func (s *Store) current(token string) *users.User {
	if u, ok := s.users[token]; ok {
		return u.Clone()
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[token]; !ok {
		return users.ErrNotFound
	}
	delete(s.users, token)
	return nil
}

// RecordUsage charges at once: in one process there is nothing to batch.
func (s *Store) RecordUsage(ctx context.Context, token string, u users.Usage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.users[token]
	if !ok {
		return users.ErrNotFound
	}
	cur.Charge(u.Family, u.Tokens, u.At)
	return nil
}

func (s *Store) Flush(ctx context.Context) error { return nil }
func (s *Store) Close(ctx context.Context) error { return nil }
