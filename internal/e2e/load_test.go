package e2e

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

const (
	loadUsers    = 200
	loadPerUser  = 10
	loadRequests = loadUsers * loadPerUser // 2,000, all in flight at once
	// heapSlack bounds what may stay allocated after the load, once its
	// connections are closed and the GC has run. Most of it is the
	// runtime's own: it keeps the descriptor of every goroutine it ever
	// ran (some 10,000 here, 6-11 MiB) for reuse. A leak of a few KiB per
	// request would exceed it.
	heapSlack = 16 << 20
)

// loadRequest is user u's i-th request: every provider, plain and
// streamed, in turn.
func loadRequest(u, i int) (provCase, bool) {
	return provCases[(u+i)%len(provCases)], (u+i/len(provCases))%2 == 1
}

// expected is what user u must have been charged after the load.
func expected(u int) (prompts int64, tokens map[string]int64) {
	tokens = map[string]int64{}
	for i := range loadPerUser {
		pc, _ := loadRequest(u, i)
		tokens[pc.family] += fullCharge
	}
	return loadPerUser, tokens
}

func heapInUse() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// settledHeap waits (bounded) for the goroutines the load started to end
// (connections closing, handlers returning), then measures the heap.
func settledHeap(goroutines int) uint64 {
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return heapInUse()
}

// fire sends every request of the load at once (each stack in turn takes
// one), and fails on any answer but 200 with its end seen.
func fire(t *testing.T, stacks []*stack, tokens []string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loadRequests, MaxIdleConns: loadRequests}, Timeout: 50 * time.Second}
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var failures, server5xx atomic.Int64
	var firstErr sync.Once
	for u := range loadUsers {
		for i := range loadPerUser {
			wg.Go(func() {
				pc, stream := loadRequest(u, i)
				s := stacks[(u*loadPerUser+i)%len(stacks)]
				path, body := pc.path, pc.body
				if stream {
					path, body = pc.streamPathBody()
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.proxy.URL+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range pc.auth(tokens[u]) {
					req.Header.Set(k, v)
				}
				<-start
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					firstErr.Do(func() { t.Errorf("request failed: %v", err) })
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					server5xx.Add(1)
				}
				if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "upstream!") {
					failures.Add(1)
					firstErr.Do(func() { t.Errorf("%s (stream %v): %d %v %.300s", pc.kind, stream, resp.StatusCode, err, b) })
				}
			})
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d requests from %d users on %d instance(s) in %s", loadRequests, loadUsers, len(stacks), time.Since(began).Round(time.Millisecond))
	if failures.Load() > 0 || server5xx.Load() > 0 {
		t.Fatalf("%d of %d requests failed, %d with 5xx", failures.Load(), loadRequests, server5xx.Load())
	}
}

// checkCounts compares every user's counts with what the load charged.
func checkCounts(t *testing.T, tokens []string, get func(token string) *users.User) {
	t.Helper()
	bad := 0
	for u, tok := range tokens {
		got := get(tok)
		prompts, want := expected(u)
		ok := got.PromptCount == prompts && len(got.TokenCounts) == len(want)
		for f, n := range want {
			ok = ok && got.TokenCounts[f] == n
		}
		if !ok && bad < 5 {
			t.Errorf("user %d: %d prompts, counts %v; want %d, %v", u, got.PromptCount, got.TokenCounts, prompts, want)
		}
		if !ok {
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d users have wrong counts", bad, len(tokens))
	}
}

// loadFakes are upstreams for a load: closed and forgotten before the
// heap is measured, since a fake keeps every request it received.
type loadFakes map[upstreamfake.Kind]*upstreamfake.Fake

func newLoadFakes(t *testing.T) loadFakes {
	f := loadFakes{}
	for _, k := range []upstreamfake.Kind{upstreamfake.OpenAI, upstreamfake.Anthropic, upstreamfake.Google, upstreamfake.Mistral} {
		f[k] = upstreamfake.New(k)
	}
	t.Cleanup(f.drop)
	return f
}

// drop closes the fakes (the proxy's idle connections to them close too)
// and lets go of them.
func (f loadFakes) drop() {
	for k, fake := range f {
		if fake != nil {
			fake.Close()
		}
		f[k] = nil
	}
}

// 2,000 concurrent requests from 200 users on the memory store: every
// request answered 200, every count exact, and once the load's
// connections are gone the heap is back near where it started.
func TestLoadMemoryStore(t *testing.T) {
	noLeaks(t)
	fakes := newLoadFakes(t)
	s := newStack(t, stackOptions{fakes: fakes})
	tokens := make([]string, loadUsers)
	for u := range tokens {
		tokens[u] = s.createUser("")
	}
	// Warm up every path once, then measure.
	warm := s.createUser("")
	for _, pc := range provCases {
		path, body := pc.streamPathBody()
		s.do(http.MethodPost, s.proxy.URL+path, body, pc.auth(warm))
		s.do(http.MethodPost, s.proxy.URL+pc.path, pc.body, pc.auth(warm))
	}
	s.settle()
	goroutines := runtime.NumGoroutine()
	before := heapInUse()

	fire(t, []*stack{s}, tokens)
	s.settle()
	checkCounts(t, tokens, s.user)

	s.fakes = nil
	fakes.drop()
	after := settledHeap(goroutines)
	t.Logf("heap: %d KiB before, %d KiB after", before>>10, after>>10)
	if after > before+heapSlack {
		t.Errorf("heap grew from %d KiB to %d KiB over the load", before>>10, after>>10)
	}
}

// The same load on the RTDB store through two instances (two stores and
// handlers on one database, requests split between them, both flushing
// while it runs): after both shut down, every count in the database is
// exact, and no request failed.
func TestLoadRTDBTwoInstances(t *testing.T) {
	noLeaks(t)
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := newLoadFakes(t)
	logs := &syncBuffer{}
	// Flushing twice a second, so both instances flush while the load
	// runs; a generous call deadline, since this test is about counts, not
	// latency, on a machine the race detector slows down.
	storeA := rtdbStore(t, srv, 500*time.Millisecond, 30*time.Second, logs)
	storeB := rtdbStore(t, srv, 500*time.Millisecond, 30*time.Second, logs)
	a := newStack(t, stackOptions{fakes: fakes, store: storeA})
	b := newStack(t, stackOptions{fakes: fakes, store: storeB})
	// A third instance reads the counts back once both are closed.
	c := rtdbStore(t, srv, time.Hour, 10*time.Second, logs)
	tokens := make([]string, loadUsers)
	for u := range tokens {
		tokens[u] = a.createUser("")
	}
	goroutines := runtime.NumGoroutine()
	before := heapInUse()

	fire(t, []*stack{a, b}, tokens)
	a.settle()
	b.settle()
	// Both instances close (the last flush), with time to spare: the
	// shutdown budget itself is tested in shutdown_test.go.
	for _, s := range []*stack{a, b} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.d.Store.Close(ctx); err != nil {
			t.Fatalf("close: %v", err)
		}
		cancel()
	}
	checkCounts(t, tokens, func(tok string) *users.User {
		u, err := c.Get(context.Background(), tok)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		return u
	})
	if strings.Contains(logs.String(), "dropping") {
		t.Errorf("usage was dropped:\n%s", logs.String())
	}
	a.fakes, b.fakes = nil, nil
	fakes.drop()
	after := settledHeap(goroutines)
	t.Logf("heap: %d KiB before, %d KiB after; database requests: %d", before>>10, after>>10, srv.Requests())
	if after > before+heapSlack {
		t.Errorf("heap grew from %d KiB to %d KiB over the load", before>>10, after>>10)
	}
}
