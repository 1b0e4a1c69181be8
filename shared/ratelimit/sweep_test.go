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

// A spray of live addresses costs each failure a share of a sweep, not a
// whole sweep: the threshold doubles with what a sweep keeps, and a
// sweep still drops what has decayed.
func TestLockoutSweepsAtDoublingSizes(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l := NewLockout(3, time.Minute)
	for i := range minSweep {
		l.Fail(fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), t0)
	}
	if l.sweepAt != 2*minSweep {
		t.Fatalf("after a sweep keeping %d live keys, the next is at %d; want %d", len(l.fails), l.sweepAt, 2*minSweep)
	}
	later := t0.Add(2 * time.Minute)
	for i := range minSweep {
		l.Fail(fmt.Sprintf("11.%d.%d.%d", i>>16, i>>8&255, i&255), later)
	}
	if len(l.fails) != minSweep || l.sweepAt != 2*minSweep {
		t.Fatalf("second sweep: %d keys kept, next at %d; want the %d fresh ones and %d", len(l.fails), l.sweepAt, minSweep, 2*minSweep)
	}
}

// A key keeps its last max failures only: hammering a lockout cannot
// grow one key's record.
func TestLockoutKeepsMaxFailuresPerKey(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l := NewLockout(3, time.Hour)
	for i := range 1000 {
		l.Fail("a", t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(l.fails["a"]); n != 3 {
		t.Fatalf("failures kept for one key = %d, want 3", n)
	}
	// The lock lasts until the third-last failure decays.
	if locked, wait := l.Locked("a", t0.Add(time.Second)); !locked || wait != time.Hour-time.Second+997*time.Millisecond {
		t.Fatalf("Locked = %v, %s", locked, wait)
	}
}

// Past maxKeys live addresses the lockout forgets half, those not locked
// out first: an address cannot free itself by spraying failures from
// others.
func TestLockoutForgetsUnlockedAddressesFirst(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l := NewLockout(3, time.Hour)
	for range 3 {
		l.Fail("198.51.100.7", t0)
	}
	for i := range maxKeys {
		l.Fail(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff), t0)
	}
	if n := len(l.fails); n > maxKeys {
		t.Fatalf("%d addresses remembered; want at most %d", n, maxKeys)
	}
	if locked, _ := l.Locked("198.51.100.7", t0); !locked {
		t.Fatal("a spray of other addresses freed the locked one")
	}
}
