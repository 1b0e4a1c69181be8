package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
)

// settle waits until no request is being served anywhere (proxy and
// fakes), then closes the client's idle connections and checks the proxy
// closes its side too: nothing is left active or open.
func (s *stack) settle() {
	s.t.Helper()
	waitFor(s.t, "the proxy to finish its requests", func() bool {
		_, active := s.conns.open()
		return active == 0
	})
	for k, f := range s.fakes {
		if !f.WaitFor(10*time.Second, func(f *upstreamfake.Fake) bool { return f.InFlight() == 0 }) {
			s.t.Fatalf("upstream %s still has %d requests in flight", k, f.InFlight())
		}
	}
	s.tr.CloseIdleConnections()
	waitFor(s.t, "the proxy to close idle connections", func() bool {
		open, _ := s.conns.open()
		return open == 0
	})
}

// charged returns the user's prompt count and tokens in family.
func (s *stack) charged(token, family string) (int64, int64) {
	u := s.user(token)
	return u.PromptCount, u.TokenCounts[family]
}

// brokenUpstream answers every request with h instead of a provider.
func brokenUpstream(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv.URL
}

var baseURLVar = map[upstreamfake.Kind]string{
	upstreamfake.OpenAI: "OPENAI_BASE_URL", upstreamfake.Anthropic: "ANTHROPIC_BASE_URL",
	upstreamfake.Google: "GOOGLE_AI_BASE_URL", upstreamfake.Mistral: "MISTRAL_AI_BASE_URL",
}

// Every upstream fault, for every provider: the client gets the
// upstream's own error, a clear provider-shaped error from the proxy, or
// the stream relayed so far with an error event at its end; the charge is
// nothing for errors and what was relayed for cut streams; no request,
// connection or goroutine is left behind.
func TestUpstreamFaults(t *testing.T) {
	noLeaks(t)
	type outcome struct {
		status int
		// proxyMade: a proxy-made error in the provider's shape.
		proxyMade bool
		// prompts is the prompt count charged; tokens are in [min, max].
		prompts        int64
		minTok, maxTok int64
		// check looks at the answer's body.
		check func(t *testing.T, pc provCase, body string)
	}
	cases := []struct {
		name     string
		stream   bool
		behavior upstreamfake.Behavior
		broken   http.HandlerFunc // replaces the upstream entirely
		opts     proxy.Options
		want     outcome
	}{
		{name: "answers 500", behavior: upstreamfake.Behavior{Status: 500},
			want: outcome{status: 500, check: upstreamErrorRelayed}},
		{name: "answers 429", behavior: upstreamfake.Behavior{Status: 429},
			want: outcome{status: 429, check: upstreamErrorRelayed}},
		{name: "answers 503 to a stream", stream: true, behavior: upstreamfake.Behavior{Status: 503},
			want: outcome{status: 503, check: upstreamErrorRelayed}},
		{name: "times out before the first byte", behavior: upstreamfake.Behavior{FirstByteDelay: 3 * time.Second},
			opts: proxy.Options{ResponseHeaderTimeout: 300 * time.Millisecond},
			want: outcome{status: 504, proxyMade: true}},
		{name: "is slow to the first byte", behavior: upstreamfake.Behavior{FirstByteDelay: 150 * time.Millisecond},
			opts: proxy.Options{ResponseHeaderTimeout: 2 * time.Second},
			want: outcome{status: 200, prompts: 1, minTok: fullCharge, maxTok: fullCharge}},
		{name: "is slow to the first byte of a stream", stream: true, behavior: upstreamfake.Behavior{FirstByteDelay: 150 * time.Millisecond},
			opts: proxy.Options{ResponseHeaderTimeout: 2 * time.Second},
			want: outcome{status: 200, prompts: 1, minTok: fullCharge, maxTok: fullCharge, check: streamComplete}},
		{name: "closes mid-stream", stream: true, behavior: upstreamfake.Behavior{CloseAfter: 1},
			// "Hello from" was relayed (3 tokens) on top of the prompt:
			// reported (Anthropic, Google: 11) or estimated from the
			// request's text (a quarter of its bytes: about 10).
			want: outcome{status: 200, prompts: 1, minTok: 4, maxTok: 20, check: streamCutWithError}},
		{name: "sends malformed SSE", stream: true, behavior: upstreamfake.Behavior{Malformed: true},
			want: outcome{status: 200, prompts: 1, minTok: fullCharge, maxTok: fullCharge, check: streamComplete}},
		{name: "sends malformed JSON", broken: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"unterminated`)
		},
			// Relayed as sent; nothing in it can be read, so it is
			// charged as an answer that is not JSON: the prompt's
			// estimate and the 100 output tokens the request asks for.
			want: outcome{status: 200, prompts: 1, minTok: 100, maxTok: 120, check: func(t *testing.T, _ provCase, body string) {
				if body != `{"choices":[{"message":{"content":"unterminated` {
					t.Errorf("malformed answer not relayed as sent: %q", body)
				}
			}}},
		{name: "drops the connection before answering", broken: func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, want: outcome{status: 502, proxyMade: true}},
		{name: "cuts a whole answer short", broken: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, `{"id":"x","choices":[`)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, want: outcome{status: 502, proxyMade: true}},
	}
	for _, tc := range cases {
		for _, pc := range provCases {
			t.Run(tc.name+"/"+string(pc.kind), func(t *testing.T) {
				o := stackOptions{proxy: tc.opts}
				if tc.broken != nil {
					o.vars = map[string]string{baseURLVar[pc.kind]: brokenUpstream(t, tc.broken)}
				}
				s := newStack(t, o)
				tok := s.createUser("")
				s.fakes[pc.kind].Set(tc.behavior)
				path, body := pc.path, pc.body
				if tc.stream {
					path, body = pc.streamPathBody()
				}
				r := s.do(http.MethodPost, s.proxy.URL+path, body, pc.auth(tok))
				if tc.want.proxyMade {
					msg := providerError(t, pc, r, tc.want.status)
					if !strings.Contains(msg, "upstream") {
						t.Errorf("message %q does not say the upstream failed", msg)
					}
				} else if r.status != tc.want.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.want.status, r.body)
				}
				if tc.want.check != nil {
					tc.want.check(t, pc, string(r.body))
				}
				s.settle()
				prompts, tokens := s.charged(tok, pc.family)
				if prompts != tc.want.prompts || tokens < tc.want.minTok || tokens > tc.want.maxTok {
					t.Errorf("charged %d prompts, %d tokens; want %d prompts, %d-%d tokens", prompts, tokens, tc.want.prompts, tc.want.minTok, tc.want.maxTok)
				}
			})
		}
	}
}

// upstreamErrorRelayed: the upstream's own error reaches the client, in
// its own shape, without the operator's key.
func upstreamErrorRelayed(t *testing.T, pc provCase, body string) {
	t.Helper()
	if !strings.Contains(body, "The fake upstream was told to fail") && !strings.Contains(body, "error") {
		t.Errorf("upstream error not relayed: %s", body)
	}
	for _, k := range allSecrets {
		if strings.Contains(body, k) {
			t.Errorf("relayed error carries a key: %s", body)
		}
	}
}

// streamComplete: the stream reached its end as the provider sends it.
func streamComplete(t *testing.T, pc provCase, body string) {
	t.Helper()
	if !strings.Contains(body, "upstream!") {
		t.Errorf("stream lacks its last chunk: %q", body)
	}
	end := map[upstreamfake.Kind]string{upstreamfake.OpenAI: "[DONE]", upstreamfake.Mistral: "[DONE]", upstreamfake.Anthropic: "message_stop", upstreamfake.Google: "STOP"}[pc.kind]
	if !strings.Contains(body, end) {
		t.Errorf("stream lacks its end %q: %q", end, body)
	}
}

// streamCutWithError: what was relayed, then an error event saying the
// upstream broke the stream.
func streamCutWithError(t *testing.T, pc provCase, body string) {
	t.Helper()
	if !strings.Contains(body, "Hello from") || strings.Contains(body, "upstream!") {
		t.Errorf("partial stream not relayed as it was: %q", body)
	}
	if !strings.Contains(body, "ended the stream unexpectedly") {
		t.Errorf("cut stream does not end with an error event: %q", body)
	}
}

// A client that leaves mid-stream cancels the upstream request, is
// charged what was relayed, and leaves no connection or goroutine behind.
func TestClientLeavesMidStream(t *testing.T) {
	noLeaks(t)
	for _, pc := range provCases {
		t.Run(string(pc.kind), func(t *testing.T) {
			s := newStack(t, stackOptions{})
			tok := s.createUser("")
			hold := make(chan struct{})
			defer close(hold)
			up := s.fakes[pc.kind]
			up.Set(upstreamfake.Behavior{HoldAfterFirst: hold})
			path, body := pc.streamPathBody()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.proxy.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range pc.auth(tok) {
				req.Header.Set(k, v)
			}
			resp, err := s.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(resp.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("stream ended before its first chunk: %v", err)
				}
				if strings.Contains(line, "Hello from") {
					break
				}
			}
			cancel()
			resp.Body.Close()
			if !up.WaitFor(10*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 && f.InFlight() == 0 }) {
				t.Fatalf("the upstream request was not cancelled: %d in flight, %d cancelled", up.InFlight(), up.Cancelled())
			}
			s.settle()
			waitFor(t, "the cut stream's charge", func() bool { p, _ := s.charged(tok, pc.family); return p == 1 })
			if _, tokens := s.charged(tok, pc.family); tokens < 4 || tokens > 20 {
				t.Errorf("charged %d tokens for a stream cut after its first chunk", tokens)
			}
		})
	}
}
