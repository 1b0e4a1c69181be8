package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/lifecycle"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

const (
	chatBody   = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16}`
	streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}`
	chatAnswer = `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}`
	// operatorKey is the upstream key: the direct and bare targets send it
	// themselves, tollgate adds it.
	operatorKey = "sk-operator"
)

// proxyEnv is tollgate's configuration in the bench: user_token mode
// with every limit on. Each client goroutine is one user, so the default
// concurrency limit (one request in flight per user) holds; the rate limit
// is set high enough for one user to load the machine.
func proxyEnv(upstreamURL string) map[string]string {
	return map[string]string{
		"GATEKEEPER":             "user_token",
		"GATEKEEPER_STORE":       "memory",
		"ADMIN_KEY":              "bench-admin",
		"OPENAI_KEY":             operatorKey,
		"OPENAI_BASE_URL":        upstreamURL,
		"TEXT_MODEL_RATE_LIMIT":  "1000000", // per minute: the most allowed
		"USER_CONCURRENCY_LIMIT": "1",
		"MAX_IPS_PER_USER":       "5",
		"TOKEN_QUOTA_GPT4O":      "1000000000000",
	}
}

// benchUsers is how many users send tollgate's requests: one per client
// goroutine at the highest concurrency.
const benchUsers = 32

// targets are the three ways to the fake upstream. Each has an upstream
// server of its own (the same handler), so that the connections each
// opens to it can be counted.
type targets struct {
	upDirect, upBare, upProxied *upstream
	bareSrv, proxySrv           *httptest.Server
	store                       *countingStore
	client                      *http.Client

	direct, bare, proxied target
}

// upstream is a fake upstream server that counts the connections made to
// it.
type upstream struct {
	*httptest.Server
	conns, requests atomic.Int64
}

func startUpstream() *upstream {
	u := &upstream{}
	h := fakeUpstream()
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	return u
}

func startTargets() (*targets, error) {
	t := &targets{upDirect: startUpstream(), upBare: startUpstream(), upProxied: startUpstream()}
	cfg, err := config.FromMap(proxyEnv(t.upProxied.URL))
	if err != nil {
		t.close()
		return nil, err
	}
	t.store = newCountingStore(memory.New())
	d := proxy.Deps{Config: cfg, Store: t.store, Log: logging.New(io.Discard, "info"), Now: time.Now}
	svc := &users.Service{Store: d.Store, Defaults: cfg.TokenQuota, Now: d.Now}
	tokens := make([]string, benchUsers)
	for i := range tokens {
		u, err := svc.Create(context.Background(), users.Patch{})
		if err != nil {
			t.close()
			return nil, err
		}
		tokens[i] = u.Token
	}
	upURL, _ := url.Parse(t.upBare.URL)
	bare := httputil.NewSingleHostReverseProxy(upURL)
	bare.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	bare.BufferPool = &bufferPool{} // as tollgate has: the floor is the cheapest setup
	bare.ErrorLog = log.New(io.Discard, "", 0)
	t.bareSrv = httptest.NewServer(bare)
	t.proxySrv = httptest.NewServer(lifecycle.NewDrain().Wrap(proxy.New(d)))
	t.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, DisableCompression: true}}
	t.direct = target{url: t.upDirect.URL + "/v1/chat/completions", auths: []string{operatorKey}}
	t.bare = target{url: t.bareSrv.URL + "/v1/chat/completions", auths: []string{operatorKey}}
	t.proxied = target{url: t.proxySrv.URL + "/openai/v1/chat/completions", auths: tokens}
	return t, nil
}

func (t *targets) close() {
	for _, s := range []*httptest.Server{t.proxySrv, t.bareSrv} {
		if s != nil {
			s.Close()
		}
	}
	for _, u := range []*upstream{t.upDirect, t.upBare, t.upProxied} {
		u.Close()
	}
}

// conns reports the connections opened to each upstream so far, and the
// requests they carried.
func (t *targets) conns() string {
	var parts []string
	for _, x := range []struct {
		name string
		u    *upstream
	}{{"direct", t.upDirect}, {"bare RP", t.upBare}, {"tollgate", t.upProxied}} {
		parts = append(parts, fmt.Sprintf("%s %d for %d requests", x.name, x.u.conns.Load(), x.u.requests.Load()))
	}
	return strings.Join(parts, "; ")
}

// warm opens connections and fills caches on all three paths, and takes
// the user's first use (its IP recorded) out of the figures.
func (t *targets) warm() error {
	for i := range 300 {
		for _, tg := range []target{t.direct, t.bare, t.proxied} {
			if _, err := tg.as(i).do(t.client, chatBody); err != nil {
				return err
			}
		}
	}
	t.store.reset()
	return nil
}

type samples struct{ direct, bare, proxied []time.Duration }

// latencies sends n requests to each target one at a time, interleaved.
func (t *targets) latencies(n int) (samples, error) {
	var s samples
	for range n {
		for _, x := range []struct {
			tg  target
			out *[]time.Duration
		}{{t.direct, &s.direct}, {t.bare, &s.bare}, {t.proxied, &s.proxied}} {
			t0 := time.Now()
			if _, err := x.tg.do(t.client, chatBody); err != nil {
				return s, err
			}
			*x.out = append(*x.out, time.Since(t0))
		}
	}
	return s, nil
}

// throughput measures requests per second at concurrency c, in rounds that
// alternate the targets so that other load on the machine falls on all.
func (t *targets) throughput(c int, d time.Duration) (direct, bare, proxied float64, err error) {
	const rounds = 3
	var n [3]int64
	for range rounds {
		for i, tg := range []target{t.direct, t.bare, t.proxied} {
			k, err := load(t.client, tg, c, d/rounds)
			if err != nil {
				return 0, 0, 0, err
			}
			n[i] += k
		}
	}
	secs := d.Seconds()
	return float64(n[0]) / secs, float64(n[1]) / secs, float64(n[2]) / secs, nil
}

// load sends requests from c goroutines for d and counts the answers.
func load(client *http.Client, tg target, c int, d time.Duration) (int64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range c {
		tg := tg.as(g) // each goroutine is one user
		wg.Go(func() {
			for time.Now().Before(stop) {
				if _, err := tg.do(client, chatBody); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return done.Load(), nil
}

// firstChunks times n streamed requests to each target, to the first
// event received.
func (t *targets) firstChunks(n int) (samples, error) {
	var s samples
	for range n {
		for _, x := range []struct {
			tg  target
			out *[]time.Duration
		}{{t.direct, &s.direct}, {t.bare, &s.bare}, {t.proxied, &s.proxied}} {
			d, err := x.tg.firstChunk(t.client, streamBody)
			if err != nil {
				return s, fmt.Errorf("stream via %s: %w", x.tg.url, err)
			}
			*x.out = append(*x.out, d)
		}
	}
	return s, nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// target is a URL and the keys or user tokens to send it, one per client
// goroutine (requests use the first).
type target struct {
	url   string
	auths []string
}

// as is the target as client goroutine i sends it.
func (t target) as(i int) target {
	t.auths = t.auths[i%len(t.auths):]
	return t
}

func (t target) req(body string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, t.url, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+t.auths[0])
	r.Header.Set("Content-Type", "application/json")
	return r
}

func (t target) do(c *http.Client, body string) (int, error) {
	resp, err := c.Do(t.req(body))
	if err != nil {
		return 0, err
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d from %s", resp.StatusCode, t.url)
	}
	return int(n), nil
}

func (t target) firstChunk(c *http.Client, body string) (time.Duration, error) {
	t0 := time.Now()
	resp, err := c.Do(t.req(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		return 0, err
	}
	first := time.Since(t0)
	_, _ = io.Copy(io.Discard, br)
	return first, nil
}

// fakeUpstream answers chat completions at once, and streams three chunks
// with a pause after the first, so time-to-first-chunk shows buffering.
func fakeUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, chatAnswer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}`+"\n\n")
		f.Flush()
		time.Sleep(2 * time.Millisecond)
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if a, ok := b.p.Get().(*[32 << 10]byte); ok {
		return a[:]
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(s []byte) {
	if cap(s) == 32<<10 {
		b.p.Put((*[32 << 10]byte)(s[:32<<10]))
	}
}
