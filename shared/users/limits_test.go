package users_test

import (
	"maps"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

func TestLimitsRecord(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := &users.LimitsRecord{}
	entry := func(id string, at time.Time) users.LimitsEntry {
		return users.LimitsEntry{ID: "text-" + id, Kind: "text", Now: at, Window: time.Minute, Rate: 2, Inflight: 1, LeaseUntil: at.Add(10 * time.Minute)}
	}
	if d := r.Enter(entry("a", t0)); !d.RateOK || !d.InflightOK || d.Remaining != 1 {
		t.Fatalf("first: %+v", d)
	}
	if d := r.Enter(entry("b", t0)); d.InflightOK {
		t.Fatalf("second while the first is in flight: %+v", d)
	}
	r.Leave("text-a", false)
	if d := r.Enter(entry("c", t0.Add(time.Second))); !d.RateOK || !d.InflightOK || d.Remaining != 0 {
		t.Fatalf("after the first left: %+v", d)
	}
	r.Leave("text-c", false)
	d := r.Enter(entry("d", t0.Add(2*time.Second)))
	if d.RateOK || !d.Reset.Equal(t0.Add(time.Minute)) {
		t.Fatalf("third within the minute: %+v", d)
	}
	if r.Enter(users.LimitsEntry{ID: "image-x", Kind: "image", Now: t0, Window: time.Minute, Rate: 1}).RateOK != true {
		t.Fatal("image requests counted with text ones")
	}
	if d := r.Enter(entry("e", t0.Add(61*time.Second))); !d.RateOK {
		t.Fatalf("after the window: %+v", d)
	}
	r.Leave("text-e", true) // refused after entering: its count is taken back
	if _, ok := r.Hits["text-e"]; ok {
		t.Fatal("refund kept the count")
	}
	// A lease of an instance that crashed runs out.
	r = &users.LimitsRecord{}
	r.Enter(entry("crashed", t0))
	if d := r.Enter(entry("next", t0.Add(10*time.Minute))); !d.InflightOK {
		t.Fatalf("an expired lease still holds the place: %+v", d)
	}
	r.Leave("text-next", false)
	if !r.Empty() && len(r.Leases) != 0 {
		t.Fatalf("leases left: %+v", r.Leases)
	}
}

// A record is stale, and may be pruned, exactly when entering it would
// find nothing left in it: Stale draws the line where Enter drops hits
// and leases.
func TestLimitsRecordStale(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	for _, tt := range []struct {
		name  string
		rec   users.LimitsRecord
		stale bool
	}{
		{"empty", users.LimitsRecord{}, true},
		{"hit a window ago", users.LimitsRecord{Hits: map[string]int64{"text-a": ms(-time.Minute)}}, true},
		{"hit within the window", users.LimitsRecord{Hits: map[string]int64{"text-a": ms(-time.Minute + time.Millisecond)}}, false},
		{"one of two hits within the window", users.LimitsRecord{Hits: map[string]int64{"text-a": ms(-time.Hour), "image-b": ms(-time.Second)}}, false},
		{"lease run out now", users.LimitsRecord{Leases: map[string]int64{"text-a": ms(0)}}, true},
		{"lease still held", users.LimitsRecord{Leases: map[string]int64{"text-a": ms(time.Millisecond)}}, false},
		{"old hit, lease held", users.LimitsRecord{Hits: map[string]int64{"text-a": ms(-time.Hour)}, Leases: map[string]int64{"text-a": ms(time.Minute)}}, false},
		{"old hit, lease run out", users.LimitsRecord{Hits: map[string]int64{"text-a": ms(-time.Hour)}, Leases: map[string]int64{"text-a": ms(-time.Minute)}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rec.Stale(t0, time.Minute); got != tt.stale {
				t.Fatalf("Stale = %v, want %v", got, tt.stale)
			}
			// Enter sees the same: a stale record holds nothing back.
			r := tt.rec
			r.Hits, r.Leases = maps.Clone(r.Hits), maps.Clone(r.Leases)
			r.Enter(users.LimitsEntry{ID: "probe", Kind: "probe", Now: t0, Window: time.Minute})
			if empty := r.Empty(); empty != tt.stale {
				t.Fatalf("entering it at the same time leaves it empty: %v; Stale says %v", empty, tt.stale)
			}
		})
	}
}
