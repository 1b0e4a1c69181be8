package gatekeeper_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// With LIMITS_SCOPE=cluster a caller that moves to a new IPv6 /64 for
// every request leaves a limits record behind each time. Each request
// that creates a record prunes stale ones, so the records stay about
// those of the last minute (60 here, one request a second) instead of
// one per /64 ever seen; a record with a request in flight is kept
// throughout.
func TestClusterRecordsOfPassingAddressesArePruned(t *testing.T) {
	env := map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey, "LIMITS_SCOPE": "cluster",
		"TEXT_MODEL_RATE_LIMIT": "4", "USER_CONCURRENCY_LIMIT": "1"}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (*gatekeeper.Gatekeeper, users.Limits, *clock)
	}{
		{"memory", func(t *testing.T) (*gatekeeper.Gatekeeper, users.Limits, *clock) {
			f := newFixture(t, env)
			return f.gk, f.mem, f.clock
		}},
		{"rtdb", func(t *testing.T) (*gatekeeper.Gatekeeper, users.Limits, *clock) {
			gk, st, _, c := rtdbGatekeeper(t, env, nil)
			return gk, st, c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gk, limits, clk := tc.open(t)
			admit := func(ip string) (*gatekeeper.Admission, error) {
				t.Helper()
				p, err := gk.Authenticate(ctx(t), request(ip, proxyKey))
				if err != nil {
					t.Fatal(err)
				}
				a, err := gk.Admit(ctx(t), p, "gpt4o", 1)
				gk.WaitPrunes()
				return a, err
			}
			held, err := admit("2001:db8:ffff::1")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Release()
			const passing = 300 // five minutes: the held lease (10) does not run out
			for i := range passing {
				clk.Add(time.Second)
				a, err := admit(fmt.Sprintf("2001:db8:%x::1", i))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				a.Release()
			}
			// Counted as of t0, when none of them is stale yet.
			census, err := limits.PruneLimits(ctx(t), users.LimitsSweep{Now: t0, Window: time.Minute, Max: 10 * passing})
			if err != nil {
				t.Fatal(err)
			}
			if census.Seen > 100 {
				t.Errorf("%d limits records after %d passing /64s, one a second; want about the last minute's 60 (and the one in flight)", census.Seen, passing)
			}
			p, err := gk.Authenticate(ctx(t), request("2001:db8:ffff::2", proxyKey))
			if err != nil {
				t.Fatal(err)
			}
			if a, err := gk.Admit(ctx(t), p, "gpt4o", 1); err == nil {
				a.Release()
				t.Fatal("a second request of the /64 with one in flight admitted: its record was pruned")
			} else {
				wantCode(t, err, users.CodeConcurrency, "")
			}
		})
	}
}

// slowPrunes is the memory store with PruneLimits counted and held until
// release is closed.
type slowPrunes struct {
	*memory.Store
	mu      sync.Mutex
	calls   []users.LimitsSweep
	release chan struct{}
}

func (s *slowPrunes) PruneLimits(ctx context.Context, sw users.LimitsSweep) (users.LimitsSwept, error) {
	s.mu.Lock()
	s.calls = append(s.calls, sw)
	s.mu.Unlock()
	<-s.release
	return s.Store.PruneLimits(ctx, sw)
}

func (s *slowPrunes) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Only a request that creates its key's record starts a prune step (a
// key with a record, the common case, costs nothing more); a step looks
// at 8 records from a random one; no more than 4 run at once on an
// instance, and no request waits for them.
func TestClusterPruneStepsAreBounded(t *testing.T) {
	slow := &slowPrunes{release: make(chan struct{})}
	f := newFixtureOn(t, map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey, "LIMITS_SCOPE": "cluster",
		"TEXT_MODEL_RATE_LIMIT": "10", "USER_CONCURRENCY_LIMIT": "1"}, func(m *memory.Store) users.Store {
		slow.Store = m
		return slow
	})
	release := sync.OnceFunc(func() { close(slow.release) })
	t.Cleanup(release)
	request := func(ip string) {
		t.Helper()
		p, err := f.auth(t, ip, proxyKey)
		if err != nil {
			t.Fatal(err)
		}
		a, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
		if err != nil {
			t.Fatalf("%s: %v", ip, err)
		}
		a.Release()
	}
	request("198.51.100.1")
	request("198.51.100.1") // its record is there: no step
	waitFor(t, "the first step", func() bool { return slow.count() >= 1 })
	time.Sleep(50 * time.Millisecond) // a second step would have started by now
	if n := slow.count(); n != 1 {
		t.Fatalf("%d prune steps after two requests of one key, want 1", n)
	}
	for i := range 9 { // while the steps are held, requests go on
		request(fmt.Sprintf("198.51.100.%d", i+2))
	}
	time.Sleep(50 * time.Millisecond) // a fifth step would have started by now
	if n := slow.count(); n != 4 {
		t.Fatalf("%d prune steps under way after 10 new keys, want 4", n)
	}
	release()
	f.gk.WaitPrunes()
	for _, sw := range slow.calls {
		if sw.Max != 8 || !sw.Random || sw.Window != time.Minute {
			t.Errorf("a step of %+v, want 8 records from a random one, a window of a minute", sw)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}
