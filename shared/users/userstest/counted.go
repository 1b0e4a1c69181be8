package userstest

import (
	"context"
	"sync/atomic"

	"tollgate.dev/tollgate/shared/users"
)

// CountedStore counts the reads of a user that reach its store: each Get,
// and each Modify, which reads the user before it writes (on RTDB, a GET
// the operator pays for).
type CountedStore struct {
	users.Store
	reads atomic.Int64
}

// NewCountedStore counts the reads made of s.
func NewCountedStore(s users.Store) *CountedStore { return &CountedStore{Store: s} }

func (s *CountedStore) Get(ctx context.Context, token string) (*users.User, error) {
	s.reads.Add(1)
	return s.Store.Get(ctx, token)
}

func (s *CountedStore) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	s.reads.Add(1)
	return s.Store.Modify(ctx, token, create, fn)
}

// Reads is how many reads have been made so far.
func (s *CountedStore) Reads() int64 { return s.reads.Load() }

// Reset starts the count again from 0.
func (s *CountedStore) Reset() { s.reads.Store(0) }

var _ users.Store = (*CountedStore)(nil)
