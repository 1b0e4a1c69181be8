// Package userstest is the conformance suite every users.Store must pass,
// written once and run by each implementation's tests.
package userstest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// OriginalExport is a users.json exported by the original project.
//
//go:embed testdata/original-users-export.json
var OriginalExport []byte

// Factory returns a new, empty store for one subtest. Stores that batch
// usage must make it visible to Get after Flush.
type Factory func(t *testing.T) users.Store

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s users.Store)
	}{
		{"GetMissing", testGetMissing},
		{"ModifyCreates", testModifyCreates},
		{"ModifyMissingWithoutCreate", testModifyMissing},
		{"ModifyAbortWritesNothing", testModifyAbort},
		{"ModifyNoWrite", testModifyNoWrite},
		{"ReturnedUsersAreCopies", testCopies},
		{"DeleteAndList", testDeleteAndList},
		{"DeleteIfJudgesTheLatestState", testDeleteIf},
		{"UsageVisibleToLookupAndAfterFlush", testUsage},
		{"LookupReadsWholeUsersBesideCharges", testLookupInPlace},
		{"ConcurrentUsageExact", testConcurrentUsage},
		{"ConcurrentIPAdmissionHoldsLimit", testConcurrentIPs},
		{"ConcurrentIPv6AdmissionCountsSlash64s", testConcurrentIPv6},
		{"RecordedAddressesTakeNoPlace", testRecordIP},
		{"ConcurrentModifyLosesNothing", testConcurrentModify},
		{"OriginalExportRoundTrips", testOriginalExport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func create(t *testing.T, s users.Store, token string, edit func(u *users.User)) *users.User {
	t.Helper()
	u, err := s.Modify(ctx(t), token, true, func(u *users.User, exists bool) error {
		if exists {
			return fmt.Errorf("%s already exists", token)
		}
		*u = *users.New(token, users.Normal, t0, map[string]int64{"gpt4o": 1000})
		if edit != nil {
			edit(u)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("create %s: %v", token, err)
	}
	return u
}

func mustGet(t *testing.T, s users.Store, token string) *users.User {
	t.Helper()
	u, err := s.Get(ctx(t), token)
	if err != nil {
		t.Fatalf("Get(%s): %v", token, err)
	}
	return u
}

func mustLookup(t *testing.T, s users.Store, token string) *users.User {
	t.Helper()
	u, err := users.LookupCopy(ctx(t), s, token)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", token, err)
	}
	return u
}

func testGetMissing(t *testing.T, s users.Store) {
	if _, err := s.Get(ctx(t), "nobody"); !users.IsNotFound(err) {
		t.Fatalf("Get missing: got %v, want not found", err)
	}
	if _, err := users.LookupCopy(ctx(t), s, "nobody"); !users.IsNotFound(err) {
		t.Fatalf("Lookup missing: got %v, want not found", err)
	}
	if err := s.Delete(ctx(t), "nobody"); !users.IsNotFound(err) {
		t.Fatalf("Delete missing: got %v, want not found", err)
	}
}

func testModifyCreates(t *testing.T, s users.Store) {
	created := create(t, s, "tok-a", func(u *users.User) { u.Nickname = "ann" })
	got := mustGet(t, s, "tok-a")
	if got.Nickname != "ann" || got.Token != "tok-a" || got.TokenLimits["gpt4o"] != 1000 || got.CreatedAt != t0.UnixMilli() {
		t.Fatalf("stored user = %+v", got)
	}
	if !reflect.DeepEqual(created, got) {
		t.Fatalf("Modify returned %+v, Get returned %+v", created, got)
	}
}

func testModifyMissing(t *testing.T, s users.Store) {
	called := false
	_, err := s.Modify(ctx(t), "ghost", false, func(u *users.User, exists bool) error { called = true; return nil })
	if !users.IsNotFound(err) || called {
		t.Fatalf("Modify missing without create: err %v, fn called %v", err, called)
	}
	if _, err := s.Get(ctx(t), "ghost"); !users.IsNotFound(err) {
		t.Fatalf("ghost was created: %v", err)
	}
}

func testModifyAbort(t *testing.T, s users.Store) {
	create(t, s, "tok-b", nil)
	boom := errors.New("boom")
	_, err := s.Modify(ctx(t), "tok-b", false, func(u *users.User, _ bool) error {
		u.Nickname = "changed"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Modify error = %v, want boom", err)
	}
	if got := mustGet(t, s, "tok-b"); got.Nickname != "" {
		t.Fatalf("aborted change was written: %+v", got)
	}
	_, err = s.Modify(ctx(t), "tok-new", true, func(u *users.User, _ bool) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("create abort error = %v", err)
	}
	if _, err := s.Get(ctx(t), "tok-new"); !users.IsNotFound(err) {
		t.Fatalf("aborted create was written: %v", err)
	}
}

func testModifyNoWrite(t *testing.T, s users.Store) {
	create(t, s, "tok-c", func(u *users.User) { u.Nickname = "keep" })
	u, err := s.Modify(ctx(t), "tok-c", false, func(u *users.User, _ bool) error {
		u.Nickname = "discarded"
		return users.ErrNoWrite
	})
	if err != nil {
		t.Fatalf("ErrNoWrite surfaced as %v", err)
	}
	if u == nil || u.Nickname != "keep" {
		t.Fatalf("Modify with ErrNoWrite returned %+v, want the stored user", u)
	}
	if got := mustGet(t, s, "tok-c"); got.Nickname != "keep" {
		t.Fatalf("ErrNoWrite change was written: %+v", got)
	}
}

func testCopies(t *testing.T, s users.Store) {
	create(t, s, "tok-d", func(u *users.User) { u.IP = []string{"192.0.2.1"} })
	lookup := func(c context.Context, token string) (*users.User, error) { return users.LookupCopy(c, s, token) }
	for _, get := range []func(context.Context, string) (*users.User, error){s.Get, lookup} {
		u, err := get(ctx(t), "tok-d")
		if err != nil {
			t.Fatal(err)
		}
		u.IP[0] = "mutated"
		u.TokenLimits["gpt4o"] = 1
		u.Nickname = "mutated"
	}
	got := mustGet(t, s, "tok-d")
	if got.IP[0] != "192.0.2.1" || got.TokenLimits["gpt4o"] != 1000 || got.Nickname != "" {
		t.Fatalf("mutating a returned user changed the store: %+v", got)
	}
}

func testDeleteAndList(t *testing.T, s users.Store) {
	for _, tok := range []string{"tok-1", "tok-2", "tok-3"} {
		create(t, s, tok, nil)
	}
	if err := s.Delete(ctx(t), "tok-2"); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for _, u := range list {
		toks = append(toks, u.Token)
	}
	sort.Strings(toks)
	if !reflect.DeepEqual(toks, []string{"tok-1", "tok-3"}) {
		t.Fatalf("List after delete = %v", toks)
	}
	if _, err := users.LookupCopy(ctx(t), s, "tok-2"); !users.IsNotFound(err) {
		t.Fatalf("Lookup of deleted user: %v", err)
	}
}

// testDeleteIf: a conditional delete judges the user as stored now, so a
// user changed since it was listed is kept.
func testDeleteIf(t *testing.T, s users.Store) {
	cd, ok := s.(users.CondDeleter)
	if !ok {
		t.Fatalf("%T deletes no user on a condition", s)
	}
	for _, tok := range []string{"tok-a", "tok-b"} {
		create(t, s, tok, func(u *users.User) { u.Nickname = "old" })
	}
	stale := func(u *users.User) bool { return u.Nickname == "old" }
	if _, err := s.Modify(ctx(t), "tok-b", false, func(u *users.User, _ bool) error { u.Nickname = "new"; return nil }); err != nil {
		t.Fatal(err)
	}
	if deleted, err := cd.DeleteIf(ctx(t), "tok-a", stale); err != nil || !deleted {
		t.Fatalf("DeleteIf of a user meeting the condition: %v, %v", deleted, err)
	}
	if deleted, err := cd.DeleteIf(ctx(t), "tok-b", stale); err != nil || deleted {
		t.Fatalf("DeleteIf of a user changed since: %v, %v", deleted, err)
	}
	if _, err := cd.DeleteIf(ctx(t), "tok-a", stale); !users.IsNotFound(err) {
		t.Fatalf("DeleteIf of a missing user: %v", err)
	}
	if _, err := s.Get(ctx(t), "tok-a"); !users.IsNotFound(err) {
		t.Fatalf("the deleted user: %v", err)
	}
	if u := mustGet(t, s, "tok-b"); u.Nickname != "new" {
		t.Fatalf("the kept user: %+v", u)
	}
}

func testUsage(t *testing.T, s users.Store) {
	create(t, s, "tok-u", nil)
	if _, err := users.LookupCopy(ctx(t), s, "tok-u"); err != nil { // warm any cache
		t.Fatal(err)
	}
	at := t0.Add(time.Hour)
	if err := s.RecordUsage(ctx(t), "tok-u", users.Usage{Family: "gpt4o", Tokens: 120, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordUsage(ctx(t), "tok-u", users.Usage{Family: "claude", Tokens: 30, At: at.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	check := func(where string, u *users.User) {
		t.Helper()
		if u.PromptCount != 2 || u.TokenCounts["gpt4o"] != 120 || u.TokenCounts["claude"] != 30 || u.LastUsedAt != at.Add(time.Second).UnixMilli() {
			t.Fatalf("%s: promptCount %d counts %v lastUsedAt %d", where, u.PromptCount, u.TokenCounts, u.LastUsedAt)
		}
	}
	u, err := users.LookupCopy(ctx(t), s, "tok-u")
	if err != nil {
		t.Fatal(err)
	}
	check("Lookup before flush", u)
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	check("Get after flush", mustGet(t, s, "tok-u"))
}

// testLookupInPlace: Lookup's read is not called for a missing user, and
// sees a whole user (its prompts and tokens counted together) while
// charges of it land from other goroutines; the race detector sees a read
// left unguarded.
func testLookupInPlace(t *testing.T, s users.Store) {
	if err := s.Lookup(ctx(t), "nobody", func(*users.User) { t.Error("read called for a missing user") }); !users.IsNotFound(err) {
		t.Fatalf("Lookup missing: got %v, want not found", err)
	}
	create(t, s, "tok-read", nil)
	const workers, each = 4, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if err := s.RecordUsage(ctx(t), "tok-read", users.Usage{Family: "gpt4o", Tokens: 7, At: t0}); err != nil {
					t.Error(err)
					return
				}
				var prompts, tokens int64
				if err := s.Lookup(ctx(t), "tok-read", func(u *users.User) {
					prompts, tokens = u.PromptCount, u.TokenCounts["gpt4o"]
				}); err != nil {
					t.Error(err)
					return
				}
				if prompts == 0 || tokens != 7*prompts {
					t.Errorf("a read saw %d prompts but %d tokens", prompts, tokens)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if u := mustGet(t, s, "tok-read"); u.PromptCount != workers*each || u.TokenCounts["gpt4o"] != 7*workers*each {
		t.Fatalf("after %d charges: %d prompts, %v", workers*each, u.PromptCount, u.TokenCounts)
	}
}

func testConcurrentUsage(t *testing.T, s users.Store) {
	create(t, s, "tok-busy", nil)
	const workers, each = 20, 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				errs <- s.RecordUsage(ctx(t), "tok-busy", users.Usage{Family: "gpt4o", Tokens: 3, At: t0})
				if i%5 == 0 {
					errs <- s.Flush(ctx(t))
				}
			}
		}()
	}
	// An admin edit in the middle must neither be lost nor erase usage.
	if _, err := s.Modify(ctx(t), "tok-busy", false, func(u *users.User, _ bool) error {
		u.AdminNote = "edited during load"
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
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	u := mustGet(t, s, "tok-busy")
	if u.PromptCount != workers*each || u.TokenCounts["gpt4o"] != 3*workers*each || u.AdminNote != "edited during load" {
		t.Fatalf("after %d charges: promptCount %d, gpt4o %d, note %q", workers*each, u.PromptCount, u.TokenCounts["gpt4o"], u.AdminNote)
	}
}

func testConcurrentIPs(t *testing.T, s users.Store) {
	create(t, s, "tok-ip", nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := fmt.Sprintf("198.51.100.%d", i+1)
			var verdict users.IPVerdict
			_, err := s.Modify(ctx(t), "tok-ip", false, func(u *users.User, _ bool) error {
				verdict = users.AdmitIP(u, ip, 3, false, t0)
				if verdict != users.IPAdded {
					return users.ErrNoWrite
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			if verdict == users.IPAdded {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if u := mustGet(t, s, "tok-ip"); len(u.IP) != 3 || admitted != 3 {
		t.Fatalf("IP limit 3: stored %v, admitted %d", u.IP, admitted)
	}
}

// testConcurrentIPv6 admits two addresses of each of six IPv6 /64s at
// once under a limit of 3: exactly three /64s get in, each with both its
// addresses recorded, whatever the order (a /64 refused once stays
// refused, since the count only grows).
func testConcurrentIPv6(t *testing.T, s users.Store) {
	create(t, s, "tok-ip6", nil)
	var wg sync.WaitGroup
	for n := range 6 {
		for host := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ip := fmt.Sprintf("2001:db8:0:%x::%x", n+1, host+1)
				_, err := s.Modify(ctx(t), "tok-ip6", false, func(u *users.User, _ bool) error {
					if users.AdmitIP(u, ip, 3, false, t0) != users.IPAdded {
						return users.ErrNoWrite
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	u := mustGet(t, s, "tok-ip6")
	nets := map[string]int{}
	for _, ip := range u.IP {
		var n, host int
		if _, err := fmt.Sscanf(ip, "2001:db8:0:%x::%x", &n, &host); err != nil {
			t.Fatalf("recorded %q: %v", ip, err)
		}
		nets[fmt.Sprint(n)]++
	}
	if len(nets) != 3 || len(u.IP) != 6 {
		t.Fatalf("IP limit 3 over IPv6 /64s: stored %v, want both addresses of three /64s", u.IP)
	}
}

// testRecordIP: a store that records addresses with its usage
// (users.IPRecorder) records those the user has room for, beside a charge
// and an edit, each once: a new address of a network it has (which takes
// no place), any address when no limit applies, and never one past the
// limit (that is the IP limit's to admit, by a transaction).
func testRecordIP(t *testing.T, s users.Store) {
	rec, ok := s.(users.IPRecorder)
	if !ok {
		t.Skip("the store records every address by a write of its own")
	}
	two := int64(2)
	create(t, s, "tok-rec", func(u *users.User) { u.IP, u.MaxIPs = []string{"2001:db8:0:1::1", "198.51.100.1"}, &two })
	create(t, s, "tok-free", nil)
	mustLookup(t, s, "tok-rec")
	for _, ip := range []string{"2001:db8:0:1::2", "2001:db8:0:2::1", "2001:db8:0:1::2", "2001:db8:0:1::3"} {
		if err := rec.RecordIP(ctx(t), "tok-rec", ip, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.RecordIP(ctx(t), "tok-free", "2001:db8:0:2::1", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordUsage(ctx(t), "tok-rec", users.Usage{Family: "gpt4o", Tokens: 5, At: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Modify(ctx(t), "tok-rec", false, func(u *users.User, _ bool) error {
		u.Nickname = "kept"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"198.51.100.1", "2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1::3"} // in any order
	if err := s.Flush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	u := mustGet(t, s, "tok-rec")
	if !slices.Equal(slices.Sorted(slices.Values(u.IP)), want) || u.IPsCounted() != 2 || u.PromptCount != 1 || u.Nickname != "kept" {
		t.Fatalf("stored: addresses %v (%d places), %d prompts, nickname %q; want %v in 2 places, 1 prompt, the edit kept",
			u.IP, u.IPsCounted(), u.PromptCount, u.Nickname, want)
	}
	if u := mustGet(t, s, "tok-free"); !slices.Equal(u.IP, []string{"2001:db8:0:2::1"}) {
		t.Fatalf("without a limit: stored %v, want the address", u.IP)
	}
}

func testConcurrentModify(t *testing.T, s users.Store) {
	create(t, s, "tok-m", nil)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := fmt.Sprintf("fam%d", i)
			if _, err := s.Modify(ctx(t), "tok-m", false, func(u *users.User, _ bool) error {
				u.TokenLimits[f] = int64(i + 1)
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	u := mustGet(t, s, "tok-m")
	for i := 0; i < 10; i++ {
		if u.TokenLimits[fmt.Sprintf("fam%d", i)] != int64(i+1) {
			t.Fatalf("concurrent Modify lost an update: %v", u.TokenLimits)
		}
	}
}

// testOriginalExport stores every user of the original's export and reads
// it back: the JSON must be equal but for the deprecated tokenCount.
func testOriginalExport(t *testing.T, s users.Store) {
	ps, err := users.ParsePatchList(OriginalExport)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if _, err := s.Modify(ctx(t), p.Token.Value, true, func(u *users.User, _ bool) error { p.Apply(u); return u.Validate() }); err != nil {
			t.Fatal(err)
		}
	}
	var want struct{ Users []map[string]any }
	if err := json.Unmarshal(OriginalExport, &want); err != nil {
		t.Fatal(err)
	}
	for _, w := range want.Users {
		delete(w, "tokenCount")
		u := mustGet(t, s, w["token"].(string))
		b, _ := json.Marshal(u)
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("user %s round trip:\n got %s\nwant %v", w["token"], b, w)
		}
	}
}
