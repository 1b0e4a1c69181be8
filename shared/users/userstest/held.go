package userstest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// HeldStore holds every Get until Release, as a slow database does, and
// counts the Gets under way: requests sent at once all reach the store
// before any is answered.
type HeldStore struct {
	users.Store
	arrived atomic.Int32
	release chan struct{}
	once    sync.Once
}

// NewHeldStore holds the Gets of s until SendAtOnce releases them.
func NewHeldStore(s users.Store) *HeldStore {
	return &HeldStore{Store: s, release: make(chan struct{})}
}

func (s *HeldStore) Get(ctx context.Context, token string) (*users.User, error) {
	s.arrived.Add(1)
	<-s.release
	return s.Store.Get(ctx, token)
}

// Release lets every Get held and to come through.
func (s *HeldStore) Release() { s.once.Do(func() { close(s.release) }) }

// SendAtOnce calls send(i) for i in [0, n) at once, waits until each call
// is held at the store or answered, releases the store, and counts the
// statuses the calls return. The store is released however it returns,
// so that the test's servers can close (they wait for their requests).
func (s *HeldStore) SendAtOnce(t testing.TB, n int, send func(i int) int) map[int]int {
	t.Helper()
	defer s.Release()
	var done atomic.Int32
	statuses := make(chan int, n)
	for i := range n {
		go func() {
			status := send(i)
			done.Add(1)
			statuses <- status
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for int(s.arrived.Load()+done.Load()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls held at the store, %d answered, of %d", s.arrived.Load(), done.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Release()
	counts := map[int]int{}
	for range n {
		counts[<-statuses]++
	}
	return counts
}
