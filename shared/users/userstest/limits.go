package userstest

import (
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// RunLimits runs the users.Limits suite against limits made by newLimits.
func RunLimits(t *testing.T, newLimits func(t *testing.T) users.Limits) {
	t.Run("RenewKeepsTheLease", func(t *testing.T) { testRenewLimits(t, newLimits(t)) })
}

// testRenewLimits: a renewed lease holds its place past its first end; a
// lease that was left is not brought back by a renewal.
func testRenewLimits(t *testing.T, l users.Limits) {
	enter := func(id string, now time.Time) bool {
		t.Helper()
		d, err := l.EnterLimits(ctx(t), "k", users.LimitsEntry{ID: "text-" + id, Kind: "text", Now: now, Window: time.Minute,
			Inflight: 1, LeaseUntil: now.Add(10 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		return d.InflightOK
	}
	if !enter("a", t0) {
		t.Fatal("the first request refused")
	}
	if err := l.RenewLimits(ctx(t), "k", "text-a", t0.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if enter("b", t0.Add(15*time.Minute)) {
		t.Fatal("a second request admitted within the renewed lease")
	}
	if err := l.LeaveLimits(ctx(t), "k", "text-a", false); err != nil {
		t.Fatal(err)
	}
	if err := l.RenewLimits(ctx(t), "k", "text-a", t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !enter("c", t0.Add(16*time.Minute)) {
		t.Fatal("a renewal after the request left brought its lease back")
	}
}
