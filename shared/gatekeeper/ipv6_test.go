package gatekeeper_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// One IPv6 client holds a whole /64 (SLAAC privacy addresses): its
// wrong keys count together, whichever address of it they come from.
func TestKeyLockoutCountsAnIPv6Slash64(t *testing.T) {
	f := newFixture(t, map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey, "ADMIN_KEY": adminKey})
	for i := range ratelimit.KeyLockoutMax {
		_, err := f.auth(t, fmt.Sprintf("2001:db8:1:2::%x", i+1), "wrong-key")
		if users.ErrorCode(err) != users.CodeUnauthorized {
			t.Fatalf("wrong key %d: %v, want unauthorized", i, err)
		}
	}
	if _, err := f.auth(t, "2001:db8:1:2:ffff::1", proxyKey); users.ErrorCode(err) != users.CodeRateLimited {
		t.Fatalf("another address of the /64, after %d wrong keys: %v, want locked out", ratelimit.KeyLockoutMax, err)
	}
	if _, err := f.auth(t, "2001:db8:1:3::1", proxyKey); err != nil {
		t.Fatalf("the next /64: %v", err)
	}
}

// TEXT_MODEL_RATE_LIMIT per address without a token counts an IPv6
// client's /64 as one address.
func TestRateLimitCountsAnIPv6Slash64(t *testing.T) {
	f := newFixture(t, map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey, "TEXT_MODEL_RATE_LIMIT": "1", "USER_CONCURRENCY_LIMIT": "0"})
	admitted := 0
	for i := range 10 {
		p, err := f.auth(t, fmt.Sprintf("2001:db8:1:2::%x", i+1), proxyKey)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := f.gk.Admit(context.Background(), p, "gpt4o", 1); err == nil {
			admitted++
			a.Release()
		}
	}
	if admitted > 1 {
		t.Fatalf("one /64 got %d requests through a limit of 1 per minute", admitted)
	}
}

// The IP limit groups a user's addresses as lockouts and per-address
// limits group clients (netutil.ClientKey): under a limit of 1, a second
// address gets in exactly when it is the same client.
func TestIPLimitGroupsAddressesAsClientKey(t *testing.T) {
	pairs := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"2001:db8:1:2::1", "2001:db8:1:2::1%eth0"},
		{"fe80::1", "fe80::2"},
		{"203.0.113.1", "203.0.113.2"},
		{"203.0.113.1", "::ffff:203.0.113.1"},
		{"203.0.113.1", "2001:db8:1:2::1"},
		{"::ffff:203.0.113.1", "::ffff:203.0.113.2"},
	}
	for _, p := range pairs {
		u := users.New(tokA, users.Normal, t0, nil)
		if v := users.AdmitIP(u, p[0], 1, false, t0); v != users.IPAdded {
			t.Fatalf("%s first: %v", p[0], v)
		}
		same := netutil.ClientKey(p[0]) == netutil.ClientKey(p[1])
		if v := users.AdmitIP(u, p[1], 1, false, t0); (v == users.IPAdded) != same {
			t.Errorf("%s after %s: %v; same client key: %v", p[1], p[0], v, same)
		}
	}
}

// With LIMITS_SCOPE=cluster a request that runs longer than a lease (a
// slowly read stream) renews it, and keeps its place in flight: a second
// request of a user limited to one is refused until the first leaves.
func TestClusterLeaseRenewedWhileTheRequestRuns(t *testing.T) {
	f := newFixture(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "0"))
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(5 * time.Minute)
	a1.RenewLease() // half a lease in
	f.clock.Add(6 * time.Minute)
	if a2, err := f.gk.Admit(ctx(t), p, "gpt4o", 1); err == nil {
		a2.Release()
		t.Fatal("a second request admitted 11 minutes into the first, still in flight (concurrency limit 1)")
	} else {
		wantCode(t, err, users.CodeConcurrency, "")
	}
	a1.Release()
	a1.RenewLease() // a renewal after the end brings nothing back
	a2, err := f.gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatalf("after the first left: %v", err)
	}
	a2.Release()
}
