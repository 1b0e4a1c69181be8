package gatekeeper_test

import (
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/users"
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
