package memory_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

var t0 = time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)

func token(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// realUser is shaped like a user of the original's exports: one IP, two
// families counted and limited.
func realUser(i int) users.Patch {
	return users.Patch{
		Token:       users.Opt[string]{Set: true, Value: token(i)},
		IP:          users.Opt[[]string]{Set: true, Value: []string{fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)}},
		PromptCount: users.Opt[int64]{Set: true, Value: 42},
		TokenCounts: users.Opt[map[string]int64]{Set: true, Value: map[string]int64{"gpt4o": 12345, "claude": 678}},
		TokenLimits: users.Opt[map[string]int64]{Set: true, Value: map[string]int64{"gpt4o": 100000, "claude": 100000}},
	}
}

func fill(b *testing.B, s *memory.Store, n int) {
	b.Helper()
	svc := &users.Service{Store: s, Now: func() time.Time { return t0 }}
	const batch = 1000
	for i := 0; i < n; i += batch {
		ps := make([]users.Patch, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			ps = append(ps, realUser(j))
		}
		if _, err := svc.Import(context.Background(), ps); err != nil {
			b.Fatal(err)
		}
	}
}

// readQuota reads what the proxy's quota check reads of a user.
func readQuota(u *users.User) {
	if u.Disabled() || u.TokenCounts["gpt4o"] > u.TokenLimits["gpt4o"] {
		panic("the benchmark's user cannot be served")
	}
}

// BenchmarkLookupParallel is the proxy's hot-path read from many
// goroutines, over many users.
func BenchmarkLookupParallel(b *testing.B) {
	s := memory.New()
	fill(b, s, 1000)
	var n atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Lookup(ctx, token(int(n.Add(1)%1000)), readQuota); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLookupAndCharge is a served request's store work: one lookup
// and one charge, from many goroutines over many users.
func BenchmarkLookupAndCharge(b *testing.B) {
	s := memory.New()
	fill(b, s, 1000)
	var n atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tok := token(int(n.Add(1) % 1000))
			if err := s.Lookup(ctx, tok, readQuota); err != nil {
				b.Error(err)
				return
			}
			if err := s.RecordUsage(ctx, tok, users.Usage{Family: "gpt4o", Tokens: 13, At: t0}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMemoryPerUser reports the heap a user costs in the memory
// store, with 100,000 imported.
func BenchmarkMemoryPerUser(b *testing.B) {
	const n = 100000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := memory.New()
		fill(b, s, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/user")
	}
}
