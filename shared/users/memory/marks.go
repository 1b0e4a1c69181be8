package memory

import (
	"context"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// marks are the store's users.Marks: one process, like its users.
type marks struct {
	mu sync.Mutex
	m  map[string]int64 // key → expiry, epoch ms
}

var _ users.Marks = (*Store)(nil)

// Mark creates key until expires unless it exists.
func (s *Store) Mark(ctx context.Context, key string, expires time.Time) (bool, error) {
	if !users.ValidToken(key) {
		return false, users.InvalidMarkKey()
	}
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	if _, ok := s.marks.m[key]; ok {
		return false, nil
	}
	if s.marks.m == nil {
		s.marks.m = map[string]int64{}
	}
	s.marks.m[key] = expires.UnixMilli()
	return true, nil
}

// PruneMarks deletes up to limit marks that expired before now.
func (s *Store) PruneMarks(ctx context.Context, now time.Time, limit int) (int, error) {
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	n := 0
	for k, exp := range s.marks.m {
		if n >= limit {
			break
		}
		if exp < now.UnixMilli() {
			delete(s.marks.m, k)
			n++
		}
	}
	return n, nil
}
