package gatekeeper_test

import (
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

// Move re-checks a request in the family of the model that answered: its
// reservation leaves the family it was admitted in and counts in the new
// one, whose allow-list and quota refuse what they would have refused up
// front; a refusal frees the concurrency slot.
func TestMove(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1", "ALLOWED_MODEL_FAMILIES", "azure-turbo,azure-gpt4o,azure-gpt4"))
	f.addUser(t, tokA, func(u *users.User) {
		u.TokenLimits = map[string]int64{"azure-turbo": 1000, "azure-gpt4o": 1000, "azure-gpt4": 1000}
		u.TokenCounts = map[string]int64{"azure-gpt4o": 900, "azure-gpt4": 1000}
	})
	p := f.mustAuth(t, tokA)

	a, err := f.gk.Admit(ctx(t), p, "azure-turbo", 800)
	if err != nil {
		t.Fatal(err)
	}
	// 900 used + 800 asked does not fit the gpt4o quota of 1000.
	if err := f.gk.Move(ctx(t), a, "azure-gpt4o", 800); users.ErrorCode(err) != users.CodeQuota {
		t.Fatalf("Move = %v, want a quota refusal", err)
	}
	// The refusal released the admission: its slot and its reservation.
	b, err := f.gk.Admit(ctx(t), p, "azure-turbo", 1000)
	if err != nil {
		t.Fatalf("after a refused move: %v (slot or turbo reservation kept)", err)
	}
	if err := f.gk.Move(ctx(t), b, "azure-gpt4o", 100); err != nil {
		t.Fatalf("Move within quota: %v", err)
	}
	b.Release()

	// The moved reservation holds gpt4o's last 100 and no longer turbo's.
	g := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "0"))
	g.addUser(t, tokA, func(u *users.User) {
		u.TokenLimits = map[string]int64{"azure-turbo": 1000, "azure-gpt4o": 1000}
		u.TokenCounts = map[string]int64{"azure-gpt4o": 900}
	})
	gp := g.mustAuth(t, tokA)
	c, err := g.gk.Admit(ctx(t), gp, "azure-turbo", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.gk.Move(ctx(t), c, "azure-gpt4o", 100); err != nil {
		t.Fatal(err)
	}
	if x, err := g.gk.Admit(ctx(t), gp, "azure-gpt4o", 1); users.ErrorCode(err) != users.CodeQuota {
		x.Release()
		t.Errorf("gpt4o beside the moved reservation: %v, want a quota refusal", err)
	}
	d, err := g.gk.Admit(ctx(t), gp, "azure-turbo", 1000)
	if err != nil {
		t.Errorf("turbo after the move: %v (its reservation kept)", err)
	}
	d.Release()
	c.Release()
	if x, err := g.gk.Admit(ctx(t), gp, "azure-gpt4o", 100); err != nil {
		t.Errorf("gpt4o once the moved request ended: %v", err)
	} else {
		x.Release()
	}

	e, err := f.gk.Admit(ctx(t), p, "azure-turbo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gk.Move(ctx(t), e, "azure-gpt5", 1); users.ErrorCode(err) != users.CodeForbidden {
		t.Fatalf("Move to a family not allowed = %v", err)
	}
}
