package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
)

// With LIMITS_SCOPE=cluster the rate window and the requests in flight of
// a user are kept in the database: two instances together allow what one
// does. With the default instance scope each allows its own.
func TestClusterLimitsAcrossInstances(t *testing.T) {
	clearEmulatorEnv(t)
	pc := provCases[0]
	for _, tc := range []struct {
		scope   string
		allowed int
	}{{"cluster", 3}, {"instance", 4}} {
		t.Run("rate "+tc.scope, func(t *testing.T) {
			srv := rtdbfake.Start(t)
			fakes := startFakes(t)
			vars := map[string]string{"LIMITS_SCOPE": tc.scope, "TEXT_MODEL_RATE_LIMIT": "3"}
			a := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
			b := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
			tok := a.createUser("")
			ok := 0
			for i, s := range []*stack{a, a, b, b} {
				r := s.do(http.MethodPost, s.proxy.URL+pc.path, pc.body, pc.auth(tok))
				switch r.status {
				case 200:
					ok++
				case 429:
					if r.header.Get("Retry-After") == "" {
						t.Errorf("request %d: 429 without Retry-After", i)
					}
				default:
					t.Fatalf("request %d: %d %s", i, r.status, r.body)
				}
			}
			if ok != tc.allowed {
				t.Errorf("%d of 4 requests allowed across two instances; want %d", ok, tc.allowed)
			}
		})
	}

	t.Run("database down", func(t *testing.T) {
		srv := rtdbfake.Start(t)
		fakes := startFakes(t)
		vars := map[string]string{"LIMITS_SCOPE": "cluster", "TEXT_MODEL_RATE_LIMIT": "3"}
		a := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 300*time.Millisecond, &syncBuffer{})})
		tok := a.createUser("")
		if r := a.do(http.MethodPost, a.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body) // the user is now in A's cache
		}
		before := fakes[pc.kind].Count()
		srv.SetDown(true)
		r := a.do(http.MethodPost, a.proxy.URL+pc.path, pc.body, pc.auth(tok))
		srv.SetDown(false)
		if r.status != 503 || fakes[pc.kind].Count() != before {
			t.Fatalf("limits unreadable: %d %s, upstream called %d times", r.status, r.body, fakes[pc.kind].Count()-before)
		}
	})

	t.Run("in flight cluster", func(t *testing.T) {
		srv := rtdbfake.Start(t)
		fakes := startFakes(t)
		hold := make(chan struct{})
		fakes[upstreamfake.OpenAI].Set(upstreamfake.Behavior{HoldAfterFirst: hold})
		vars := map[string]string{"LIMITS_SCOPE": "cluster", "USER_CONCURRENCY_LIMIT": "1"}
		clk := &movingClock{at: time.Now()}
		a := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
		b := newStack(t, stackOptions{vars: vars, fakes: fakes, now: clk.Now, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
		tok := a.createUser("")

		// A streams, held after its first chunk: the user's one place in flight.
		path, body := pc.streamPathBody()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.proxy.URL+path, strings.NewReader(body))
		for k, v := range pc.auth(tok) {
			req.Header.Set(k, v)
		}
		resp, err := a.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			if strings.Contains(line, "Hello") {
				break
			}
		}
		if r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != 429 {
			t.Fatalf("B while A has the user's request in flight: %d %s", r.status, r.body)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			close(hold)
			for {
				if _, err := br.ReadString('\n'); err != nil {
					break
				}
			}
			resp.Body.Close()
		})
		wg.Wait()
		waitFor(t, "A's request to leave", func() bool {
			return b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, pc.auth(tok)).status == 200
		})

		// An instance that dies mid-request frees the place when its lease
		// runs out (10 minutes).
		fakes[upstreamfake.OpenAI].Set(upstreamfake.Behavior{HoldAfterFirst: make(chan struct{})})
		fz := &freezer{base: http.DefaultTransport}
		c := newStack(t, stackOptions{vars: vars, fakes: fakes, store: frozenRTDBStore(t, srv, fz)})
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, c.proxy.URL+path, strings.NewReader(body))
		for k, v := range pc.auth(tok) {
			req.Header.Set(k, v)
		}
		resp, err = c.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		br = bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil || strings.Contains(line, "Hello") {
				break
			}
		}
		fz.frozen.Store(true) // C dies: its lease is never given back
		cancel()
		resp.Body.Close()
		fakes[upstreamfake.OpenAI].Set(upstreamfake.Behavior{})
		if r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != 429 {
			t.Fatalf("B while C's lease runs: %d", r.status)
		}
		clk.advance(11 * time.Minute)
		if r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != 200 {
			t.Fatalf("B after C's lease ran out: %d %s", r.status, r.body)
		}
	})
}

type movingClock struct {
	mu sync.Mutex
	at time.Time
}

func (c *movingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *movingClock) advance(d time.Duration) {
	c.mu.Lock()
	c.at = c.at.Add(d)
	c.mu.Unlock()
}
