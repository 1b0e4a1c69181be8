package rtdb_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// Lookup answers from a stale copy only while the user's own write is
// under way, not while the user waits behind others in a flush: an admin's
// change (a disable) made on another instance is seen once the copy is
// older than USER_CACHE_TTL, however long the flush takes.
func TestQueuedUsersOfAFlushAreReadAfresh(t *testing.T) {
	srv := rtdbfake.Start(t)
	var mu sync.Mutex
	now := t0
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	o := fakeOptions(t, srv)
	o.Now = clock
	a, admin := open(t, o), open(t, o)
	const n = 3 * rtdb.FlushWorkers
	var toks []string
	for i := range n {
		tok := fmt.Sprintf("tok-%02d", i)
		toks = append(toks, tok)
		create(t, admin, tok, nil)
		mustLookup(t, a, tok)
		if err := a.RecordUsage(ctx(t), tok, users.Usage{Family: "gpt4o", Tokens: 1, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	svc := &users.Service{Store: admin}
	for _, tok := range toks {
		if _, err := svc.Disable(ctx(t), tok, "abuse"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(2 * o.CacheTTL) // every cached copy is stale
	mu.Unlock()

	// The flush's writes wait at the database until released.
	gate := make(chan struct{})
	var wmu sync.Mutex
	writing := map[string]bool{}
	started := make(chan struct{}, n)
	srv.OnWrite(func(_, path string, _ bool) {
		wmu.Lock()
		writing[path] = true
		wmu.Unlock()
		started <- struct{}{}
		<-gate
	})
	done := make(chan error, 1)
	go func() { done <- a.Flush(ctx(t)) }()
	for range rtdb.FlushWorkers {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the flush's first writes never reached the database")
		}
	}
	wmu.Lock()
	busy := map[string]bool{}
	for p := range writing {
		busy[p] = true
	}
	wmu.Unlock()
	stale := 0
	for _, tok := range toks {
		if busy["/users/"+tok] {
			continue // its write is under way: the stale copy stands for it
		}
		if u := mustLookup(t, a, tok); !u.Disabled() {
			stale++
		}
	}
	srv.OnWrite(nil)
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stale > 0 {
		t.Errorf("%d of %d users waiting their turn in a flush were served the stale copy, enabled though disabled", stale, n-len(busy))
	}
}
