package userstest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// MarksFactory returns new, empty marks for one subtest.
type MarksFactory func(t *testing.T) users.Marks

// RunMarks runs the users.Marks suite against marks made by newMarks.
func RunMarks(t *testing.T, newMarks MarksFactory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, m users.Marks)
	}{
		{"MarkOnce", testMarkOnce},
		{"ConcurrentMarkOneWinner", testConcurrentMark},
		{"PruneExpiredOnly", testPrune},
		{"PruneLimit", testPruneLimit},
		{"InvalidKey", testMarkInvalidKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newMarks(t)) })
	}
}

func mark(t *testing.T, m users.Marks, key string, exp time.Time) bool {
	t.Helper()
	ok, err := m.Mark(ctx(t), key, exp)
	if err != nil {
		t.Fatalf("Mark(%s): %v", key, err)
	}
	return ok
}

func testMarkOnce(t *testing.T, m users.Marks) {
	exp := t0.Add(time.Hour)
	if !mark(t, m, "spent-a", exp) {
		t.Fatal("first Mark = false")
	}
	if mark(t, m, "spent-a", exp) {
		t.Error("second Mark of one key = true")
	}
	if !mark(t, m, "spent-b", exp) {
		t.Error("Mark of another key = false")
	}
}

func testConcurrentMark(t *testing.T, m users.Marks) {
	const n = 8
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := m.Mark(ctx(t), "race", t0.Add(time.Hour))
			if err != nil {
				t.Errorf("Mark: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Errorf("%d of %d concurrent Marks won, want exactly 1", got, n)
	}
}

func testPrune(t *testing.T, m users.Marks) {
	for i := range 3 {
		mark(t, m, fmt.Sprintf("old-%d", i), t0.Add(-time.Duration(i+1)*time.Minute))
	}
	mark(t, m, "at-now", t0)
	mark(t, m, "later", t0.Add(time.Minute))
	n, err := m.PruneMarks(ctx(t), t0, 100)
	if err != nil || n != 3 {
		t.Fatalf("PruneMarks = %d, %v; want the 3 expired marks", n, err)
	}
	// Pruned marks can be made again; live ones still hold.
	if !mark(t, m, "old-0", t0.Add(-time.Minute)) {
		t.Error("a pruned mark still exists")
	}
	if mark(t, m, "at-now", t0) || mark(t, m, "later", t0.Add(time.Minute)) {
		t.Error("a mark not yet expired was pruned")
	}
	if n, err := m.PruneMarks(ctx(t), t0, 100); err != nil || n != 1 {
		t.Errorf("second PruneMarks = %d, %v; want the re-made old-0 only", n, err)
	}
}

func testPruneLimit(t *testing.T, m users.Marks) {
	for i := range 5 {
		mark(t, m, fmt.Sprintf("old-%d", i), t0.Add(-time.Hour))
	}
	if n, err := m.PruneMarks(ctx(t), t0, 2); err != nil || n != 2 {
		t.Fatalf("PruneMarks(limit 2) = %d, %v", n, err)
	}
	if n, err := m.PruneMarks(ctx(t), t0, 100); err != nil || n != 3 {
		t.Fatalf("PruneMarks after = %d, %v; want the other 3", n, err)
	}
}

func testMarkInvalidKey(t *testing.T, m users.Marks) {
	for _, key := range []string{"", "a/b", "a.b", "$x", string(make([]byte, 129))} {
		ok, err := m.Mark(ctx(t), key, t0)
		var e *users.Error
		if ok || err == nil || !errors.As(err, &e) || e.Code != users.CodeInvalid {
			t.Errorf("Mark(%q) = %v, %v; want an invalid-key error", key, ok, err)
		}
	}
}
