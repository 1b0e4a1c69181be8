package memory_test

import (
	"context"
	"sync"
	"testing"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// Under the race detector, concurrent lookups, charges and edits of one
// user lose no charge and never see a half-written user.
func TestConcurrentChargesAndLookups(t *testing.T) {
	s := memory.New()
	ctx := context.Background()
	tok := token(1)
	if _, err := s.Modify(ctx, tok, true, func(u *users.User, _ bool) error {
		u.TokenLimits = map[string]int64{"gpt4o": 1 << 40}
		u.IP = []string{"192.0.2.1"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// A read in place sees the stored user whole, as a copy does.
				if err := s.Lookup(ctx, tok, func(u *users.User) {
					if u.TokenCounts["gpt4o"] != 10*u.PromptCount {
						t.Errorf("a read in place saw %d prompts but %d tokens", u.PromptCount, u.TokenCounts["gpt4o"])
					}
				}); err != nil {
					t.Error(err)
					return
				}
				u, err := users.LookupCopy(ctx, s, tok)
				if err != nil {
					t.Error(err)
					return
				}
				if u.TokenCounts["gpt4o"] != 10*u.PromptCount {
					t.Errorf("a lookup saw %d prompts but %d tokens", u.PromptCount, u.TokenCounts["gpt4o"])
					return
				}
				u.TokenCounts["gpt4o"] = -1 // the caller's copy: must not reach the store
				if err := s.RecordUsage(ctx, tok, users.Usage{Family: "gpt4o", Tokens: 10, At: t0}); err != nil {
					t.Error(err)
					return
				}
				if w == 0 && i%50 == 0 { // an admin edit now and then
					if _, err := s.Modify(ctx, tok, false, func(u *users.User, _ bool) error { u.Nickname = "n"; return nil }); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	u, err := s.Get(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if u.PromptCount != workers*each || u.TokenCounts["gpt4o"] != 10*workers*each || u.Nickname != "n" || u.IP[0] != "192.0.2.1" {
		t.Fatalf("after %d charges: %+v", workers*each, u)
	}
}
