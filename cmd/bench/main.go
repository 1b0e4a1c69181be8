// Command bench measures what tollgate adds on top of a direct call: it
// starts a fake upstream and the proxy in-process, sends the same requests
// to both side by side, and prints one table of latencies, throughput,
// streaming time-to-first-chunk, cold start and memory per user, each with
// its ratio to the direct baseline measured in the same run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":16}`
const streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}`

const chatAnswer = `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}`

func main() {
	var (
		requests = flag.Int("n", 4000, "requests per latency measurement")
		duration = flag.Duration("d", 3*time.Second, "duration of each throughput measurement")
		users100 = flag.Int("users", 100000, "users imported for the memory-per-user figure")
		coldRuns = flag.Int("cold", 5, "cold-start runs")
	)
	flag.Parse()
	if err := run(os.Stdout, *requests, *duration, *users100, *coldRuns); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, n int, dur time.Duration, nUsers, coldRuns int) error {
	upstream := httptest.NewServer(fakeUpstream())
	defer upstream.Close()

	d, token, err := deps(upstream.URL)
	if err != nil {
		return err
	}
	proxySrv := httptest.NewServer(proxy.New(d))
	defer proxySrv.Close()

	direct := target{url: upstream.URL + "/v1/chat/completions", auth: "sk-operator"}
	viaProxy := target{url: proxySrv.URL + "/openai/v1/chat/completions", auth: token}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0, DisableCompression: true}}

	// Warm both paths: connections, caches, the user's first-use write.
	for i := 0; i < 200; i++ {
		if _, err := direct.do(client, chatBody); err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		if _, err := viaProxy.do(client, chatBody); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
	}

	warmTrips := d.Store.(*countingStore).reads.Load()
	fmt.Fprintf(out, "tollgate bench — %s, %d CPUs, %s\n\n", runtime.Version(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "%-40s %14s %14s %14s %10s\n", "measure", "direct", "proxied", "added", "ratio")
	row := func(name string, a, b float64, unit string) {
		fmt.Fprintf(out, "%-40s %12.1f%s %12.1f%s %12.1f%s %9.2fx\n", name, a, unit, b, unit, b-a, unit, b/a)
	}

	// Latency at concurrency 1, interleaved so both see the same machine.
	dl, pl := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := direct.do(client, chatBody); err != nil {
			return err
		}
		dl = append(dl, time.Since(t0))
		t0 = time.Now()
		if _, err := viaProxy.do(client, chatBody); err != nil {
			return err
		}
		pl = append(pl, time.Since(t0))
	}
	for _, q := range []struct {
		name string
		p    float64
	}{{"latency p50, concurrency 1", 0.50}, {"latency p99, concurrency 1", 0.99}, {"latency p99.9, concurrency 1", 0.999}} {
		row(q.name, us(pct(dl, q.p)), us(pct(pl, q.p)), "µs")
	}

	for _, c := range []int{1, 8, 32} {
		dr, err := throughput(client, direct, c, dur)
		if err != nil {
			return err
		}
		pr, err := throughput(client, viaProxy, c, dur)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-40s %11.0f/s %11.0f/s %14s %9.0f%%\n", fmt.Sprintf("throughput, concurrency %d", c), dr, pr, "", 100*pr/dr)
	}

	dt, pt := make([]time.Duration, 0, 200), make([]time.Duration, 0, 200)
	directStream := target{url: upstream.URL + "/v1/chat/completions", auth: "sk-operator"}
	for i := 0; i < 300; i++ {
		a, err := directStream.firstChunk(client, streamBody)
		if err != nil {
			return fmt.Errorf("direct stream: %w", err)
		}
		b, err := viaProxy.firstChunk(client, streamBody)
		if err != nil {
			return fmt.Errorf("proxied stream: %w", err)
		}
		dt, pt = append(dt, a), append(pt, b)
	}
	row("stream time-to-first-chunk p50", us(pct(dt, .5)), us(pct(pt, .5)), "µs")
	row("stream time-to-first-chunk p99", us(pct(dt, .99)), us(pct(pt, .99)), "µs")

	if coldRuns > 0 {
		base, cold, err := coldStart(coldRuns)
		if err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
		row("cold start: exec to first served request", ms(base), ms(cold), "ms")
	}
	if nUsers > 0 {
		per, err := memoryPerUser(nUsers)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-40s %14s %13.0fB\n", fmt.Sprintf("memory per user (%d users, memory store)", nUsers), "", per)
	}
	trips := d.Store.(*countingStore).reads.Load() - warmTrips
	fmt.Fprintf(out, "%-40s %14s %14d\n", "store Get/Modify calls after warm-up", "", trips)
	fmt.Fprintln(out, "\nratio = proxied / direct (throughput: proxied as % of direct); cold start baseline = a bare Go HTTP server binary.")
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

type target struct{ url, auth string }

func (t target) req(body string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, t.url, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+t.auth)
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
	if resp.StatusCode != 200 {
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
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		return 0, err
	}
	first := time.Since(t0)
	io.Copy(io.Discard, br)
	return first, nil
}

func throughput(c *http.Client, t target, conc int, dur time.Duration) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := t.do(c, chatBody); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(done.Load()) / dur.Seconds(), nil
}

// fakeUpstream answers chat completions at once, and streams three chunks
// with a pause after the first, so time-to-first-chunk shows buffering.
func fakeUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, chatAnswer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}`+"\n\n")
		f.Flush()
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`+"\n\n")
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`+"\n\n")
		io.WriteString(w, "data: [DONE]\n\n")
	})
}

// countingStore counts store reads, to show the hot path makes none for a
// cached user.
type countingStore struct {
	users.Store
	reads atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, t string) (*users.User, error) {
	s.reads.Add(1)
	return s.Store.Get(ctx, t)
}

func (s *countingStore) Modify(ctx context.Context, t string, create bool, fn users.ModifyFunc) (*users.User, error) {
	s.reads.Add(1)
	return s.Store.Modify(ctx, t, create, fn)
}

func deps(upstreamURL string) (*app.Deps, string, error) {
	cfg, err := config.FromMap(map[string]string{
		"GATEKEEPER":             "user_token",
		"ADMIN_KEY":              "bench-admin",
		"OPENAI_KEY":             "sk-operator",
		"OPENAI_BASE_URL":        upstreamURL,
		"TEXT_MODEL_RATE_LIMIT":  "0",
		"USER_CONCURRENCY_LIMIT": "0",
		"TOKEN_QUOTA_GPT4O":      "1000000000000",
		"LOG_LEVEL":              "warn",
	})
	if err != nil {
		return nil, "", err
	}
	store := &countingStore{Store: memory.New()}
	d := &app.Deps{Config: cfg, Store: store, Log: logging.New(io.Discard, "warn"), Now: time.Now, Drain: app.NewDrain()}
	u, err := d.Service().Create(context.Background(), users.Patch{})
	if err != nil {
		return nil, "", err
	}
	return d, u.Token, nil
}

// coldStart times exec → first 200 from /proxy/health for the local runner
// (memory store) against a bare net/http server binary built the same way.
func coldStart(runs int) (baseline, tollgate time.Duration, err error) {
	dir, err := os.MkdirTemp("", "tollgate-cold")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	bare := filepath.Join(dir, "bare.go")
	os.WriteFile(bare, []byte(`package main
import ("net/http";"os")
func main(){ http.HandleFunc("/proxy/health", func(w http.ResponseWriter, r *http.Request){ w.Write([]byte("ok")) }); http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil) }
`), 0o644)
	bareBin, tgBin := filepath.Join(dir, "bare"), filepath.Join(dir, "tollgate")
	if out, err := exec.Command("go", "build", "-o", bareBin, bare).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("build baseline: %v %s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", tgBin, "./cmd/local").CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("build cmd/local (run from the repo root): %v %s", err, out)
	}
	measure := func(bin string) (time.Duration, error) {
		var ts []time.Duration
		for i := 0; i < runs; i++ {
			port := freePort()
			cmd := exec.Command(bin)
			cmd.Env = []string{"PORT=" + port, "ADMIN_KEY=cold", "PATH=" + os.Getenv("PATH")}
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				return 0, err
			}
			var took time.Duration
			for deadline := t0.Add(10 * time.Second); ; {
				resp, err := http.Get("http://127.0.0.1:" + port + "/proxy/health")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						took = time.Since(t0)
						break
					}
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					return 0, fmt.Errorf("%s never answered", bin)
				}
				time.Sleep(500 * time.Microsecond)
			}
			cmd.Process.Kill()
			cmd.Wait()
			ts = append(ts, took)
		}
		return pct(ts, .5), nil
	}
	if baseline, err = measure(bareBin); err != nil {
		return 0, 0, err
	}
	tollgate, err = measure(tgBin)
	return baseline, tollgate, err
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// memoryPerUser imports n users shaped like real ones and divides the heap
// growth by n.
func memoryPerUser(n int) (float64, error) {
	store := memory.New()
	svc := &users.Service{Store: store, Now: time.Now}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const batch = 1000
	for i := 0; i < n; i += batch {
		ps := make([]users.Patch, 0, batch)
		for j := i; j < i+batch && j < n; j++ {
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
