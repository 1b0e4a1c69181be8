package userstest

import (
	"fmt"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// LimitsStore is a store's limits for the suite. BeforePruneDelete makes
// the store's next PruneLimits run fn once, after it has judged a record
// stale and before its delete reaches the store: fn's requests race the
// prune. It is nil where the store has no such seam (the emulator), and
// the race is then skipped.
type LimitsStore struct {
	users.Limits
	BeforePruneDelete func(fn func())
}

// RunLimits runs the users.Limits suite against limits made by newLimits.
func RunLimits(t *testing.T, newLimits func(t *testing.T) LimitsStore) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, LimitsStore)
	}{
		{"RenewKeepsTheLease", testRenewLimits},
		{"EnterGivesBackEarlierLeaves", testEnterGivesBack},
		{"EnterMadeAgainIsOneRequest", testEnterAgain},
		{"PruneDeletesStaleRecords", testPruneStale},
		{"PruneKeepsLiveRecords", testPruneKeepsLive},
		{"PruneKeepsAnEnterThatRaces", testPruneRace},
		{"PrunePagesAreBounded", testPrunePages},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newLimits(t)) })
	}
}

// testRenewLimits: a renewed lease holds its place past its first end; a
// lease that ran out before its renewal is taken again by it (its request
// still runs; the gatekeeper never renews a request that has left).
func testRenewLimits(t *testing.T, l LimitsStore) {
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
	// Not renewed in time: at 21 minutes another request finds the
	// place free, and leaves.
	if !enter("c", t0.Add(21*time.Minute)) {
		t.Fatal("a lease that ran out still holds its place")
	}
	if err := l.LeaveLimits(ctx(t), "k", "text-c", true); err != nil {
		t.Fatal(err)
	}
	if err := l.RenewLimits(ctx(t), "k", "text-a", t0.Add(32*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if enter("d", t0.Add(22*time.Minute)) {
		t.Fatal("a late renewal did not take its lease again: its request runs on uncounted")
	}
}

// testEnterGivesBack: the leaves an enter carries are applied in its own
// write, before it is judged: a lease an instance could not give back,
// and the count of an enter it never heard back from (refunded), leave
// room for the new request, in flight and in the rate window.
func testEnterGivesBack(t *testing.T, l LimitsStore) {
	if d := enterOne(t, l, "k", "a", t0, 10*time.Minute); !d.InflightOK {
		t.Fatalf("the first request refused: %+v", d)
	}
	if d := enterOne(t, l, "k", "b", t0.Add(time.Second), 10*time.Minute); d.RateOK && d.InflightOK {
		t.Fatalf("a second request admitted beside the first (rate 1, 1 in flight): %+v", d)
	}
	now := t0.Add(2 * time.Second)
	d, err := l.EnterLimits(ctx(t), "k", users.LimitsEntry{ID: "text-c", Kind: "text", Now: now, Window: time.Minute,
		Rate: 1, Inflight: 1, LeaseUntil: now.Add(10 * time.Minute), Leave: []users.LimitsLeave{{ID: "text-a", Refund: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !d.RateOK || !d.InflightOK {
		t.Fatalf("an enter giving back the first request's lease and count: %+v, want admitted", d)
	}
	if d := enterOne(t, l, "k", "d", now, 10*time.Minute); d.InflightOK && d.RateOK {
		t.Fatalf("the request that gave back the first does not hold its place: %+v", d)
	}
}

// testEnterAgain: an enter made again with the same entry (a database
// client retrying a write whose answer was lost, after the database made
// it) is the request it already admitted, not a second one: admitted, and
// counted and in flight once.
func testEnterAgain(t *testing.T, l LimitsStore) {
	e := users.LimitsEntry{ID: "text-a", Kind: "text", Now: t0, Window: time.Minute,
		Rate: 2, Inflight: 1, LeaseUntil: t0.Add(10 * time.Minute)}
	for try := range 2 {
		d, err := l.EnterLimits(ctx(t), "k", e)
		if err != nil {
			t.Fatal(err)
		}
		if !d.RateOK || !d.InflightOK || d.Remaining != 1 {
			t.Fatalf("enter, try %d: %+v, want admitted with 1 request left", try+1, d)
		}
	}
	if d := enterOne(t, l, "k", "b", t0.Add(time.Second), 10*time.Minute); d.InflightOK && d.RateOK {
		t.Fatalf("a second request admitted beside the first (1 in flight): %+v", d)
	}
	leave(t, l, "k", "a")
	now := t0.Add(2 * time.Second)
	d, err := l.EnterLimits(ctx(t), "k", users.LimitsEntry{ID: "text-c", Kind: "text", Now: now, Window: time.Minute,
		Rate: 2, Inflight: 1, LeaseUntil: now.Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if !d.RateOK || !d.InflightOK || d.Remaining != 0 {
		t.Fatalf("the request after the first left: %+v, want admitted, the first counted once", d)
	}
}

// enterOne enters request id of key at now, under a rate of 1 a minute
// and 1 in flight with a lease of lease, and reports the decision.
func enterOne(t *testing.T, l users.Limits, key, id string, now time.Time, lease time.Duration) users.LimitsDecision {
	t.Helper()
	d, err := l.EnterLimits(ctx(t), key, users.LimitsEntry{ID: "text-" + id, Kind: "text", Now: now, Window: time.Minute,
		Rate: 1, Inflight: 1, LeaseUntil: now.Add(lease)})
	if err != nil {
		t.Fatalf("enter %s of %s: %v", id, key, err)
	}
	return d
}

func leave(t *testing.T, l users.Limits, key, id string) {
	t.Helper()
	if err := l.LeaveLimits(ctx(t), key, "text-"+id, false); err != nil {
		t.Fatalf("leave %s of %s: %v", id, key, err)
	}
}

func prune(t *testing.T, l users.Limits, sw users.LimitsSweep) users.LimitsSwept {
	t.Helper()
	if sw.Window == 0 {
		sw.Window = time.Minute
	}
	got, err := l.PruneLimits(ctx(t), sw)
	if err != nil {
		t.Fatalf("PruneLimits(%+v): %v", sw, err)
	}
	return got
}

// testPruneStale: a record whose hits are all older than the window and
// whose leases have all run out is deleted: a client that left, and one
// whose instance died mid-request (its lease never given back).
func testPruneStale(t *testing.T, l LimitsStore) {
	if d := enterOne(t, l, "left", "a", t0, 10*time.Minute); !d.Created {
		t.Fatalf("the first request of a key created no record: %+v", d)
	}
	leave(t, l, "left", "a")
	enterOne(t, l, "crashed", "b", t0, time.Minute) // never left
	now := t0.Add(2 * time.Minute)
	if got := prune(t, l, users.LimitsSweep{Now: now, Max: 10}); got.Seen != 2 || got.Pruned != 2 || got.Next != "" {
		t.Fatalf("prune of two stale records = %+v, want both seen and pruned", got)
	}
	if got := prune(t, l, users.LimitsSweep{Now: now, Max: 10}); got.Seen != 0 {
		t.Fatalf("after the prune %d records are left, want none", got.Seen)
	}
	if d := enterOne(t, l, "left", "c", now, 10*time.Minute); !d.Created || !d.RateOK || !d.InflightOK {
		t.Fatalf("the client back after its record was pruned: %+v, want a new record and admitted", d)
	}
}

// testPruneKeepsLive: a record holding a hit still in the window, or a
// lease still held, is kept, and still refuses what it refused.
func testPruneKeepsLive(t *testing.T, l LimitsStore) {
	now := t0.Add(2 * time.Minute)
	enterOne(t, l, "in-flight", "a", t0, 10*time.Minute) // its rate hit is old, its lease held
	enterOne(t, l, "recent", "b", now.Add(-30*time.Second), 10*time.Minute)
	leave(t, l, "recent", "b") // no lease, its hit in the window
	enterOne(t, l, "gone", "c", t0, 10*time.Minute)
	leave(t, l, "gone", "c")
	if got := prune(t, l, users.LimitsSweep{Now: now, Max: 10}); got.Seen != 3 || got.Pruned != 1 {
		t.Fatalf("prune = %+v, want 3 seen and only the stale one pruned", got)
	}
	if d := enterOne(t, l, "in-flight", "d", now, 10*time.Minute); !d.RateOK || d.InflightOK || d.Created {
		t.Fatalf("a second request while the first is in flight: %+v, want refused for concurrency", d)
	}
	if d := enterOne(t, l, "recent", "e", now, 10*time.Minute); d.RateOK || d.Created {
		t.Fatalf("a second request within the minute: %+v, want refused for rate", d)
	}
}

// testPruneRace: a request that enters a stale record after the prune
// judged it, before the delete, is kept: the delete is conditional on the
// state it judged.
func testPruneRace(t *testing.T, l LimitsStore) {
	if l.BeforePruneDelete == nil {
		t.Skip("no way into this store's prune")
	}
	enterOne(t, l, "k", "a", t0, 10*time.Minute)
	leave(t, l, "k", "a")
	now := t0.Add(2 * time.Minute)
	var raced users.LimitsDecision
	l.BeforePruneDelete(func() { raced = enterOne(t, l, "k", "b", now, 10*time.Minute) })
	got := prune(t, l, users.LimitsSweep{Now: now, Max: 10})
	if !raced.RateOK || !raced.InflightOK {
		t.Fatalf("the racing request: %+v, want admitted", raced)
	}
	if got.Seen != 1 || got.Pruned != 0 {
		t.Fatalf("prune with a request entering meanwhile = %+v, want the record seen and kept", got)
	}
	if d := enterOne(t, l, "k", "c", now, 10*time.Minute); d.RateOK || d.Created {
		t.Fatalf("a request after the racing one: %+v, want refused (its count and lease kept)", d)
	}
}

// testPrunePages: a step looks at no more than Max records; steps go on
// from Next and the last one ends with Next empty; a random step too.
func testPrunePages(t *testing.T, l LimitsStore) {
	for i := range 5 {
		key := fmt.Sprintf("k%d", i)
		enterOne(t, l, key, "a", t0, 10*time.Minute)
		leave(t, l, key, "a")
	}
	now := t0.Add(2 * time.Minute)
	if got := prune(t, l, users.LimitsSweep{Now: now, Max: 2, Random: true}); got.Seen != 2 || got.Pruned != 2 || got.Next != "" {
		t.Fatalf("random step of 2 = %+v, want 2 seen and pruned", got)
	}
	// Three left: a page of 2, then the last one.
	first := prune(t, l, users.LimitsSweep{Now: now, Max: 2})
	if first.Seen != 2 || first.Pruned != 2 || first.Next == "" {
		t.Fatalf("first page = %+v, want 2 seen and pruned, and where to go on", first)
	}
	last := prune(t, l, users.LimitsSweep{Now: now, Max: 2, After: first.Next})
	if last.Seen != 1 || last.Pruned != 1 || last.Next != "" {
		t.Fatalf("last page = %+v, want the one left, and the end", last)
	}
	if got := prune(t, l, users.LimitsSweep{Now: now, Max: 10, Random: true}); got.Seen != 0 {
		t.Fatalf("%d records left, want none", got.Seen)
	}
}
