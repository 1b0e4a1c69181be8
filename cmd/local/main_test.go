package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles cmd/local once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tollgate-local")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		// A developer's own settings must not leak into these runs.
		if k == "PATH" || k == "HOME" || k == "TMPDIR" {
			env = append(env, kv)
		}
	}
	return env
}

// TestInvalidConfigurationStopsStartup runs the binary with each invalid
// setting: it must exit non-zero with one line naming the variable.
func TestInvalidConfigurationStopsStartup(t *testing.T) {
	bin := buildBinary(t)
	cases := []struct {
		env      []string
		mentions string
	}{
		{[]string{"GATEKEEPER=foo"}, "GATEKEEPER"},
		{[]string{"ADMIN_WHITELIST=10.0.0.0/33"}, "ADMIN_WHITELIST"},
		{[]string{"QUOTA_REFRESH_PERIOD=every tuesday"}, "QUOTA_REFRESH_PERIOD"},
		{[]string{"GATEKEEPER_STORE=redis"}, "GATEKEEPER_STORE"},
		{[]string{"TEXT_MODEL_RATE_LIMIT=fast"}, "TEXT_MODEL_RATE_LIMIT"},
		{[]string{"GATEKEEPER=proxy_key"}, "PROXY_KEY"},
		{[]string{"GATEKEEPER_STORE=firebase_rtdb"}, "FIREBASE_RTDB_URL"},
		{[]string{"USER_CACHE_TTL=forever"}, "USER_CACHE_TTL"},
	}
	for _, tc := range cases {
		t.Run(tc.mentions, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = append(append(baseEnv(), "PORT=0"), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatalf("started with %v", tc.env)
			}
			if ctx.Err() != nil {
				t.Fatalf("did not exit with %v", tc.env)
			}
			out := strings.TrimSpace(stderr.String())
			last := out[strings.LastIndex(out, "\n")+1:]
			if !strings.Contains(last, tc.mentions) || !strings.Contains(last, "invalid configuration") && !strings.Contains(last, "required") {
				t.Fatalf("error line %q does not name %s", last, tc.mentions)
			}
		})
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// TestWalkThrough is the README's curl walk-through: create a user through
// the admin API, call the proxy with its token, see the usage charged; then
// SIGTERM stops the process cleanly.
func TestWalkThrough(t *testing.T) {
	bin := buildBinary(t)
	sawAuth := make(chan string, 10)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth <- r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
	}))
	defer upstream.Close()

	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(baseEnv(), "PORT="+port, "ADMIN_KEY=walkthrough-admin-key", "OPENAI_KEY=sk-operator", "OPENAI_BASE_URL="+upstream.URL)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	base := "http://127.0.0.1:" + port

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/proxy/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	call := func(method, path, auth, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}

	status, created := call("POST", "/admin/users", "walkthrough-admin-key", `{"type":"normal"}`)
	token, _ := created["token"].(string)
	if status != http.StatusCreated || token == "" {
		t.Fatalf("create user: %d %v", status, created)
	}
	status, out := call("POST", "/proxy/openai/v1/chat/completions", token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`)
	if status != 200 {
		t.Fatalf("proxy call: %d %v", status, out)
	}
	if got := <-sawAuth; got != "Bearer sk-operator" {
		t.Fatalf("upstream saw Authorization %q, want the operator's key", got)
	}
	status, user := call("GET", "/admin/users/"+token, "walkthrough-admin-key", "")
	counts, _ := user["tokenCounts"].(map[string]any)
	if status != 200 || user["promptCount"] != float64(1) || counts["gpt4o"] != float64(18) {
		t.Fatalf("usage after one call: %d %v", status, user)
	}
	if !strings.Contains(stdout.String(), base+"/admin") && !strings.Contains(stdout.String(), "localhost:"+port) {
		t.Errorf("start-up banner does not print the URLs: %s", stdout.String())
	}
	if strings.Contains(stderr.String(), token) || strings.Contains(stderr.String(), "walkthrough-admin-key") || strings.Contains(stderr.String(), "sk-operator") {
		t.Errorf("a secret or full token reached the log:\n%s", stderr.String())
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit within 15s of SIGTERM")
	}
}

// syncBuffer is a bytes.Buffer the process's output copiers and the test
// may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
