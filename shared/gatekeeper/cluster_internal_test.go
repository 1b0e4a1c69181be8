package gatekeeper

import (
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// The leaves an instance keeps to give back are bounded: past the bound
// a failed leave is left to its lease, as before; taking a key's leaves
// makes room again.
func TestKeptLeavesAreBounded(t *testing.T) {
	var k keptLeaves
	until := time.Now().Add(leaseTTL)
	for i := range maxKeptLeaves + 10 {
		k.keep(fmt.Sprintf("key-%d", i%100), keptLeave{users.LimitsLeave{ID: fmt.Sprint(i)}, until})
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
}
