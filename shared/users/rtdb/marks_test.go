package rtdb_test

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/userstest"
)

func TestMarksConformance(t *testing.T) {
	if host := os.Getenv(emulatorEnv); host != "" {
		userstest.RunMarks(t, func(t *testing.T) users.Marks { return open(t, emulatorOptions(t, host)) })
		return
	}
	userstest.RunMarks(t, func(t *testing.T) users.Marks { return open(t, fakeOptions(t, rtdbfake.Start(t))) })
}

// Two instances on one database: a mark made by one holds for the other,
// and marks never show up as users.
func TestMarksAcrossInstances(t *testing.T) {
	srv := rtdbfake.Start(t)
	a := open(t, fakeOptions(t, srv))
	b := open(t, fakeOptions(t, srv))
	exp := t0.Add(time.Hour)
	if ok, err := a.Mark(ctx(t), "spent-x", exp); !ok || err != nil {
		t.Fatalf("instance a: Mark = %v, %v", ok, err)
	}
	if ok, err := b.Mark(ctx(t), "spent-x", exp); ok || err != nil {
		t.Fatalf("instance b: Mark of a's key = %v, %v; want false", ok, err)
	}
	list, err := b.List(ctx(t))
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %d users, %v; marks must live outside the users node", len(list), err)
	}
	if m, ok := srv.Data("users_marks").(map[string]any); !ok || len(m) != 1 {
		t.Errorf("users_marks holds %v; want the one mark", srv.Data("users_marks"))
	}
	if n, err := b.PruneMarks(ctx(t), exp.Add(time.Millisecond), 10); n != 1 || err != nil {
		t.Fatalf("PruneMarks on b = %d, %v", n, err)
	}
	if ok, err := a.Mark(ctx(t), "spent-x", exp); !ok || err != nil {
		t.Errorf("after b pruned it, a: Mark = %v, %v; want true", ok, err)
	}
}

func TestEventsConformance(t *testing.T) {
	if host := os.Getenv(emulatorEnv); host != "" {
		userstest.RunEvents(t, func(t *testing.T) userstest.EventStore { return open(t, emulatorOptions(t, host)) })
		return
	}
	userstest.RunEvents(t, func(t *testing.T) userstest.EventStore { return open(t, fakeOptions(t, rtdbfake.Start(t))) })
}

// Events and the live IP lists written by one instance are read by another
// at once (neither is cached), and neither shows up as users.
func TestEventsAndListsAcrossInstances(t *testing.T) {
	srv := rtdbfake.Start(t)
	a := open(t, fakeOptions(t, srv))
	b := open(t, fakeOptions(t, srv))
	if err := a.AddEvent(ctx(t), "tok-1", users.Event{At: t0.UnixMilli(), Family: "gpt4o", Input: 3, Output: 4, Status: 200}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetIPLists(ctx(t), users.IPLists{Blacklist: []string{"203.0.113.9"}}); err != nil {
		t.Fatal(err)
	}
	p, err := b.EventPage(ctx(t), "tok-1", "", 10)
	if err != nil || len(p.Events) != 1 || p.Events[0].Tokens() != 7 {
		t.Fatalf("instance b reads %+v, %v; want a's event", p, err)
	}
	l, err := b.IPLists(ctx(t))
	if err != nil || len(l.Blacklist) != 1 || l.Blacklist[0] != "203.0.113.9" {
		t.Fatalf("instance b reads lists %+v, %v", l, err)
	}
	if list, err := b.List(ctx(t)); err != nil || len(list) != 0 {
		t.Fatalf("List = %d users, %v; events and lists must live outside the users node", len(list), err)
	}
	if srv.Data("users_events/tok-1") == nil || srv.Data("users_iplists") == nil {
		t.Errorf("layout: events at %v, lists at %v", srv.Data("users_events"), srv.Data("users_iplists"))
	}
}

func TestLimitsConformance(t *testing.T) {
	if host := os.Getenv(emulatorEnv); host != "" {
		userstest.RunLimits(t, func(t *testing.T) userstest.LimitsStore {
			return userstest.LimitsStore{Limits: open(t, emulatorOptions(t, host))}
		})
		return
	}
	userstest.RunLimits(t, func(t *testing.T) userstest.LimitsStore {
		srv := rtdbfake.Start(t)
		return userstest.LimitsStore{Limits: open(t, fakeOptions(t, srv)), BeforePruneDelete: func(fn func()) { beforeLimitsWrite(srv, fn) }}
	})
}

// beforeLimitsWrite runs fn once, when the next write to a limits record
// reaches srv and before it is served: fn's requests land between the
// writer's read and its write.
func beforeLimitsWrite(srv *rtdbfake.Server, fn func()) {
	var fired atomic.Bool
	srv.OnWrite(func(method, path string, conditional bool) {
		if strings.Contains(path, "_limits/") && fired.CompareAndSwap(false, true) {
			fn()
		}
	})
}

// prune-limits begins at a random name, which no record has, and wraps
// round: through the SDK's key queries it still reaches every record,
// those before the start as well as those after.
func TestServicePruneLimitsWrapsRound(t *testing.T) {
	s := open(t, fakeOptions(t, rtdbfake.Start(t)))
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const n = 40
	for i := range n {
		key, id := fmt.Sprintf("k%d", i), fmt.Sprintf("text-%d", i)
		if _, err := s.EnterLimits(ctx(t), key, users.LimitsEntry{ID: id, Kind: "text", Now: t0, Window: time.Minute,
			Rate: 1, Inflight: 1, LeaseUntil: t0.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if err := s.LeaveLimits(ctx(t), key, id, false); err != nil {
			t.Fatal(err)
		}
	}
	svc := &users.Service{Store: s, Now: func() time.Time { return t0.Add(2 * time.Minute) }}
	if got, err := svc.Maintain(ctx(t), users.ActionPruneLimits); err != nil || got != n {
		t.Fatalf("prune-limits = %d, %v; want all %d stale records", got, err, n)
	}
	if left, err := s.PruneLimits(ctx(t), users.LimitsSweep{Now: t0, Window: time.Minute, Max: 100}); err != nil || left.Seen != 0 {
		t.Fatalf("%d records left (%v)", left.Seen, err)
	}
}
