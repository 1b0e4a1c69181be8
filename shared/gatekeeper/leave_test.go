package gatekeeper_test

import (
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// slotFree reports whether the store would let one more request of key
// in under a concurrency limit of 1, asking the store itself.
func slotFree(t *testing.T, l users.Limits, key string, now time.Time) bool {
	t.Helper()
	id := fmt.Sprintf("text-probe-%d", now.UnixMilli())
	d, err := l.EnterLimits(ctx(t), key, users.LimitsEntry{ID: id, Kind: "text", Now: now, Window: time.Minute,
		Inflight: 1, LeaseUntil: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if d.InflightOK {
		if err := l.LeaveLimits(ctx(t), key, id, true); err != nil {
			t.Fatal(err)
		}
	}
	return d.InflightOK
}

// With LIMITS_SCOPE=cluster a leave the database fails (an outage: the
// client's own retries failed too) is kept by the instance and given
// back by the key's next request there, before it enters: the user is
// not refused as "too many requests in flight" for the rest of the
// lease. (Before, one failed leave kept a user limited to one request
// in flight out on every instance for 10 minutes.)
func TestClusterFailedLeaveGivenBackByTheKeysNextRequest(t *testing.T) {
	gk, st, srv, clk := rtdbGatekeeper(t, userEnv("LIMITS_SCOPE", "cluster", "USER_CONCURRENCY_LIMIT", "1", "TEXT_MODEL_RATE_LIMIT", "0"), nil)
	p, err := gk.Authenticate(ctx(t), request(clientIP, tokA))
	if err != nil {
		t.Fatal(err)
	}
	a, err := gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetDown(true)
	a.Release() // every try fails
	srv.SetDown(false)
	if slotFree(t, st, tokA, clk.Now()) {
		t.Fatal("the place came free though every leave failed: the test shows nothing")
	}
	clk.Add(time.Second)
	a2, err := gk.Admit(ctx(t), p, "gpt4o", 1)
	if err != nil {
		t.Fatalf("the user's next request after the outage: %v", err)
	}
	a2.Release()
	if !slotFree(t, st, tokA, clk.Now()) {
		t.Error("the user's place is still taken after both requests ended")
	}
}
