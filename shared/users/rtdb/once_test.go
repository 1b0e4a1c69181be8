package rtdb_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// charge records n prompts of 10 gpt4o tokens for token on s.
func charge(t *testing.T, s users.Store, token string, n int) {
	t.Helper()
	for range n {
		if err := s.RecordUsage(ctx(t), token, users.Usage{Family: "gpt4o", Tokens: 10, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
}

// wantCounts checks the user's counts as stored.
func wantCounts(t *testing.T, s users.Store, token string, prompts, tokens int64, why string) {
	t.Helper()
	if u := mustGet(t, s, token); u.PromptCount != prompts || u.TokenCounts["gpt4o"] != tokens {
		t.Fatalf("%s: %d prompts, %d gpt4o tokens; want %d and %d", why, u.PromptCount, u.TokenCounts["gpt4o"], prompts, tokens)
	}
}

// A flush the database made whose answer was lost is sent again by the
// Firebase client itself (a network error or a 503); the second try finds
// the value changed (412) and the transaction runs again on the value its
// own first write left. The usage is in it: it must not be added again.
func TestFlushWhoseAnswerWasLostCountsOnce(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	create(t, s, "tok-once", nil)
	charge(t, s, "tok-once", 3)
	var lost atomic.Bool
	var writes atomic.Int32
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		if !conditional || path != "/users/tok-once" {
			return false
		}
		writes.Add(1)
		return lost.CompareAndSwap(false, true)
	})
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatalf("Flush whose first answer was lost: %v", err)
	}
	if !lost.Load() || writes.Load() < 2 {
		t.Fatalf("%d conditional writes, answer lost: %v; the case did not happen", writes.Load(), lost.Load())
	}
	wantCounts(t, s, "tok-once", 3, 30, "after the flush whose answer was lost")
	if u := mustLookup(t, s, "tok-once"); u.PromptCount != 3 {
		t.Fatalf("Lookup after the flush: %d prompts, want 3", u.PromptCount)
	}
	charge(t, s, "tok-once", 1)
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, "tok-once", 4, 40, "after the next flush")
}

// A flush the database made whose answers (its own, and the Firebase
// client's retry's) were all lost fails when its deadline passes; its
// usage is kept and sent again by the next flush, with what was charged
// meanwhile. The next flush finds the first in the record: it adds only
// what is new.
func TestFlushKeptAfterALostAnswerCountsOnce(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	o.CallTimeout = 400 * time.Millisecond // the client's second retry waits 1s
	s := open(t, o)
	create(t, s, "tok-kept", nil)
	charge(t, s, "tok-kept", 3)
	var losing atomic.Bool
	losing.Store(true)
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		return conditional && path == "/users/tok-kept" && losing.Load()
	})
	wantUnavailable(t, "Flush whose answers were lost", s.Flush(ctx(t)))
	if got := srv.Data("users/tok-kept/promptCount"); got != 3.0 {
		t.Fatalf("the database holds %v prompts after the flush; the case did not happen (want its write made)", got)
	}
	losing.Store(false)
	if u := mustLookup(t, s, "tok-kept"); u.PromptCount != 3 {
		t.Fatalf("Lookup with the usage kept: %d prompts, want 3", u.PromptCount)
	}
	// A read of the user shows the kept usage is in it: the view does not
	// count it again on top.
	wantCounts(t, s, "tok-kept", 3, 30, "Get after the flush")
	if u := mustLookup(t, s, "tok-kept"); u.PromptCount != 3 {
		t.Fatalf("Lookup after a read of the user: %d prompts, want 3", u.PromptCount)
	}
	charge(t, s, "tok-kept", 2)
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatalf("the next flush: %v", err)
	}
	wantCounts(t, s, "tok-kept", 5, 50, "after the next flush")
	if u := mustLookup(t, s, "tok-kept"); u.PromptCount != 5 {
		t.Fatalf("Lookup after the next flush: %d prompts, want 5", u.PromptCount)
	}
	charge(t, s, "tok-kept", 1)
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, "tok-kept", 6, 60, "after one more flush")
}

// A flush that failed before it sent its write (the database down) is
// known not to be in the record: what is charged meanwhile joins it.
// One that sent its write and lost every answer twice over is sent again
// by each flush under its own number, beside the newer usage, until one
// flush's answer comes back: every prompt is counted once.
func TestFlushesLostInARowCountOnce(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	o.CallTimeout = 400 * time.Millisecond
	s := open(t, o)
	create(t, s, "tok-row", nil)
	var losing atomic.Bool
	losing.Store(true)
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		return conditional && path == "/users/tok-row" && losing.Load()
	})
	for i := range 3 {
		charge(t, s, "tok-row", 1)
		wantUnavailable(t, "Flush whose answers were lost", s.Flush(ctx(t)))
		if got := srv.Data("users/tok-row/promptCount"); got != float64(i+1) {
			t.Fatalf("flush %d: the database holds %v prompts, want %d", i+1, got, i+1)
		}
	}
	losing.Store(false)
	srv.SetDown(true)
	charge(t, s, "tok-row", 1)
	wantUnavailable(t, "Flush with the database down", s.Flush(ctx(t)))
	srv.SetDown(false)
	charge(t, s, "tok-row", 1)
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, s, "tok-row", 5, 50, "after the flushes")
}

// Two instances flush the same users at once through a database that
// loses answers: every charge of either is counted exactly once.
func TestConcurrentFlushesWithLostAnswersCountExactly(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	o.CallTimeout = 600 * time.Millisecond
	a, b := open(t, o), open(t, o)
	tokens := []string{"tok-c1", "tok-c2", "tok-c3"}
	for _, tok := range tokens {
		create(t, a, tok, nil)
	}
	var n, lost atomic.Int32
	srv.LoseAnswers(func(method, path string, conditional bool) bool {
		if !conditional || !strings.HasPrefix(path, "/users/") {
			return false
		}
		if n.Add(1)%3 == 0 {
			lost.Add(1)
			return true
		}
		return false
	})
	// Each instance charges every user once a round and flushes; rounds
	// go on past 12 until a flush has failed (an answer lost twice over:
	// the client's retry waits past the deadline), 60 at most.
	const rounds, maxRounds = 12, 60
	var wg sync.WaitGroup
	var failed, charged atomic.Int32
	for _, s := range []users.Store{a, b} {
		wg.Go(func() {
			for r := 0; r < rounds || failed.Load() == 0 && r < maxRounds; r++ {
				charged.Add(1)
				for _, tok := range tokens {
					if err := s.RecordUsage(ctx(t), tok, users.Usage{Family: "gpt4o", Tokens: 7, At: t0}); err != nil {
						t.Error(err)
						return
					}
				}
				if err := s.Flush(ctx(t)); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	srv.LoseAnswers(nil)
	for _, s := range []users.Store{a, b} {
		if err := s.Flush(ctx(t)); err != nil {
			t.Fatalf("the last flush: %v", err)
		}
	}
	if lost.Load() == 0 || failed.Load() == 0 {
		t.Fatalf("%d answers lost, %d flushes failed: the cases did not happen", lost.Load(), failed.Load())
	}
	t.Logf("%d rounds, %d conditional writes, %d answers lost, %d flushes failed", charged.Load(), n.Load(), lost.Load(), failed.Load())
	for _, tok := range tokens {
		n := int64(charged.Load())
		wantCounts(t, a, tok, n, n*7, tok)
	}
	// Both instances' numbers are in the record.
	for _, tok := range tokens {
		if f, _ := srv.Data("users/" + tok + "/usageFlushed").(map[string]any); len(f) != 2 {
			t.Fatalf("%s's usageFlushed: %v, want one number per instance", tok, f)
		}
	}
}

// usageFlushed is the store's own: it is in no user it returns (nor so in
// an export or the admin API's JSON), an edit and an import keep it as
// stored, and a flush keeps it small: entries older than a day and all
// but the newest 16 are dropped, the flushing instance's own kept.
func TestUsageFlushedIsKeptOutOfUsersAndBounded(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	c := &clock{now: t0}
	o.Now = c.Now
	s := open(t, o)
	create(t, s, "tok-f", nil)
	old := map[string]any{}
	for i := range 20 {
		old[fmt.Sprintf("wold%02d", i)] = t0.Add(-25 * time.Hour).UnixMilli() // past the day
	}
	for i := range 20 {
		old[fmt.Sprintf("wnew%02d", i)] = t0.Add(-time.Duration(i+1) * time.Minute).UnixMilli()
	}
	srv.SetData("users/tok-f/usageFlushed", old)
	charge(t, s, "tok-f", 1)
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	f, _ := srv.Data("users/tok-f/usageFlushed").(map[string]any)
	if len(f) != 16 {
		t.Fatalf("usageFlushed after the flush holds %d entries, want 16: %v", len(f), f)
	}
	own := 0
	for w := range f {
		switch {
		case strings.HasPrefix(w, "wold"):
			t.Fatalf("an entry older than a day kept: %s", w)
		case strings.HasPrefix(w, "wnew"):
			if w > "wnew14" { // the 15 newest are wnew00..wnew14
				t.Fatalf("an older entry %s kept before a newer one: %v", w, f)
			}
		default:
			own++
		}
	}
	if own != 1 {
		t.Fatalf("usageFlushed %v: the flushing instance's own entry is missing", f)
	}

	for name, got := range map[string]any{"Get": mustGet(t, s, "tok-f"), "Lookup": mustLookup(t, s, "tok-f")} {
		if j := toJSON(t, got); strings.Contains(j, "usageFlushed") || strings.Contains(j, "wnew") {
			t.Fatalf("%s shows the store's field: %s", name, j)
		}
	}
	list, err := s.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if j := toJSON(t, list); strings.Contains(j, "usageFlushed") {
		t.Fatalf("List shows the store's field: %s", j)
	}

	if _, err := s.Modify(ctx(t), "tok-f", false, func(u *users.User, _ bool) error { u.Nickname = "edited"; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.Data("users/tok-f/usageFlushed").(map[string]any); len(got) != 16 {
		t.Fatalf("an edit left usageFlushed as %v, want it kept", got)
	}
	var writes atomic.Int32
	srv.OnWrite(func(method, path string, conditional bool) { writes.Add(1) })
	if _, err := s.Modify(ctx(t), "tok-f", false, func(u *users.User, _ bool) error { u.Nickname = "edited"; return nil }); err != nil {
		t.Fatal(err)
	}
	srv.OnWrite(nil)
	if n := writes.Load(); n != 0 {
		t.Fatalf("an edit that changes nothing made %d writes, want none", n)
	}
	rep, err := importService(s).ImportEach(ctx(t), patches(t, `{"users":[{"token":"tok-f","promptCount":9}]}`))
	if err != nil || len(rep.Failed) != 0 {
		t.Fatalf("import: %v %+v", err, rep)
	}
	if got, _ := srv.Data("users/tok-f/usageFlushed").(map[string]any); len(got) != 16 {
		t.Fatalf("an import left usageFlushed as %v, want it kept", got)
	}
	if u := mustGet(t, s, "tok-f"); u.PromptCount != 9 || u.Nickname != "edited" {
		t.Fatalf("after the edit and the import: %+v", u)
	}
}
