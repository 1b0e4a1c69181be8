package userstest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// EventStore is what the events suite runs on.
type EventStore interface {
	users.Events
	users.LiveLists
}

// EventsFactory returns a new, empty store for one subtest.
type EventsFactory func(t *testing.T) EventStore

// RunEvents runs the users.Events and users.LiveLists suite.
func RunEvents(t *testing.T, newStore EventsFactory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s EventStore)
	}{
		{"PagesNewestFirst", testEventPages},
		{"PageErrors", testEventPageErrors},
		{"SinceAndPrune", testEventsSincePrune},
		{"IPLists", testIPLists},
		{"IPListsInvalid", testIPListsInvalid},
		{"IPListsStaleSaveRefused", testIPListsStaleSave},
		{"IPListsConcurrentSavesOneWins", testIPListsConcurrentSaves},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func addEvent(t *testing.T, s EventStore, token string, at time.Time, family string, in, out int64) {
	t.Helper()
	e := users.Event{At: at.UnixMilli(), Family: family, Model: family + "-model", Input: in, Output: out, IPTail: "….7", Status: 200}
	if err := s.AddEvent(ctx(t), token, e); err != nil {
		t.Fatalf("AddEvent(%s): %v", token, err)
	}
}

func testEventPages(t *testing.T, s EventStore) {
	for i := range 7 {
		addEvent(t, s, "alice", t0.Add(time.Duration(i)*time.Minute), "gpt4o", int64(i), 10)
	}
	addEvent(t, s, "bob", t0, "claude", 1, 1)
	var got []int64
	cursor := ""
	pages := 0
	for {
		p, err := s.EventPage(ctx(t), "alice", cursor, 3)
		if err != nil {
			t.Fatalf("EventPage(%q): %v", cursor, err)
		}
		pages++
		for _, e := range p.Events {
			got = append(got, e.Input)
			if e.Family != "gpt4o" || e.Model != "gpt4o-model" || e.Output != 10 || e.IPTail != "….7" || e.Status != 200 || e.ID == "" {
				t.Errorf("event read back as %+v", e)
			}
			if e.At != t0.Add(time.Duration(e.Input)*time.Minute).UnixMilli() {
				t.Errorf("event %d at %d", e.Input, e.At)
			}
		}
		if p.Next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		cursor = p.Next
	}
	if want := []int64{6, 5, 4, 3, 2, 1, 0}; !slices.Equal(got, want) || pages != 3 {
		t.Errorf("pages gave inputs %v in %d pages; want %v in 3", got, pages, want)
	}
	// A page that ends exactly at the last event has no next cursor.
	p, err := s.EventPage(ctx(t), "bob", "", 1)
	if err != nil || len(p.Events) != 1 || p.Next != "" {
		t.Errorf("bob's only page = %+v, %v; want 1 event and no next", p, err)
	}
	p, err = s.EventPage(ctx(t), "nobody", "", 0)
	if err != nil || len(p.Events) != 0 || p.Events == nil || p.Next != "" {
		t.Errorf("a user without events: %+v, %v; want an empty list", p, err)
	}
}

func testEventPageErrors(t *testing.T, s EventStore) {
	for _, c := range []struct {
		cursor string
		limit  int
		path   string
	}{
		{"garbage", 10, "cursor"},
		{"../x", 10, "cursor"},
		{"", -1, "limit"},
		{"", users.MaxEventPage + 1, "limit"},
	} {
		_, err := s.EventPage(ctx(t), "alice", c.cursor, c.limit)
		var e *users.Error
		if !errors.As(err, &e) || e.Code != users.CodeInvalid || len(e.Issues) != 1 || e.Issues[0].Path != c.path {
			t.Errorf("EventPage(%q, %d) = %v; want an invalid %s", c.cursor, c.limit, err, c.path)
		}
	}
}

func testEventsSincePrune(t *testing.T, s EventStore) {
	for i := range 4 {
		addEvent(t, s, "alice", t0.Add(-time.Duration(i)*24*time.Hour), "gpt4o", 100, 1)
	}
	addEvent(t, s, "bob", t0.Add(-50*24*time.Hour), "claude", 5, 5)
	since, err := s.EventsSince(ctx(t), t0.Add(-2*24*time.Hour), 100)
	if err != nil {
		t.Fatalf("EventsSince: %v", err)
	}
	if len(since) != 1 || len(since["alice"]) != 3 {
		t.Fatalf("EventsSince(2 days) = %v; want alice's 3 events only", since)
	}
	if a := since["alice"]; a[0].At > a[1].At || a[1].At > a[2].At {
		t.Errorf("EventsSince not oldest first: %v", a)
	}
	// perUser keeps each user's newest.
	newest, err := s.EventsSince(ctx(t), t0.Add(-2*24*time.Hour), 2)
	if a := newest["alice"]; err != nil || len(a) != 2 || a[1].At != t0.UnixMilli() || a[0].At != t0.Add(-24*time.Hour).UnixMilli() {
		t.Errorf("EventsSince(perUser 2) = %v, %v; want alice's 2 newest", newest, err)
	}
	n, err := s.PruneEvents(ctx(t), t0.Add(-24*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("PruneEvents(1 day) = %d, %v; want alice's 2 older events and bob's 1", n, err)
	}
	all, err := s.EventsSince(ctx(t), time.UnixMilli(0), 100)
	if err != nil || len(all) != 1 || len(all["alice"]) != 2 {
		t.Fatalf("after pruning: %v, %v; want alice's 2 newest events", all, err)
	}
	if n, err := s.PruneEvents(ctx(t), t0.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second PruneEvents = %d, %v; want 0", n, err)
	}
}

func testIPLists(t *testing.T, s EventStore) {
	l, err := s.IPLists(ctx(t))
	if err != nil || len(l.Whitelist) != 0 || len(l.Blacklist) != 0 {
		t.Fatalf("fresh IPLists = %+v, %v; want empty", l, err)
	}
	want := users.IPLists{Whitelist: []string{"10.0.0.0/8", "2001:db8::1"}, Blacklist: []string{"203.0.113.7"}, UpdatedAt: t0.UnixMilli()}
	if err := s.SetIPLists(ctx(t), want); err != nil {
		t.Fatalf("SetIPLists: %v", err)
	}
	got, err := s.IPLists(ctx(t))
	if err != nil || !slices.Equal(got.Whitelist, want.Whitelist) || !slices.Equal(got.Blacklist, want.Blacklist) || got.UpdatedAt != want.UpdatedAt {
		t.Fatalf("IPLists = %+v, %v; want %+v", got, err, want)
	}
	if err := s.SetIPLists(ctx(t), users.IPLists{Blacklist: []string{"198.51.100.0/24"}}); err != nil {
		t.Fatalf("SetIPLists: %v", err)
	}
	got, _ = s.IPLists(ctx(t))
	if len(got.Whitelist) != 0 || !slices.Equal(got.Blacklist, []string{"198.51.100.0/24"}) {
		t.Errorf("lists not replaced whole: %+v", got)
	}
}

func testIPListsInvalid(t *testing.T, s EventStore) {
	err := s.SetIPLists(ctx(t), users.IPLists{Blacklist: []string{"1.2.3.4", "not-an-ip"}})
	var e *users.Error
	if !errors.As(err, &e) || e.Code != users.CodeInvalid || len(e.Issues) != 1 || e.Issues[0].Path != "blacklist/1" {
		t.Fatalf("SetIPLists(bad) = %v; want invalid blacklist/1", err)
	}
	if got, _ := s.IPLists(ctx(t)); len(got.Blacklist) != 0 {
		t.Errorf("a refused list was written: %+v", got)
	}
}

// readLists reads the live lists, which always come with a version.
func readLists(t *testing.T, s EventStore) users.IPLists {
	t.Helper()
	l, err := s.IPLists(ctx(t))
	if err != nil {
		t.Fatalf("IPLists: %v", err)
	}
	if !users.WellFormedVersion(l.Version) {
		t.Fatalf("IPLists gave the version %q", l.Version)
	}
	return l
}

func sameLists(a, b users.IPLists) bool {
	return slices.Equal(a.Whitelist, b.Whitelist) && slices.Equal(a.Blacklist, b.Blacklist) && a.UpdatedAt == b.UpdatedAt
}

// Two admins load the same lists and both save: the first save wins, the
// second was made over a version that is gone and is refused, writing
// nothing; read again, it goes through.
func testIPListsStaleSave(t *testing.T, s EventStore) {
	loaded := readLists(t, s)
	alice, bob := loaded, loaded
	alice.Whitelist, alice.UpdatedAt = []string{"10.0.0.0/8"}, t0.UnixMilli()
	if err := s.SetIPLists(ctx(t), alice); err != nil {
		t.Fatalf("first save over the version read: %v", err)
	}
	afterAlice := readLists(t, s)
	if afterAlice.Version == loaded.Version {
		t.Fatalf("a save left the version at %q", loaded.Version)
	}
	bob.Blacklist, bob.UpdatedAt = []string{"203.0.113.7"}, t0.Add(time.Second).UnixMilli()
	err := s.SetIPLists(ctx(t), bob)
	if !errors.Is(err, users.ErrListsChanged) || users.ErrorCode(err) != users.CodeConflict {
		t.Fatalf("save over a stale version = %v; want ErrListsChanged", err)
	}
	if got := readLists(t, s); !sameLists(got, alice) || got.Version != afterAlice.Version {
		t.Fatalf("the refused save changed the lists: %+v; want %+v", got, alice)
	}

	// Versions no read gave are stale too, and never reach the database.
	for _, v := range []string{"not a version", "x\r\nX-Injected: 1", `W/"1"`, strings.Repeat("a", 129)} {
		err := s.SetIPLists(ctx(t), users.IPLists{Blacklist: []string{"192.0.2.1"}, Version: v})
		if !errors.Is(err, users.ErrListsChanged) {
			t.Errorf("save over the version %q = %v; want ErrListsChanged", v, err)
		}
	}
	if got := readLists(t, s); !sameLists(got, alice) {
		t.Fatalf("a save over a made-up version changed the lists: %+v", got)
	}

	// Bob reads the lists again and saves over what he now sees.
	bob = afterAlice
	bob.Blacklist = []string{"203.0.113.7"}
	if err := s.SetIPLists(ctx(t), bob); err != nil {
		t.Fatalf("save over the current version: %v", err)
	}
	if got := readLists(t, s); !slices.Equal(got.Whitelist, []string{"10.0.0.0/8"}) || !slices.Equal(got.Blacklist, []string{"203.0.113.7"}) {
		t.Fatalf("after the fresh save: %+v", got)
	}

	// Without a version a save replaces whatever is stored.
	if err := s.SetIPLists(ctx(t), users.IPLists{Blacklist: []string{"192.0.2.1"}}); err != nil {
		t.Fatalf("save without a version: %v", err)
	}
	if got := readLists(t, s); len(got.Whitelist) != 0 || !slices.Equal(got.Blacklist, []string{"192.0.2.1"}) {
		t.Fatalf("after the save without a version: %+v", got)
	}
}

// Saves racing over one version: exactly one is written, the others are
// refused, and the lists are the winner's.
func testIPListsConcurrentSaves(t *testing.T, s EventStore) {
	const n = 8
	loaded := readLists(t, s)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l := loaded
			l.Blacklist = []string{fmt.Sprintf("192.0.2.%d", i+1)}
			errs[i] = s.SetIPLists(ctx(t), l)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("saves %d and %d over one version were both written", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, users.ErrListsChanged):
			t.Errorf("save %d: %v; want ErrListsChanged", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no save was written")
	}
	if got := readLists(t, s); !slices.Equal(got.Blacklist, []string{fmt.Sprintf("192.0.2.%d", winner+1)}) {
		t.Errorf("stored %v; want the winner's (save %d)", got.Blacklist, winner)
	}
}
