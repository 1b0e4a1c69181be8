package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// A refusal the request provoked (a 403 for a model the operator's project
// lacks, someone else's cachedContent) is relayed, and the key stays in
// service: one user must not be able to take every key out of service.
func TestProvokedRefusalKeepsTheKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		pc   provCase
		kind upstreamfake.Kind
		vars map[string]string
	}{
		{"openai 403", provCases[0], upstreamfake.OpenAI, map[string]string{"OPENAI_KEY": "sk-only-key-kkkk"}},
		{"anthropic 403", provCases[1], upstreamfake.Anthropic, map[string]string{"ANTHROPIC_KEY": "sk-ant-only-key-llll"}},
		{"google 403", provCases[2], upstreamfake.Google, map[string]string{"GOOGLE_AI_KEY": "AIza-only-key-mmmm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.vars)
			up := e.fake(tc.kind)
			tk := e.user(users.Patch{})
			up.Set(upstreamfake.Behavior{Status: 403})
			for i := range 3 {
				a := e.do(call{path: tc.pc.path, body: tc.pc.body, header: tc.pc.auth(tk)})
				if a.status != 403 || a.header.Get(headerError) != "" {
					t.Fatalf("request %d: %d (proxy error %q), want the upstream's 403 relayed: %s", i, a.status, a.header.Get(headerError), a.body)
				}
			}
			up.Set(upstreamfake.Behavior{})
			if a := e.do(call{path: tc.pc.path, body: tc.pc.body, header: tc.pc.auth(tk)}); a.status != 200 {
				t.Fatalf("after the refusals: %d %s; the only key was set aside", a.status, a.body)
			}
			if strings.Contains(e.logs.String(), "set aside") {
				t.Error("a provoked refusal set a key aside")
			}
		})
	}
}

// Anthropic's validation errors quote the request: a content block whose
// type is the low-credit phrase must not set the operator's key aside.
func TestEchoedCreditPhraseKeepsTheAnthropicKey(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(string(b), `"type":"Your credit balance is too low"`) {
			w.WriteHeader(400)
			io.WriteString(w, `{"type":"error","error":{"type":"invalid_request_error","message":"messages.0.content.0: Input tag 'Your credit balance is too low' found using 'type' does not match any of the expected tags: 'text', 'image', 'tool_use', 'tool_result'"}}`)
			return
		}
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":1}}`)
	}))
	defer up.Close()
	e := newEnv(t, map[string]string{"ANTHROPIC_BASE_URL": up.URL})
	mallory, alice := e.user(users.Patch{}), e.user(users.Patch{})
	h := func(tk string) map[string]string { return map[string]string{"x-api-key": tk} }
	if a := e.do(call{path: "/proxy/anthropic/v1/messages", header: h(mallory),
		body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"Your credit balance is too low"}]}]}`}); a.status != 400 {
		t.Fatalf("crafted request: %d %s, want the upstream's 400 relayed", a.status, a.body)
	}
	a := e.do(call{path: "/proxy/anthropic/v1/messages", header: h(alice),
		body: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}`})
	if a.status != 200 {
		t.Errorf("after one user's crafted request, another user's request gets %d: %s", a.status, a.body)
	}
}

// A key set aside is rechecked with the model list once its time has come
// (from a request, never a timer), and comes back when it works; GET /
// counts keys in service and set aside, never showing one.
func TestKeySetAsideIsRecheckedAndComesBack(t *testing.T) {
	pc := provCases[0]
	e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-flaky-key-nnnn,sk-good-key-oooo"})
	up := e.fake(upstreamfake.OpenAI)
	up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-flaky-key-nnnn": 401}})
	tk := e.user(users.Patch{})
	if a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	info := e.do(call{method: "GET", path: "/proxy/"})
	mustContain(t, "info", string(info.body), `"keys":{"inService":1,"setAside":1}`)
	if strings.Contains(string(info.body), "sk-") {
		t.Errorf("GET / shows a key: %s", info.body)
	}

	up.Set(upstreamfake.Behavior{}) // the key works again
	checks := func() int {
		n := 0
		for _, r := range up.Requests() {
			if r.Method == "GET" && r.Path == "/v1/models" && r.Key == "sk-flaky-key-nnnn" {
				n++
			}
		}
		return n
	}
	e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	if checks() != 0 {
		t.Fatal("rechecked before its time")
	}
	e.clock.Advance(recheckEvery)
	for range 3 {
		e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	}
	if !up.WaitFor(5*time.Second, func(*upstreamfake.Fake) bool { return checks() == 1 }) {
		t.Fatalf("%d rechecks, want exactly 1 (one at a time, once per period)", checks())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(e.do(call{method: "GET", path: "/proxy/"}).body), `"keys":{"inService":2,"setAside":0}`) {
		if time.Now().After(deadline) {
			t.Fatal("the key did not come back into service")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := len(up.Requests())
	for range 2 {
		e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	}
	used := map[string]bool{}
	for _, r := range up.Requests()[before:] {
		used[r.Key] = true
	}
	if !used["sk-flaky-key-nnnn"] {
		t.Errorf("the key back in service is not used: %v", used)
	}
	mustContain(t, "log", e.logs.String(), "back in service")
}

// A Google key set aside (API_KEY_INVALID, SERVICE_DISABLED,
// CONSUMER_SUSPENDED) is rechecked with the model list like every other
// provider's, and comes back once the operator has fixed it (without a
// check it stayed out until the instance restarted).
func TestGoogleKeySetAsideIsRechecked(t *testing.T) {
	pc := provCases[2]
	e := newEnv(t, map[string]string{"GOOGLE_AI_KEY": "AIza-flaky-google-key-nnnn,AIza-good-google-key-oooo"})
	up := e.fake(upstreamfake.Google)
	up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"AIza-flaky-google-key-nnnn": 400}})
	tk := e.user(users.Patch{})
	for range 2 {
		e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	}
	mustContain(t, "info", string(e.do(call{method: "GET", path: "/proxy/"}).body), `"keys":{"inService":1,"setAside":1}`)
	up.Set(upstreamfake.Behavior{}) // the operator fixed the key
	e.clock.Advance(2 * recheckEvery)
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(googleKeys(e), `"inService":2`) {
		e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
		if time.Now().After(deadline) {
			t.Fatalf("the Google key never came back into service: %s", googleKeys(e))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func googleKeys(e *env) string {
	b := string(e.do(call{method: "GET", path: "/proxy/"}).body)
	i := strings.Index(b, `"provider":"google-ai"`)
	if i < 0 {
		return b
	}
	j := strings.Index(b[i:], `"keys":`)
	return b[i+j : i+j+40]
}
