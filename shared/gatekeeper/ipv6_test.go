package gatekeeper_test

import (
	"context"
	"fmt"
	"testing"

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
