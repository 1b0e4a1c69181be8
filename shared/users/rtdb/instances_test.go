package rtdb_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
	"tollgate.dev/tollgate/shared/users/userstest"
)

// Two function instances charge one user 1,000 times between them, with
// background and explicit flushes and an admin edit in the middle: after
// both close, every prompt and token is counted exactly once.
func TestTwoInstancesLoseNothing(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	o.FlushEvery = 5 * time.Millisecond
	a, b := open(t, o), open(t, o)
	create(t, a, "tok-shared", nil)

	const workers, each = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := []*rtdb.Store{a, b}[w%2]
			for i := range each {
				fam := []string{"gpt4o", "gpt-4.1"}[i%2] // '.' must survive as a key
				at := t0.Add(time.Duration(w*each+i) * time.Millisecond)
				errs <- inst.RecordUsage(ctx(t), "tok-shared", users.Usage{Family: fam, Tokens: int64(1 + i%3), At: at})
				if i%7 == 0 {
					errs <- inst.Flush(ctx(t))
				}
			}
		}()
	}
	if _, err := b.Modify(ctx(t), "tok-shared", false, func(u *users.User, _ bool) error {
		u.AdminNote = "edited under load"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*rtdb.Store{a, b} {
		if err := s.Close(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}

	// Per worker: i%2 picks the family, 1+i%3 the tokens.
	var want4o, want41 int64
	for range workers {
		for i := range each {
			if i%2 == 0 {
				want4o += int64(1 + i%3)
			} else {
				want41 += int64(1 + i%3)
			}
		}
	}
	u := mustGet(t, open(t, o), "tok-shared")
	if u.PromptCount != workers*each || u.TokenCounts["gpt4o"] != want4o || u.TokenCounts["gpt-4.1"] != want41 {
		t.Fatalf("promptCount %d (want %d), counts %v (want gpt4o %d, gpt-4.1 %d)", u.PromptCount, workers*each, u.TokenCounts, want4o, want41)
	}
	if want := t0.Add((workers*each - 1) * time.Millisecond).UnixMilli(); u.LastUsedAt != want {
		t.Fatalf("lastUsedAt %d, want the latest %d", u.LastUsedAt, want)
	}
	if u.AdminNote != "edited under load" {
		t.Fatalf("admin edit lost: %+v", u)
	}
}

// An admin disable through instance A reaches instance B's Lookup when B's
// cached copy is CacheTTL old, and not before; cache hits cost no request.
func TestAdminChangeSeenWithinTTL(t *testing.T) {
	srv := rtdbfake.Start(t)
	clk := &clock{now: t0}
	o := fakeOptions(t, srv)
	o.CacheTTL = 5 * time.Second
	o.Now = clk.Now
	a, b := open(t, o), open(t, o)
	create(t, a, "tok-x", nil)

	if u := mustLookup(t, b, "tok-x"); u.Disabled() {
		t.Fatal("disabled before the admin acted")
	}
	if _, err := (&users.Service{Store: a, Now: clk.Now}).Disable(ctx(t), "tok-x", "abuse"); err != nil {
		t.Fatal(err)
	}

	before := srv.Requests()
	clk.Advance(5*time.Second - time.Millisecond)
	if u := mustLookup(t, b, "tok-x"); u.Disabled() {
		t.Fatal("B's cached copy changed before its TTL ran out: it was not served from the cache")
	}
	if n := srv.Requests() - before; n != 0 {
		t.Fatalf("cache hit made %d database requests", n)
	}
	clk.Advance(time.Millisecond)
	u := mustLookup(t, b, "tok-x")
	if !u.Disabled() || u.DisabledReason != "abuse" {
		t.Fatalf("B still sees %+v after the TTL", u)
	}
}

// A Lookup cache hit makes no database request, and shows this instance's
// unflushed usage.
func TestLookupCacheHitMakesNoRequests(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	create(t, s, "tok-hot", nil)
	mustLookup(t, s, "tok-hot")

	before := srv.Requests()
	for i := range 50 {
		if err := s.RecordUsage(ctx(t), "tok-hot", users.Usage{Family: "claude", Tokens: 10, At: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
		mustLookup(t, s, "tok-hot")
	}
	u := mustLookup(t, s, "tok-hot")
	if n := srv.Requests() - before; n != 0 {
		t.Fatalf("50 cached lookups and charges made %d requests", n)
	}
	if u.PromptCount != 50 || u.TokenCounts["claude"] != 500 || u.LastUsedAt != t0.Add(49*time.Second).UnixMilli() {
		t.Fatalf("Lookup does not show pending usage: %+v", u)
	}
	// Unknown and malformed tokens: one read for the unknown one, then cached.
	for range 3 {
		if _, err := users.LookupCopy(ctx(t), s, "tok-unknown"); !users.IsNotFound(err) {
			t.Fatalf("unknown token: %v", err)
		}
		if _, err := users.LookupCopy(ctx(t), s, "bad/../token.json"); !users.IsNotFound(err) {
			t.Fatalf("malformed token: %v", err)
		}
	}
	if n := srv.Requests() - before; n != 1 {
		t.Fatalf("unknown tokens made %d requests, want 1", n)
	}
}

// Close writes what is pending: the SIGTERM path.
func TestCloseFlushesPending(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	s, err := rtdb.Open(ctx(t), o)
	if err != nil {
		t.Fatal(err)
	}
	create(t, s, "tok-term", nil)
	for range 3 {
		if err := s.RecordUsage(ctx(t), "tok-term", users.Usage{Family: "gpt4o", Tokens: 7, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.Data("users/tok-term/promptCount"); got != 0.0 {
		t.Fatalf("usage written before Close (promptCount %v): the test proves nothing", got)
	}
	if err := s.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := srv.Data("users/tok-term/promptCount"); got != 3.0 {
		t.Fatalf("after Close, stored promptCount = %v, want 3", got)
	}
	if u := mustGet(t, open(t, o), "tok-term"); u.TokenCounts["gpt4o"] != 21 {
		t.Fatalf("after restart: %+v", u)
	}
}

// The background flusher writes usage on its own.
func TestBackgroundFlush(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	o.FlushEvery = 10 * time.Millisecond
	s := open(t, o)
	create(t, s, "tok-bg", nil)
	if err := s.RecordUsage(ctx(t), "tok-bg", users.Usage{Family: "gpt4o", Tokens: 5, At: t0}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Data("users/tok-bg/promptCount") != 1.0 {
		if time.Now().After(deadline) {
			t.Fatalf("no background flush within 10s: %v", srv.Data("users/tok-bg"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Usage for a user another instance deleted is dropped with a warning, and
// the user is not brought back.
func TestUsageOfDeletedUserDropped(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	var mu sync.Mutex
	var warnings []string
	oa := o
	oa.Logf = func(f string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, f)
	}
	a, b := open(t, oa), open(t, o)
	create(t, a, "tok-gone", nil)
	mustLookup(t, a, "tok-gone")
	if err := a.RecordUsage(ctx(t), "tok-gone", users.Usage{Family: "gpt4o", Tokens: 1, At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx(t), "tok-gone"); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if v := srv.Data("users/tok-gone"); v != nil {
		t.Fatalf("deleted user resurrected as %v", v)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "no longer exists") {
		t.Fatalf("warnings = %q", warnings)
	}
}

// Close, open a new store on the same database: every user reads the same.
func TestRestartKeepsEverything(t *testing.T) {
	srv := rtdbfake.Start(t)
	o := fakeOptions(t, srv)
	s, err := rtdb.Open(ctx(t), o)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := users.ParsePatchList(userstest.OriginalExport)
	if err != nil {
		t.Fatal(err)
	}
	svc := &users.Service{Store: s, Now: func() time.Time { return t0 }}
	if _, err := svc.Import(ctx(t), ps); err != nil {
		t.Fatal(err)
	}
	create(t, s, "tok-odd", func(u *users.User) {
		u.Meta = map[string]any{"a.b": []any{nil, "%x", map[string]any{}}, "0": "zero"}
		u.TokenRefresh = map[string]int64{}
	})
	if err := s.RecordUsage(ctx(t), ps[0].Token.Value, users.Usage{Family: "gpt-4.1", Tokens: 9, At: t0}); err != nil {
		t.Fatal(err)
	}
	before := lookupAll(t, s)
	if err := s.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	after := listJSON(t, open(t, o))
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("after restart:\n got %v\nwant %v", after, before)
	}
	if len(after) != len(ps)+1 {
		t.Fatalf("%d users after restart, want %d", len(after), len(ps)+1)
	}
}

// lookupAll is every user as this instance sees it, pending usage included.
func lookupAll(t *testing.T, s *rtdb.Store) map[string]string {
	t.Helper()
	list, err := s.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range list {
		out[u.Token] = toJSON(t, mustLookup(t, s, u.Token))
	}
	return out
}

func listJSON(t *testing.T, s *rtdb.Store) map[string]string {
	t.Helper()
	list, err := s.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range list {
		out[u.Token] = toJSON(t, u)
	}
	return out
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// List pages through more users than one page holds, in key order, with
// integer-looking tokens (which RTDB orders first, and may serve as an array).
func TestListPages(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	seed := map[string]any{}
	var want []string
	for i := range 1203 {
		tok := "tok-" + strings.Repeat("0", 4-len(itoa(i))) + itoa(i)
		if i < 3 {
			tok = itoa(i) // "0", "1", "2"
		}
		want = append(want, tok)
		seed[tok] = map[string]any{"token": tok, "type": "normal", "promptCount": 0, "createdAt": t0.UnixMilli()}
	}
	srv.SetData("users", seed)
	list, err := s.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range list {
		got = append(got, u.Token)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List gave %d users, want %d", len(got), len(want))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// While this instance is flushing a user, Lookup keeps using its cached copy
// (even past the TTL) rather than a read that might already include the
// in-flight usage and count it twice.
func TestLookupDuringFlushCountsOnce(t *testing.T) {
	srv := rtdbfake.Start(t)
	clk := &clock{now: t0}
	o := fakeOptions(t, srv)
	o.Now = clk.Now
	s := open(t, o)
	create(t, s, "tok-fl", nil)
	if err := s.RecordUsage(ctx(t), "tok-fl", users.Usage{Family: "gpt4o", Tokens: 4, At: t0}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute) // the cached copy is now stale
	srv.SetDelay(300 * time.Millisecond)
	before := srv.Requests()
	done := make(chan error, 1)
	go func() { done <- s.Flush(ctx(t)) }()
	// Wait until the flush's first request has arrived.
	for deadline := time.Now().Add(10 * time.Second); srv.Requests() == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the flush sent no request within 10s")
		}
	}
	mid := srv.Requests()
	if u := mustLookup(t, s, "tok-fl"); u.PromptCount != 1 || u.TokenCounts["gpt4o"] != 4 {
		t.Fatalf("Lookup during the flush: %d prompts, %v", u.PromptCount, u.TokenCounts)
	}
	if srv.Requests() != mid {
		t.Fatal("Lookup read the user while its flush was in flight")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flush did not end within 10s")
	}
	srv.SetDelay(0)
	if u := mustLookup(t, s, "tok-fl"); u.PromptCount != 1 || u.TokenCounts["gpt4o"] != 4 {
		t.Fatalf("Lookup after the flush: %d prompts, %v", u.PromptCount, u.TokenCounts)
	}
	if srv.Requests() != mid+1 { // the flush's PUT, no read
		t.Fatalf("the flush's result was not cached: %d more requests", srv.Requests()-mid)
	}
}
