package ratelimit_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
)

// BenchmarkWindowAllowHotKey is one busy user near a realistic limit.
func BenchmarkWindowAllowHotKey(b *testing.B) {
	w := ratelimit.NewWindow(time.Minute)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// 100 per minute, one request every 600ms: always just allowed.
		if d := w.Allow("user", 100, t0.Add(time.Duration(i)*600*time.Millisecond)); !d.Allowed {
			b.Fatal("refused")
		}
		i++
	}
}

// BenchmarkWindowAllowParallel is many users from many goroutines: the
// shards must keep them from contending.
func BenchmarkWindowAllowParallel(b *testing.B) {
	w := ratelimit.NewWindow(time.Minute)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			w.Allow(keys[i%int64(len(keys))], 4, t0.Add(time.Duration(i)*time.Millisecond))
		}
	})
}

// BenchmarkConcurrencyParallelKeys takes and frees slots for many keys,
// as the gatekeeper does (Take and Release, no closure).
func BenchmarkConcurrencyParallelKeys(b *testing.B) {
	c := ratelimit.NewConcurrency()
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if slot, ok := c.Take(keys[n.Add(1)%int64(len(keys))], 1); ok {
				slot.Release()
			}
		}
	})
}
