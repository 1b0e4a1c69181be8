// Command bench measures what tollgate adds on top of a direct call. It
// starts a fake upstream, the proxy (memory store, user_token mode, every
// limit on, info-level request logs encoded and discarded) and, for
// reference, a bare httputil.ReverseProxy, all in this process; it sends the
// same requests to each side by side, interleaved, so that all three see
// the same machine, and prints one table: latencies, throughput, streaming
// time-to-first-chunk, cold start, memory per user, and the store round
// trips of the hot path (memory and Firebase RTDB stores).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

type options struct {
	requests   int           // latency samples per target
	duration   time.Duration // per throughput measurement and target
	users      int           // imported for memory per user
	coldRuns   int           // cold starts per binary
	rtdbN      int           // proxied requests counted against the RTDB fake
	cpuProfile string        // CPU profile of the throughput runs
	mutexProf  string        // mutex contention profile of the throughput runs
	only       string        // one target alone (runOnly)
}

func main() {
	var o options
	flag.IntVar(&o.requests, "n", 3000, "latency samples per target at concurrency 1")
	flag.DurationVar(&o.duration, "d", 3*time.Second, "time per target for each throughput measurement")
	flag.IntVar(&o.users, "users", 100000, "users imported for the memory-per-user figure (0: skip)")
	flag.IntVar(&o.coldRuns, "cold", 7, "cold starts per binary (0: skip)")
	flag.IntVar(&o.rtdbN, "rtdb", 1000, "proxied requests counted against the RTDB fake (0: skip)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the throughput runs to this file")
	flag.StringVar(&o.mutexProf, "mutexprofile", "", "write a mutex contention profile of the throughput runs to this file")
	flag.StringVar(&o.only, "only", "", "send -n requests one at a time to this target alone (direct, bare or tollgate) and print its cost per request")
	flag.Parse()
	run := run
	if o.only != "" {
		run = func(out io.Writer, o options) error { return runOnly(out, o.only, o) }
	}
	if err := run(os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// table prints rows as they are measured.
type table struct{ w io.Writer }

func (t table) header() {
	fmt.Fprintf(t.w, "%-44s %12s %12s %12s %12s %9s\n", "measure", "direct", "bare RP", "tollgate", "added", "ratio")
}

// row is a cost (latency, time): added = tollgate - direct, ratio =
// tollgate / direct.
func (t table) row(name string, direct, bare, tg float64, unit string) {
	fmt.Fprintf(t.w, "%-44s %10.1f%-2s %10.1f%-2s %10.1f%-2s %10.1f%-2s %8.2fx\n",
		name, direct, unit, bare, unit, tg, unit, tg-direct, unit, tg/direct)
}

// cold is a cold start: the baseline is a bare reverse-proxy binary, in
// the bare RP column.
func (t table) cold(name string, bare, tg float64) {
	fmt.Fprintf(t.w, "%-44s %12s %10.1fms %10.1fms %10.1fms %8.2fx\n", name, "", bare, tg, tg-bare, tg/bare)
}

// rate is a throughput: ratio = tollgate as a share of direct.
func (t table) rate(name string, direct, bare, tg float64) {
	fmt.Fprintf(t.w, "%-44s %10.0f/s %10.0f/s %10.0f/s %12s %8.0f%%\n", name, direct, bare, tg, "", 100*tg/direct)
}

func (t table) note(name, value string) { fmt.Fprintf(t.w, "%-44s %s\n", name, value) }

func run(out io.Writer, o options) error {
	env, err := startTargets()
	if err != nil {
		return err
	}
	defer env.close()
	t := table{out}
	fmt.Fprintf(out, "tollgate bench — %s, %d CPUs (%s), %s\n\n", runtime.Version(), runtime.NumCPU(), cpuModel(),
		time.Now().UTC().Format(time.RFC3339))
	t.header()

	if err := env.warm(); err != nil {
		return err
	}
	lat, err := env.latencies(o.requests)
	if err != nil {
		return err
	}
	for _, q := range []struct {
		name string
		p    float64
	}{{"latency p50, concurrency 1", .50}, {"latency p99, concurrency 1", .99}, {"latency p99.9, concurrency 1", .999}} {
		t.row(q.name, us(pct(lat.direct, q.p)), us(pct(lat.bare, q.p)), us(pct(lat.proxied, q.p)), "µs")
	}
	// Against the bare ReverseProxy of this run: what tollgate's own
	// work costs beyond the least any Go reverse proxy costs.
	p50 := [3]float64{us(pct(lat.direct, .5)), us(pct(lat.bare, .5)), us(pct(lat.proxied, .5))}
	var c32 [3]float64

	// The whole throughput phase: the three targets' goroutines are told
	// apart by their stacks (proxy.(*handler) is tollgate's).
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if o.mutexProf != "" {
		runtime.SetMutexProfileFraction(1)
	}
	for _, c := range []int{1, 8, 32} {
		d, b, p, err := env.throughput(c, o.duration)
		if err != nil {
			return err
		}
		t.rate(fmt.Sprintf("throughput, concurrency %d", c), d, b, p)
		if c == 32 {
			c32 = [3]float64{d, b, p}
		}
	}
	t.note("against the bare ReverseProxy", fmt.Sprintf("p50 %.2fx (added over direct %.2fx); throughput at concurrency 32 %.2f",
		p50[2]/p50[1], (p50[2]-p50[0])/(p50[1]-p50[0]), c32[2]/c32[1]))
	stopProfile()
	if o.mutexProf != "" {
		if err := writeProfile("mutex", o.mutexProf); err != nil {
			return err
		}
		runtime.SetMutexProfileFraction(0)
	}

	ttfc, err := env.firstChunks(300)
	if err != nil {
		return err
	}
	t.row("stream time-to-first-chunk p50", us(pct(ttfc.direct, .5)), us(pct(ttfc.bare, .5)), us(pct(ttfc.proxied, .5)), "µs")
	t.row("stream time-to-first-chunk p99", us(pct(ttfc.direct, .99)), us(pct(ttfc.bare, .99)), us(pct(ttfc.proxied, .99)), "µs")

	if o.coldRuns > 0 {
		cs, err := coldStart(env.upProxied.URL, o.coldRuns)
		if err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
		t.cold("cold start: exec to first proxied answer", ms(cs.bare), ms(cs.tollgate))
		t.note("  tollgate's package init (GODEBUG=inittrace)", cs.inits)
		t.note("  binary size", cs.sizes)
	}
	if o.users > 0 {
		per, err := memoryPerUser(o.users)
		if err != nil {
			return err
		}
		t.note(fmt.Sprintf("memory per user (%d imported, memory store)", o.users), fmt.Sprintf("%.0f B", per))
	}
	t.note("upstream connections opened, whole run", env.conns())
	t.note("memory store calls per proxied request", env.store.perRequest())
	if o.rtdbN > 0 {
		r, err := rtdbRoundTrips(env.upProxied.URL, o.rtdbN)
		if err != nil {
			return fmt.Errorf("rtdb: %w", err)
		}
		t.note(fmt.Sprintf("RTDB round trips, %d requests of a cached user", o.rtdbN), r)
	}
	fmt.Fprintln(out, "\ndirect: client → fake upstream; bare RP: through a bare httputil.ReverseProxy (no gatekeeper,")
	fmt.Fprintln(out, "parsing, usage or logging), the floor of any Go reverse proxy; tollgate: through the proxy function.")
	fmt.Fprintln(out, "added = tollgate − direct; ratio = tollgate / direct (throughput: tollgate as % of direct).")
	fmt.Fprintln(out, "\"against the bare ReverseProxy\": tollgate / bare RP of this run, p50 and its added part, and throughput.")
	fmt.Fprintln(out, "All three run in this process on the same cores, measured in the same run, interleaved.")
	fmt.Fprintln(out, "Cold start: median of runs alternating the deployed path (the proxy function registered by")
	fmt.Fprintln(out, "function.go, served by the Functions Framework, Firebase RTDB store) with a bare Go")
	fmt.Fprintln(out, "reverse-proxy binary (bare RP column), exec to the first chat completion answered 200 for a")
	fmt.Fprintln(out, "user's token; added and ratio are against that binary.")
	return nil
}

// startCPUProfile profiles the process into path ("": not at all) until
// stop, which may be called more than once.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		f.Close()
	}), nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuModel is the processor's name from /proc/cpuinfo ("" elsewhere).
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
