package ratelimit_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
)

// model is the sliding window in its plainest form: every allowed
// request's time, oldest first.
type model struct {
	window time.Duration
	times  map[string][]time.Time
}

func (m *model) allow(key string, limit int, now time.Time) ratelimit.Decision {
	if limit <= 0 {
		return ratelimit.Decision{Allowed: true}
	}
	ts := slices.DeleteFunc(m.times[key], func(t time.Time) bool { return !t.After(now.Add(-m.window)) })
	if len(ts) >= limit {
		m.times[key] = ts
		reset := ts[len(ts)-limit].Add(m.window)
		return ratelimit.Decision{Limit: limit, Reset: reset, RetryIn: reset.Sub(now)}
	}
	ts = append(ts, now)
	m.times[key] = ts
	return ratelimit.Decision{Allowed: true, Limit: limit, Remaining: limit - len(ts), Reset: ts[0].Add(m.window)}
}

func (m *model) undo(key string, at time.Time) {
	ts := m.times[key]
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(at) {
			m.times[key] = slices.Delete(ts, i, i+1)
			return
		}
	}
}

// The window's circular buffers give the model's decisions through any
// mix of bursts, pauses, limit changes and undos.
func TestWindowMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	w := ratelimit.NewWindow(time.Minute)
	m := &model{window: time.Minute, times: map[string][]time.Time{}}
	now := t0
	keys := []string{"a", "b", "c"}
	for i := range 20000 {
		switch rng.IntN(10) {
		case 0:
			now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		default:
			now = now.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
		}
		key := keys[rng.IntN(len(keys))]
		limit := []int{1, 3, 4, 20, 40}[rng.IntN(5)]
		got, want := w.Allow(key, limit, now), m.allow(key, limit, now)
		if got != want {
			t.Fatalf("step %d: Allow(%s, %d) = %+v, model %+v", i, key, limit, got, want)
		}
		if got.Allowed && rng.IntN(5) == 0 {
			w.Undo(key, now)
			m.undo(key, now)
		}
	}
}

// Take and Release count per key; the zero slot and unlimited slots hold
// nothing.
func TestTakeRelease(t *testing.T) {
	c := ratelimit.NewConcurrency()
	a1, ok1 := c.Take("a", 2)
	a2, ok2 := c.Take("a", 2)
	if _, ok := c.Take("a", 2); !ok1 || !ok2 || ok {
		t.Fatalf("takes under limit 2: %v %v, third %v", ok1, ok2, ok)
	}
	if _, ok := c.Take("b", 1); !ok {
		t.Fatal("another key refused")
	}
	a1.Release()
	if _, ok := c.Take("a", 2); !ok {
		t.Fatal("a released slot was not free again")
	}
	a2.Release()
	ratelimit.Slot{}.Release() // holds nothing
	for range 10 {
		s, ok := c.Take("a", 0)
		if !ok {
			t.Fatal("limit 0 refused")
		}
		s.Release() // must not free the slot still taken
	}
	if _, ok := c.Take("a", 1); ok {
		t.Fatal("an unlimited slot's release freed a limited one")
	}
}
