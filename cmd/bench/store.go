package main

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/rtdb"
	"tollgate.dev/tollgate/shared/users/userstest"
)

// countingStore counts every call the proxy makes to its store: Get and
// Modify as userstest.CountedStore counts them.
type countingStore struct {
	*userstest.CountedStore
	lookups, usage, lists atomic.Int64
}

func newCountingStore(s users.Store) *countingStore {
	return &countingStore{CountedStore: userstest.NewCountedStore(s)}
}

func (s *countingStore) reset() {
	s.lookups.Store(0)
	s.usage.Store(0)
	s.lists.Store(0)
	s.CountedStore.Reset()
}

func (s *countingStore) Lookup(ctx context.Context, t string, read func(*users.User)) error {
	s.lookups.Add(1)
	return s.CountedStore.Lookup(ctx, t, read)
}

func (s *countingStore) RecordUsage(ctx context.Context, t string, u users.Usage) error {
	s.usage.Add(1)
	return s.CountedStore.RecordUsage(ctx, t, u)
}

func (s *countingStore) List(ctx context.Context) ([]*users.User, error) {
	s.lists.Add(1)
	return s.CountedStore.List(ctx)
}

// perRequest reports the calls since warm-up per request charged.
func (s *countingStore) perRequest() string {
	n := s.usage.Load()
	if n == 0 {
		return "no request charged"
	}
	return fmt.Sprintf("Lookup %.2f, RecordUsage %.2f, Get/Modify/List %d in %d requests (all in-process)",
		float64(s.lookups.Load())/float64(n), 1.0, s.Reads()+s.lists.Load(), n)
}

// memoryPerUser imports n users shaped like real ones (one IP, two
// families counted and limited) and divides the heap growth by n.
func memoryPerUser(n int) (float64, error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	store := memory.New()
	svc := &users.Service{Store: store, Now: time.Now}
	const batch = 1000
	for i := 0; i < n; i += batch {
		ps := make([]users.Patch, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			ps = append(ps, users.Patch{
				Token:       users.Opt[string]{Set: true, Value: fmt.Sprintf("00000000-0000-4000-8000-%012d", j)},
				IP:          users.Opt[[]string]{Set: true, Value: []string{fmt.Sprintf("10.%d.%d.%d", j>>16&255, j>>8&255, j&255)}},
				PromptCount: users.Opt[int64]{Set: true, Value: 42},
				TokenCounts: users.Opt[map[string]int64]{Set: true, Value: map[string]int64{"gpt4o": 12345, "claude": 678}},
				TokenLimits: users.Opt[map[string]int64]{Set: true, Value: map[string]int64{"gpt4o": 100000, "claude": 100000}},
			})
		}
		if _, err := svc.Import(context.Background(), ps); err != nil {
			return 0, err
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(store)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n), nil
}

// rtdbRoundTrips runs the proxy on the Firebase RTDB store (the real SDK
// against the in-process wire-protocol fake) and counts the database
// requests: the user's first use, then n requests of the cached user
// (USER_CACHE_TTL at its default), then the flush of their usage.
func rtdbRoundTrips(upstreamURL string, n int) (string, error) {
	// The SDK would go to a real emulator named in the environment.
	os.Unsetenv("FIREBASE_DATABASE_EMULATOR_HOST")
	tb := &benchTB{}
	defer tb.cleanup()
	fake := rtdbfake.Start(tb)
	cfgEnv := proxyEnv(upstreamURL)
	cfg, err := config.FromMap(cfgEnv)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := rtdb.Open(ctx, rtdb.Options{
		URL:        fake.URL(),
		CacheTTL:   cfg.UserCacheTTL,
		FlushEvery: time.Hour, // flushed below, when counted
	})
	if err != nil {
		return "", err
	}
	defer store.Close(context.Background())
	d := proxy.Deps{Config: cfg, Store: store, Log: logging.New(io.Discard, "info"), Now: time.Now}
	u, err := (&users.Service{Store: store, Defaults: cfg.TokenQuota, Now: time.Now}).Create(ctx, users.Patch{})
	if err != nil {
		return "", err
	}
	srv := httptest.NewServer(proxy.New(d))
	defer srv.Close()
	tg := target{url: srv.URL + "/openai/v1/chat/completions", auths: []string{u.Token}}
	client := srv.Client()

	before := fake.Requests()
	if _, err := tg.do(client, chatBody); err != nil {
		return "", err
	}
	first := fake.Requests() - before
	before = fake.Requests()
	start := time.Now()
	for range n {
		if _, err := tg.do(client, chatBody); err != nil {
			return "", err
		}
	}
	took := time.Since(start)
	hot := fake.Requests() - before
	before = fake.Requests()
	if err := store.Flush(ctx); err != nil {
		return "", err
	}
	flush := fake.Requests() - before
	got, err := store.Get(ctx, u.Token)
	if err != nil {
		return "", err
	}
	if got.PromptCount != int64(n)+1 {
		return "", fmt.Errorf("the flush recorded %d prompts, want %d", got.PromptCount, n+1)
	}
	note := ""
	if took > cfg.UserCacheTTL {
		note = fmt.Sprintf(" (took %s > USER_CACHE_TTL: expect one re-read per TTL)", took.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d (first use: %d; one flush of their usage afterwards: %d)%s", hot, first, flush, note), nil
}

// benchTB lets a command use rtdbfake, written for tests: it implements
// the three testing.TB methods the fake calls (Helper, Cleanup, Fatalf);
// any other would panic on the nil embedded interface.
type benchTB struct {
	testing.TB
	cleanups []func()
}

func (t *benchTB) Helper()                        {}
func (t *benchTB) Cleanup(f func())               { t.cleanups = append(t.cleanups, f) }
func (t *benchTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
func (t *benchTB) Logf(format string, a ...any)   {}

func (t *benchTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
