package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// bareProxy is the cold-start baseline: the least a Go binary does to
// answer the same request, a bare reverse proxy to the same upstream.
const bareProxy = `package main

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	u, _ := url.Parse(os.Getenv("UPSTREAM"))
	rp := httputil.NewSingleHostReverseProxy(u)
	http.Handle("/proxy/openai/", http.StripPrefix("/proxy/openai", rp))
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`

type coldResult struct {
	bare, tollgate time.Duration // medians
	inits          string        // tollgate's package init, summarised
	sizes          string        // the binaries' sizes
}

// coldStart builds the deployed path (cmd/bench/deployed: the root
// package's Cloud Functions served by the Functions Framework, as the Go
// buildpack builds them, serving FUNCTION_TARGET=proxy) and the baseline,
// then times, for each, exec to the first proxied chat completion answered
// 200: start-up, configuration, opening the Firebase RTDB store (the real
// SDK against the in-process wire-protocol fake), listening, the user's
// token looked up, and one request through to the upstream. Runs
// alternate between the two binaries.
func coldStart(upstreamURL string, runs int) (coldResult, error) {
	var res coldResult
	// The SDK would go to a real emulator named in the environment.
	os.Unsetenv("FIREBASE_DATABASE_EMULATOR_HOST")
	tb := &benchTB{}
	defer tb.cleanup()
	db := rtdbfake.Start(tb)
	token, err := seedUser(db.URL())
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "tollgate-cold")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bareSrc := filepath.Join(dir, "bare.go")
	if err := os.WriteFile(bareSrc, []byte(bareProxy), 0o644); err != nil {
		return res, err
	}
	bareBin, tgBin := filepath.Join(dir, "bare"), filepath.Join(dir, "tollgate")
	if out, err := exec.Command("go", "build", "-o", bareBin, bareSrc).CombinedOutput(); err != nil {
		return res, fmt.Errorf("build baseline: %v %s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", tgBin, "./cmd/bench/deployed").CombinedOutput(); err != nil {
		return res, fmt.Errorf("build cmd/bench/deployed (run from the repo root): %v %s", err, out)
	}
	env := func(port string) []string {
		return []string{"PORT=" + port, "PATH=" + os.Getenv("PATH"), "UPSTREAM=" + upstreamURL,
			"FUNCTION_TARGET=proxy", "GATEKEEPER=user_token", "ADMIN_KEY=cold-admin",
			"GATEKEEPER_STORE=firebase_rtdb", "FIREBASE_RTDB_URL=" + db.URL(),
			"OPENAI_KEY=" + operatorKey, "OPENAI_BASE_URL=" + upstreamURL}
	}
	var bare, tg []time.Duration
	for range runs {
		for _, x := range []struct {
			bin string
			out *[]time.Duration
		}{{bareBin, &bare}, {tgBin, &tg}} {
			d, err := firstAnswer(x.bin, env, token)
			if err != nil {
				return res, err
			}
			*x.out = append(*x.out, d)
		}
	}
	res.bare, res.tollgate = pct(bare, .5), pct(tg, .5)
	res.inits, err = initTrace(tgBin, env, 3)
	if err != nil {
		return res, err
	}
	res.sizes = fmt.Sprintf("%.0f MB (bare reverse proxy: %.0f MB)", fileMB(tgBin), fileMB(bareBin))
	return res, nil
}

func fileMB(path string) float64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return float64(fi.Size()) / (1 << 20)
}

// firstAnswer starts bin and returns how long it took to answer a
// proxied request carrying token. The request is retried every 200µs
// until the port accepts it.
func firstAnswer(bin string, env func(port string) []string, token string) (time.Duration, error) {
	port := freePort()
	cmd := exec.Command(bin)
	cmd.Env = env(port)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	url := "http://127.0.0.1:" + port + "/proxy/openai/v1/chat/completions"
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for deadline := t0.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			continue // not listening yet
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s answered %d", filepath.Base(bin), resp.StatusCode)
		}
		return time.Since(t0), nil
	}
	return 0, fmt.Errorf("%s never answered", filepath.Base(bin))
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

var initLine = regexp.MustCompile(`^init (\S+) @[0-9.]+ ms, ([0-9.]+) ms clock`)

// initTrace runs bin runs times with GODEBUG=inittrace=1 and summarises its
// package initialisation (the median run): the time spent in init
// functions, tollgate's own share, and the costliest packages.
func initTrace(bin string, env func(port string) []string, runs int) (string, error) {
	type pkg struct {
		name  string
		clock float64
	}
	type trace struct {
		pkgs  []pkg
		total float64
	}
	var traces []trace
	for range runs {
		cmd := exec.Command(bin)
		cmd.Env = append(env(freePort()), "GODEBUG=inittrace=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return "", err
		}
		time.Sleep(time.Second)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		var tr trace
		sc := bufio.NewScanner(&stderr)
		for sc.Scan() {
			m := initLine.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			clock, _ := strconv.ParseFloat(m[2], 64)
			tr.pkgs = append(tr.pkgs, pkg{m[1], clock})
			tr.total += clock
		}
		if len(tr.pkgs) == 0 {
			return "no inittrace output", nil
		}
		traces = append(traces, tr)
	}
	slices.SortFunc(traces, func(a, b trace) int { return int(a.total*1000 - b.total*1000) })
	med := traces[len(traces)/2]
	slices.SortFunc(med.pkgs, func(a, b pkg) int { return int(b.clock*1000 - a.clock*1000) })
	var top []string
	for _, p := range med.pkgs[:min(3, len(med.pkgs))] {
		top = append(top, fmt.Sprintf("%s %.1f", p.name, p.clock))
	}
	own := 0.0
	for _, p := range med.pkgs {
		if strings.HasPrefix(p.name, "tollgate.dev/") {
			own += p.clock
		}
	}
	return fmt.Sprintf("%d packages, %.1f ms in init functions (traced), of which tollgate's own %.1f ms; top: %s ms",
		len(med.pkgs), med.total, own, strings.Join(top, ", ")), nil
}

// seedUser creates, through the RTDB store, the user whose token the cold
// starts carry.
func seedUser(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := rtdb.Open(ctx, rtdb.Options{URL: url})
	if err != nil {
		return "", err
	}
	defer store.Close(ctx)
	u, err := (&users.Service{Store: store, Now: time.Now}).Create(ctx, users.Patch{})
	if err != nil {
		return "", err
	}
	return u.Token, nil
}
