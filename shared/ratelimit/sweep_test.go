package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func (w *Window) keyCount() int {
	n := 0
	for i := range w.shards {
		w.shards[i].mu.Lock()
		n += len(w.shards[i].keys)
		w.shards[i].mu.Unlock()
	}
	return n
}

// Idle keys are forgotten once a window has passed, so a stream of
// one-off clients costs no lasting memory.
func TestWindowSweepForgetsIdleKeys(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	w := NewWindow(time.Minute)
	for i := range 5000 {
		w.Allow(fmt.Sprintf("once-%d", i), 5, t0)
	}
	w.Allow("busy", 5, t0.Add(50*time.Second))
	if n := w.keyCount(); n != 5001 {
		t.Fatalf("keys = %d, want 5001", n)
	}
	// Within the window nothing is swept.
	for i := range 5000 {
		w.Allow(fmt.Sprintf("new-%d", i), 5, t0.Add(59*time.Second))
	}
	if n := w.keyCount(); n != 10001 {
		t.Fatalf("keys after 59s = %d, want 10001", n)
	}
	// Past the window, traffic on every shard sweeps it: only keys used
	// within the last window survive.
	later := t0.Add(61 * time.Second)
	for i := range 5000 {
		w.Allow(fmt.Sprintf("late-%d", i), 5, later)
	}
	if n := w.keyCount(); n != 5000+5000+1 {
		t.Fatalf("keys after sweep = %d, want the 5000 new, 5000 late and busy", n)
	}
	if d := w.Allow("busy", 1, later); d.Allowed {
		t.Fatal("sweep forgot a key that is still inside its window")
	}
	// Past another window only the latest remain.
	last := t0.Add(125 * time.Second)
	for i := range 5000 {
		w.Allow(fmt.Sprintf("late-%d", i), 5, last)
	}
	if n := w.keyCount(); n != 5000 {
		t.Fatalf("keys after second sweep = %d, want 5000", n)
	}
}

func TestLockoutPrunesEmptyKeys(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l := NewLockout(3, time.Minute)
	l.Fail("a", t0)
	l.Locked("a", t0.Add(2*time.Minute))
	if len(l.fails) != 0 {
		t.Fatalf("decayed key kept: %v", l.fails)
	}
}
