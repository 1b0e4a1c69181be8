// Package memory is the in-process users.Store: one instance, nothing kept
// across restarts.
package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"tollgate.dev/tollgate/shared/users"
)

// shards spread users over locks, so that requests of different users do
// not wait for one another (every proxied request takes its user's lock
// twice: to look it up and to charge it).
const shards = 64

// Store keeps users in maps, each guarded by its own RWMutex; reads (the
// proxy's hot path) share the lock. Charges change the stored user in
// place: copying it on write instead would let readers copy it outside the
// lock, but costs every charge a copy, and by default a user has only one
// request in flight to contend with.
type Store struct {
	seed   maphash.Seed
	shards [shards]shard
	marks  marks
	limits limits
	events events
}

type shard struct {
	mu    sync.RWMutex
	users map[string]*users.User
}

// New returns an empty store.
func New() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].users = make(map[string]*users.User)
	}
	return s
}

var (
	_ users.Store      = (*Store)(nil)
	_ users.IPRecorder = (*Store)(nil)
)

func (s *Store) shard(token string) *shard {
	return &s.shards[maphash.String(s.seed, token)%shards]
}

func (s *Store) Get(ctx context.Context, token string) (*users.User, error) {
	var c *users.User
	err := s.at(token, false, func(_ *shard, u *users.User) { c = u.Clone() })
	return c, err
}

// Lookup reads the stored user under its shard's read lock: a memory
// store has no cache to be stale, and a read that keeps nothing needs no
// copy. Charges, which change the stored user, wait for the lock.
func (s *Store) Lookup(ctx context.Context, token string, read func(*users.User)) error {
	return s.at(token, false, func(_ *shard, u *users.User) { read(u) })
}

// List returns a consistent snapshot: no write lands while it is taken.
func (s *Store) List(ctx context.Context) ([]*users.User, error) {
	for i := range s.shards {
		s.shards[i].mu.RLock()
	}
	defer func() {
		for i := range s.shards {
			s.shards[i].mu.RUnlock()
		}
	}()
	n := 0
	for i := range s.shards {
		n += len(s.shards[i].users)
	}
	out := make([]*users.User, 0, n)
	for i := range s.shards {
		for _, u := range s.shards[i].users {
			out = append(out, u.Clone())
		}
	}
	return out, nil
}

func (s *Store) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	sh := s.shard(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	next, err := sh.apply(token, create, fn)
	if err != nil {
		if errors.Is(err, users.ErrNoWrite) {
			return sh.current(token), nil
		}
		return nil, err
	}
	sh.users[token] = next
	return next.Clone(), nil
}

// apply runs fn on a copy; the caller holds the shard's write lock.
func (sh *shard) apply(token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	cur, exists := sh.users[token]
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

func (sh *shard) current(token string) *users.User {
	if u, ok := sh.users[token]; ok {
		return u.Clone()
	}
	return nil
}

func (s *Store) Delete(ctx context.Context, token string) error {
	_, err := s.DeleteIf(ctx, token, func(*users.User) bool { return true })
	return err
}

// DeleteIf implements users.CondDeleter.
func (s *Store) DeleteIf(ctx context.Context, token string, cond func(*users.User) bool) (bool, error) {
	deleted := false
	err := s.at(token, true, func(sh *shard, u *users.User) {
		if deleted = cond(u); deleted {
			delete(sh.users, token)
		}
	})
	return deleted, err
}

// RecordUsage charges at once: in one process there is nothing to batch.
func (s *Store) RecordUsage(ctx context.Context, token string, u users.Usage) error {
	return s.change(token, func(cur *users.User) { cur.Charge(u.Family, u.Tokens, u.At) })
}

// RecordIP implements users.IPRecorder: at once, as RecordUsage charges.
func (s *Store) RecordIP(ctx context.Context, token, ip string, defaultMax int64) error {
	return s.change(token, func(cur *users.User) { users.RecordIP(cur, ip, defaultMax) })
}

// change applies fn to token's user under its shard's lock.
func (s *Store) change(token string, fn func(*users.User)) error {
	return s.at(token, true, func(_ *shard, u *users.User) { fn(u) })
}

// at runs fn on token's user (the stored value, not a copy) under its
// shard's lock, exclusive when write; ErrNotFound when there is none.
func (s *Store) at(token string, write bool, fn func(*shard, *users.User)) error {
	sh := s.shard(token)
	if write {
		sh.mu.Lock()
		defer sh.mu.Unlock()
	} else {
		sh.mu.RLock()
		defer sh.mu.RUnlock()
	}
	u, ok := sh.users[token]
	if !ok {
		return users.ErrNotFound
	}
	fn(sh, u)
	return nil
}

func (s *Store) Flush(ctx context.Context) error { return nil }
func (s *Store) Close(ctx context.Context) error { return nil }
