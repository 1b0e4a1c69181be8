package gatekeeper

import (
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// The leaves an instance keeps to give back are bounded: past the bound
// a failed leave is left to its lease, as before; taking a key's leaves
// makes room again, and so do leases run out, of keys that never came
// back.
func TestKeptLeavesAreBounded(t *testing.T) {
	var k keptLeaves
	t0 := time.Now()
	until := t0.Add(leaseTTL)
	for i := range maxKeptLeaves + 10 {
		k.keep(fmt.Sprintf("key-%d", i%100), t0, keptLeave{users.LimitsLeave{ID: fmt.Sprint(i)}, until})
	}
	if n := k.n.Load(); n != maxKeptLeaves {
		t.Fatalf("%d leaves kept, want at most %d", n, maxKeptLeaves)
	}
	now := until.Add(-time.Minute)
	if got := len(k.take("key-7", now)); got != maxKeptLeaves/100 {
		t.Errorf("took %d leaves of one key, want %d", got, maxKeptLeaves/100)
	}
	if k.take("key-7", now) != nil || k.n.Load() != maxKeptLeaves-maxKeptLeaves/100 {
		t.Errorf("after taking them: %d kept", k.n.Load())
	}
	for i := range maxKeptLeaves / 100 { // full again
		k.keep("key-full", now, keptLeave{users.LimitsLeave{ID: fmt.Sprint(i)}, now.Add(leaseTTL)})
	}
	later := until.Add(time.Second) // every lease kept before now has run out
	k.keep("key-new", later, keptLeave{users.LimitsLeave{ID: "new"}, later.Add(leaseTTL)})
	if got := k.take("key-new", later); len(got) != 1 {
		t.Fatalf("a full store of leaves whose leases ran out kept no new one: %d", len(got))
	}
	if n := k.n.Load(); n != maxKeptLeaves/100 {
		t.Errorf("%d leaves kept, want the %d whose leases still run", n, maxKeptLeaves/100)
	}
}
