package proxy

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/users"
)

// formatOf is the API format of pc's request.
func formatOf(pc provCase) *providers.Format {
	switch pc.kind {
	case upstreamfake.Anthropic:
		return providers.AnthropicMessages
	case upstreamfake.Google:
		return providers.GoogleGenerate
	case upstreamfake.Mistral:
		return providers.MistralChat
	}
	return providers.OpenAIChat
}

// cutShortCharge is what a stream cut after the fake's first chunk
// ("Hello from", 10 bytes: 3 tokens) is charged: the reported prompt
// where the provider reports it up front (Anthropic, Google: 11), else
// the proxy's estimate of the prompt.
func cutShortCharge(t *testing.T, pc provCase) int64 {
	switch pc.kind {
	case upstreamfake.Anthropic, upstreamfake.Google:
		return 11 + 3
	}
	body := pc.stream
	rq, err := formatOf(pc).Parse([]byte(body), 0, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return rq.PromptTokens + 3
}

// A client that goes away mid-stream cancels the upstream request and is
// charged an estimate of what was relayed.
func TestClientDisconnectMidStream(t *testing.T) {
	for _, pc := range provCases {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, nil)
			tk := e.user(users.Patch{})
			up := e.fake(pc.kind)
			hold := make(chan struct{}) // never released: only the client can end this
			defer close(hold)
			up.Set(upstreamfake.Behavior{HoldAfterFirst: hold})

			e.streamUntil(t, pc.streamCall(tk), "Hello from", "its first chunk")()

			if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 }) {
				t.Fatalf("the upstream request was not cancelled (in flight %d)", up.InFlight())
			}
			e.logs.waitLines(t, `"httpRequest"`, 1)
			u := e.get(tk)
			if want := cutShortCharge(t, pc); u.PromptCount != 1 || u.TokenCounts[pc.family] != want {
				t.Errorf("charged %d prompts, %v; want 1 prompt and %s=%d", u.PromptCount, u.TokenCounts, pc.family, want)
			}
		})
	}
}

// An upstream that breaks a stream: the client is told in the stream's
// own error event, and charged an estimate of what was relayed.
func TestUpstreamBreaksStream(t *testing.T) {
	marker := map[upstreamfake.Kind]string{
		upstreamfake.OpenAI:    `"code":"upstream_stream_broken"`,
		upstreamfake.Mistral:   `"finish_reason":"error"`, // the Mistral SDK validates every chunk
		upstreamfake.Anthropic: "event: error\ndata: {\"error\":{\"message\":",
		upstreamfake.Google:    `"status":"UNAVAILABLE"`,
	}
	for _, pc := range provCases {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, nil)
			tk := e.user(users.Patch{})
			e.fake(pc.kind).Set(upstreamfake.Behavior{CloseAfter: 1})
			a := e.do(pc.streamCall(tk))
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			mustContain(t, "stream", string(a.body), "Hello from")
			mustContain(t, "stream", string(a.body), marker[pc.kind])
			e.logs.waitLines(t, `"httpRequest"`, 1)
			if u := e.get(tk); u.TokenCounts[pc.family] != cutShortCharge(t, pc) {
				t.Errorf("charged %v; want %s=%d", u.TokenCounts, pc.family, cutShortCharge(t, pc))
			}
		})
	}
	t.Run("openai SDK sees an error", func(t *testing.T) {
		e := newEnv(t, nil)
		tk := e.user(users.Patch{})
		e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{CloseAfter: 2})
		client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/openai/v1"), option.WithAPIKey(tk), option.WithMaxRetries(0))
		stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
			Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		for stream.Next() {
		}
		if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "incomplete") {
			t.Errorf("stream error %v; want the proxy's message", err)
		}
	})
}

// A stream with lines that are not valid SSE or JSON is relayed as is and
// still charged from its usage.
func TestMalformedStream(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	for _, pc := range provCases {
		e.fake(pc.kind).Set(upstreamfake.Behavior{Malformed: true})
		a := e.do(pc.streamCall(tk))
		if a.status != 200 {
			t.Fatalf("%s: status %d: %s", pc.kind, a.status, a.body)
		}
		mustContain(t, string(pc.kind)+" stream", string(a.body), `data: {"this is": not json`)
		mustContain(t, string(pc.kind)+" stream", string(a.body), "upstream!")
		if u := e.get(tk); u.TokenCounts[pc.family] != 18 {
			t.Errorf("%s: charged %v, want %s=18", pc.kind, u.TokenCounts, pc.family)
		}
	}
}

// Upstream down: 502; upstream too slow: 504. Both in the provider's
// shape, with a clear message, and nothing charged.
func TestUpstreamUnreachable(t *testing.T) {
	for _, pc := range provCases {
		t.Run("down/"+string(pc.kind), func(t *testing.T) {
			closed := closedURL(t)
			e := newEnv(t, map[string]string{"OPENAI_BASE_URL": closed, "ANTHROPIC_BASE_URL": closed, "GOOGLE_AI_BASE_URL": closed, "MISTRAL_AI_BASE_URL": closed})
			tk := e.user(users.Patch{})
			a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
			if a.status != 502 || a.header.Get(headerErrorStatus) != "502" {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			pc.shape(t, a)
			mustContain(t, "error", string(a.body), "could not be reached")
			if strings.Contains(string(a.body), "127.0.0.1") {
				t.Errorf("the error shows the upstream's address: %s", a.body)
			}
			if u := e.get(tk); u.PromptCount != 0 {
				t.Error("charged for an unreachable upstream")
			}
		})
		t.Run("slow/"+string(pc.kind), func(t *testing.T) {
			e := newEnv(t, nil, Options{ResponseHeaderTimeout: 100 * time.Millisecond})
			tk := e.user(users.Patch{})
			up := e.fake(pc.kind)
			up.Set(upstreamfake.Behavior{FirstByteDelay: 30 * time.Second})
			a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
			if a.status != 504 || a.header.Get(headerErrorStatus) != "504" {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			pc.shape(t, a)
			mustContain(t, "error", string(a.body), "did not answer in time")
			if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 }) {
				t.Error("the timed-out upstream request was not cancelled")
			}
			if u := e.get(tk); u.PromptCount != 0 {
				t.Error("charged for a timed-out upstream")
			}
		})
	}
}

// Several keys per provider are used in turn; a rejected key is set aside
// and a rate-limited one retried on the next, with the same body.
func TestKeyRotation(t *testing.T) {
	pc := provCases[0]
	t.Run("bad key set aside", func(t *testing.T) {
		e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-bad-key-aaaa, sk-good-key-bbbb"})
		up := e.fake(upstreamfake.OpenAI)
		up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-bad-key-aaaa": 401}})
		tk := e.user(users.Patch{})
		for i := range 3 {
			if a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}); a.status != 200 {
				t.Fatalf("request %d: %d %s", i, a.status, a.body)
			}
		}
		var keys []string
		for _, r := range up.Requests() {
			keys = append(keys, r.Key)
		}
		want := "sk-bad-key-aaaa sk-good-key-bbbb sk-good-key-bbbb sk-good-key-bbbb"
		if strings.Join(keys, " ") != want {
			t.Errorf("keys used %v, want %s", keys, want)
		}
		reqs := up.Requests()
		if string(reqs[0].Body) != string(reqs[1].Body) || len(reqs[1].Body) == 0 {
			t.Errorf("the retry's body differs:\n%s\n%s", reqs[0].Body, reqs[1].Body)
		}
		logs := e.logs.String()
		mustContain(t, "log", logs, "set aside")
		mustContain(t, "log", logs, "…aaaa")
		if strings.Contains(logs, "sk-bad-key-aaaa") {
			t.Error("the log shows a whole upstream key")
		}
		if u := e.get(tk); u.PromptCount != 3 {
			t.Errorf("promptCount %d, want 3", u.PromptCount)
		}
	})
	t.Run("rate-limited key retried on the next", func(t *testing.T) {
		e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-busy-key-cccc,sk-good-key-dddd"})
		up := e.fake(upstreamfake.OpenAI)
		up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-busy-key-cccc": 429}})
		tk := e.user(users.Patch{})
		for i := range 3 {
			if a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}); a.status != 200 {
				t.Fatalf("request %d: %d %s", i, a.status, a.body)
			}
		}
		var keys []string
		for _, r := range up.Requests() {
			keys = append(keys, r.Key)
		}
		// In turn: busy (429, retried), good; good; busy again (not set aside), good.
		want := "sk-busy-key-cccc sk-good-key-dddd sk-good-key-dddd sk-busy-key-cccc sk-good-key-dddd"
		if strings.Join(keys, " ") != want {
			t.Errorf("keys used %v, want %s", keys, want)
		}
	})
	t.Run("every key rate-limited", func(t *testing.T) {
		e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-busy-key-eeee,sk-busy-key-ffff"})
		e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-busy-key-eeee": 429, "sk-busy-key-ffff": 429}})
		tk := e.user(users.Patch{})
		a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
		if a.status != 429 || e.fake(upstreamfake.OpenAI).Count() != 2 {
			t.Fatalf("status %d after %d tries: %s", a.status, e.fake(upstreamfake.OpenAI).Count(), a.body)
		}
		if strings.Contains(string(a.body), "sk-busy") {
			t.Errorf("the relayed error shows an upstream key: %s", a.body)
		}
		mustContain(t, "relayed error", string(a.body), "[redacted]")
		if u := e.get(tk); u.PromptCount != 0 {
			t.Error("charged for an upstream 429")
		}
	})
	t.Run("every key rejected", func(t *testing.T) {
		e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-bad-key-gggg,sk-bad-key-hhhh"})
		up := e.fake(upstreamfake.OpenAI)
		up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-bad-key-gggg": 401, "sk-bad-key-hhhh": 401}})
		tk := e.user(users.Patch{})
		for i := range 2 {
			a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
			if a.status != 503 || a.header.Get(headerErrorStatus) != "503" {
				t.Fatalf("request %d: status %d: %s", i, a.status, a.body)
			}
			openAIShape(t, a)
			mustContain(t, "error", string(a.body), "OpenAI")
			if strings.Contains(string(a.body), "sk-bad") {
				t.Errorf("the error shows an upstream key: %s", a.body)
			}
		}
		if up.Count() != 2 {
			t.Errorf("upstream called %d times; set-aside keys must not be tried again", up.Count())
		}
	})
	t.Run("google bad key", func(t *testing.T) {
		e := newEnv(t, map[string]string{"GOOGLE_AI_KEY": "AIza-bad-key-iiii,AIza-good-key-jjjj"})
		up := e.fake(upstreamfake.Google)
		up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"AIza-bad-key-iiii": 400}})
		gc := provCases[2]
		tk := e.user(users.Patch{})
		for range 2 {
			if a := e.do(call{path: gc.path, body: gc.body, header: gc.auth(tk)}); a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
		}
		if up.Count() != 3 {
			t.Errorf("upstream called %d times, want 3 (the invalid key once)", up.Count())
		}
	})
}

var _ = io.EOF
