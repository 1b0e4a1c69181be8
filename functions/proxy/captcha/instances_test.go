package captcha_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// Two proxy instances on one database: a solution verified by one is
// refused by the other, and the per-minute address limit holds across them.
func TestReplayedOnAnotherInstance(t *testing.T) {
	t.Setenv("FIREBASE_DATABASE_EMULATOR_HOST", "")
	srv := rtdbfake.Start(t)
	open := func() *rtdb.Store {
		s, err := rtdb.Open(ctx(t), rtdb.Options{URL: srv.URL(), FlushEvery: time.Hour, CallTimeout: 5 * time.Second, Logf: t.Logf})
		if err != nil {
			t.Fatalf("rtdb.Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	cfg := loadConfig(t, nil)
	clk := newClock()
	storeA, storeB := open(), open()
	a, b := newHandler(t, cfg, storeA, clk), newHandler(t, cfg, storeB, clk)

	c := getChallenge(t, a, ipA, map[string]string{"action": "new"})
	sol := solve(t, c)
	if r := verify(t, b, ipA, c, sol); r.status != http.StatusOK {
		t.Fatalf("B verifies A's challenge: %d %s", r.status, r.body)
	}
	clk.Advance(2 * time.Minute)
	r := verify(t, a, ipA, c, sol)
	if r.status != http.StatusConflict {
		t.Fatalf("replayed on A: %d %s, want 409", r.status, r.body)
	}
	marks, _ := srv.Data("users_marks").(map[string]any)
	if len(marks) < 2 {
		t.Errorf("marks in the database: %v; want the spent challenge and the address's minute", marks)
	}
	for k := range marks {
		if strings.Contains(k, ipA) || strings.Contains(k, "203-0-113-7") {
			t.Errorf("mark %q stores the client address", k)
		}
	}
	list, err := storeA.List(ctx(t))
	if err != nil || len(list) != 1 {
		t.Fatalf("users in the database = %d, %v; want 1", len(list), err)
	}

	// The per-minute limit is cluster-wide: B's issuance holds A back.
	c2 := getChallenge(t, a, ipA, map[string]string{"action": "new"})
	if r := verify(t, b, ipA, c2, solve(t, c2)); r.status != http.StatusOK {
		t.Fatalf("second token after a minute, on B: %d %s", r.status, r.body)
	}
	c3 := getChallenge(t, a, ipA, map[string]string{"action": "new"})
	if r := verify(t, a, ipA, c3, solve(t, c3)); r.status != http.StatusTooManyRequests {
		t.Fatalf("third token within that minute, on A: %d %s, want 429", r.status, r.body)
	}
}
