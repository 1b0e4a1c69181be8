package rtdb_test

import (
	"context"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// BenchmarkDurableCharge is what a charge written before the answer ends
// adds to it, against the in-process RTDB server (loopback, no network
// latency): recording the usage and flushing it, one user's transaction
// (read with its ETag, conditional write).
func BenchmarkDurableCharge(b *testing.B) {
	srv := rtdbfake.Start(b)
	ctx := context.Background()
	s, err := rtdb.Open(ctx, rtdb.Options{URL: srv.URL(), CacheTTL: 5 * time.Second, FlushEvery: time.Hour, CallTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	svc := &users.Service{Store: s}
	u, err := svc.Create(ctx, users.Patch{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := users.LookupCopy(ctx, s, u.Token); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.RecordUsage(ctx, u.Token, users.Usage{Family: "gpt4o", Tokens: 18, At: time.Now()}); err != nil {
			b.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupCached is the proxy's hot-path read of a user in this
// instance's cache with no usage of its own pending: read in place, as
// the gatekeeper reads, and as a copy.
func BenchmarkLookupCached(b *testing.B) {
	srv := rtdbfake.Start(b)
	ctx := context.Background()
	s, err := rtdb.Open(ctx, rtdb.Options{URL: srv.URL(), CacheTTL: time.Hour, FlushEvery: time.Hour, CallTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	u, err := (&users.Service{Store: s}).Create(ctx, users.Patch{})
	if err != nil {
		b.Fatal(err)
	}
	read := func(u *users.User) {
		if u.Disabled() {
			b.Fatal("disabled")
		}
	}
	b.Run("in place", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Lookup(ctx, u.Token, read); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := users.LookupCopy(ctx, s, u.Token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
