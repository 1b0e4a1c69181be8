package upstreamfake

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type req struct {
	path, body string
	header     map[string]string
}

func send(t *testing.T, f *Fake, r req) (*http.Response, []byte) {
	t.Helper()
	hr, _ := http.NewRequest(http.MethodPost, f.URL+r.path, strings.NewReader(r.body))
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return resp, b
}

var calls = map[Kind]struct{ whole, stream req }{
	OpenAI: {
		req{"/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, map[string]string{"Authorization": "Bearer k1"}},
		req{"/v1/chat/completions", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`, map[string]string{"Authorization": "Bearer k1"}},
	},
	Anthropic: {
		req{"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":5}`, map[string]string{"x-api-key": "k1", "anthropic-version": "2023-06-01"}},
		req{"/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":5,"stream":true}`, map[string]string{"x-api-key": "k1", "anthropic-version": "2023-06-01"}},
	},
	Google: {
		req{"/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[]}`, map[string]string{"x-goog-api-key": "k1"}},
		req{"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=k1", `{"contents":[]}`, nil},
	},
	Mistral: {
		req{"/v1/chat/completions", `{"model":"mistral-small-latest"}`, map[string]string{"Authorization": "Bearer k1"}},
		req{"/v1/chat/completions", `{"model":"mistral-small-latest","stream":true}`, map[string]string{"Authorization": "Bearer k1"}},
	},
}

// Each fake answers whole and streamed requests in its provider's format,
// with the configured text and usage, and records what it received.
func TestFormats(t *testing.T) {
	usageOf := map[Kind]func(m map[string]any) float64{
		OpenAI: func(m map[string]any) float64 {
			u, _ := m["usage"].(map[string]any)
			n, _ := u["total_tokens"].(float64)
			return n
		},
		Mistral: func(m map[string]any) float64 {
			u, _ := m["usage"].(map[string]any)
			n, _ := u["total_tokens"].(float64)
			return n
		},
		Anthropic: func(m map[string]any) float64 {
			u, _ := m["usage"].(map[string]any)
			n, _ := u["output_tokens"].(float64)
			return n
		},
		Google: func(m map[string]any) float64 {
			u, _ := m["usageMetadata"].(map[string]any)
			n, _ := u["totalTokenCount"].(float64)
			return n
		},
	}
	for kind, c := range calls {
		t.Run(string(kind), func(t *testing.T) {
			f := Start(t, kind)
			f.Set(Behavior{Text: "abcdef", Chunks: 3, InputTokens: 4, OutputTokens: 2})
			resp, body := send(t, f, c.whole)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			want := 6.0
			if kind == Anthropic {
				want = 2
			}
			if got := usageOf[kind](m); got != want {
				t.Errorf("usage %v in %s", got, body)
			}
			if !strings.Contains(string(body), "abcdef") {
				t.Errorf("text missing: %s", body)
			}
			if last := f.Last(t); last.Key != "k1" || string(last.Body) != c.whole.body {
				t.Errorf("recorded key %q body %q", last.Key, last.Body)
			}

			resp, body = send(t, f, c.stream)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("stream Content-Type %q", ct)
			}
			var text strings.Builder
			sawUsage := false
			for _, line := range strings.Split(string(body), "\n") {
				d, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "data: ")
				if !ok || d == "[DONE]" {
					continue
				}
				var ev map[string]any
				if err := json.Unmarshal([]byte(d), &ev); err != nil {
					t.Fatalf("event %q: %v", d, err)
				}
				if usageOf[kind](ev) == want {
					sawUsage = true
				}
				collectText(ev, &text)
			}
			if text.String() != "abcdef" || !sawUsage {
				t.Errorf("stream text %q, usage seen %v:\n%s", text.String(), sawUsage, body)
			}
			if kind == OpenAI || kind == Mistral {
				if !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
					t.Errorf("stream does not end with [DONE]")
				}
			}
		})
	}
}

// collectText gathers the generated text of any provider's event.
func collectText(v any, b *strings.Builder) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "content" || k == "text") {
				if _, isDelta := x["role"]; !isDelta || s != "" {
					b.WriteString(s)
				}
				continue
			}
			if k == "message" || k == "content_block" {
				continue // Anthropic's start events repeat nothing new
			}
			collectText(val, b)
		}
	case []any:
		for _, e := range x {
			collectText(e, b)
		}
	}
}

func TestKeyStatus(t *testing.T) {
	cases := []struct {
		kind   Kind
		key    string
		status int
		marker string
	}{
		{OpenAI, "bad", 401, "invalid_api_key"},
		{OpenAI, "busy", 429, "rate_limit_exceeded"},
		{Anthropic, "forbidden", 403, "permission_error"},
		{Google, "bad", 400, "API_KEY_INVALID"},
		{Mistral, "bad", 401, "Unauthorized"},
	}
	for _, tc := range cases {
		f := Start(t, tc.kind)
		r := calls[tc.kind].whole
		h := map[string]string{}
		for k, v := range r.header {
			h[k] = strings.ReplaceAll(v, "k1", tc.key)
		}
		resp, body := send(t, f, req{r.path, r.body, h})
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.marker) {
			t.Errorf("%s key %q: %d %s", tc.kind, tc.key, resp.StatusCode, body)
		}
	}
	f := Start(t, OpenAI)
	f.Set(Behavior{KeyStatus: map[string]int{"k1": 503}})
	if resp, _ := send(t, f, calls[OpenAI].whole); resp.StatusCode != 503 {
		t.Errorf("custom key status: %d", resp.StatusCode)
	}
}

// Hold, cancellation counting, cut-short streams and delays.
func TestControls(t *testing.T) {
	t.Run("hold and cancel", func(t *testing.T) {
		f := Start(t, Anthropic)
		hold := make(chan struct{})
		defer close(hold)
		f.Set(Behavior{HoldAfterFirst: hold})
		ctx, cancel := context.WithCancel(context.Background())
		c := calls[Anthropic].stream
		hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL+c.path, strings.NewReader(c.body))
		for k, v := range c.header {
			hr.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(line, "text_delta") {
				break
			}
		}
		if f.InFlight() != 1 {
			t.Errorf("in flight %d while held", f.InFlight())
		}
		cancel()
		resp.Body.Close()
		if !f.WaitFor(5*time.Second, func(f *Fake) bool { return f.Cancelled() == 1 && f.InFlight() == 0 }) {
			t.Errorf("cancelled %d, in flight %d", f.Cancelled(), f.InFlight())
		}
	})
	t.Run("close after", func(t *testing.T) {
		f := Start(t, OpenAI)
		f.Set(Behavior{CloseAfter: 1})
		c := calls[OpenAI].stream
		hr, _ := http.NewRequest(http.MethodPost, f.URL+c.path, strings.NewReader(c.body))
		hr.Header.Set("Authorization", "Bearer k1")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("reading a cut stream: %v, want unexpected EOF", err)
		}
	})
	t.Run("first byte delay", func(t *testing.T) {
		f := Start(t, Mistral)
		f.Set(Behavior{FirstByteDelay: 150 * time.Millisecond})
		start := time.Now()
		send(t, f, calls[Mistral].whole)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("answered after %v", d)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		f := Start(t, Google)
		f.Set(Behavior{Malformed: true})
		_, body := send(t, f, calls[Google].stream)
		if !strings.Contains(string(body), "not json") {
			t.Errorf("no malformed line in %s", body)
		}
	})
	t.Run("google JSON array stream", func(t *testing.T) {
		f := Start(t, Google)
		_, body := send(t, f, req{"/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=k", `{}`, nil})
		var arr []map[string]any
		if err := json.Unmarshal(body, &arr); err != nil || len(arr) != 3 {
			t.Errorf("array stream: %v %s", err, body)
		}
	})
	t.Run("anthropic requires a version", func(t *testing.T) {
		f := Start(t, Anthropic)
		resp, _ := send(t, f, req{"/v1/messages", `{}`, map[string]string{"x-api-key": "k"}})
		if resp.StatusCode != 400 {
			t.Errorf("no version: %d", resp.StatusCode)
		}
	})
}
