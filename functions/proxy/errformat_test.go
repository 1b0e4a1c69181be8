package proxy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// fakeText extracts the text of a fake answer in pc's format.
func fakeText(t *testing.T, pc provCase, a answer, stream bool) string {
	t.Helper()
	if !stream {
		m := a.json(t)
		switch pc.kind {
		case upstreamfake.Anthropic:
			return dig(m["content"].([]any)[0].(map[string]any), "text").(string)
		case upstreamfake.Google:
			c := m["candidates"].([]any)[0].(map[string]any)
			return dig(c, "content", "parts").([]any)[0].(map[string]any)["text"].(string)
		default:
			return dig(m["choices"].([]any)[0].(map[string]any), "message", "content").(string)
		}
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("stream answer has Content-Type %q", ct)
	}
	var text strings.Builder
	data := sseData(t, a.body)
	for _, d := range data {
		if d == "[DONE]" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("event %q: %v", d, err)
		}
		switch pc.kind {
		case upstreamfake.Anthropic:
			if m["type"] == "content_block_delta" {
				text.WriteString(dig(m, "delta", "text").(string))
			}
		case upstreamfake.Google:
			c := m["candidates"].([]any)[0].(map[string]any)
			text.WriteString(dig(c, "content", "parts").([]any)[0].(map[string]any)["text"].(string))
		default:
			for _, c := range m["choices"].([]any) {
				if s, ok := dig(c.(map[string]any), "delta", "content").(string); ok {
					text.WriteString(s)
				}
			}
		}
	}
	switch pc.kind {
	case upstreamfake.OpenAI, upstreamfake.Mistral:
		if len(data) == 0 || data[len(data)-1] != "[DONE]" {
			t.Errorf("chat stream does not end with [DONE]: %q", data)
		}
	case upstreamfake.Anthropic:
		mustContain(t, "stream", string(a.body), "event: message_stop")
	}
	return text.String()
}

// With ERROR_FORMAT=completion, errors are 200 answers in the request's
// format (streamed when a stream was asked for), still marked by the
// error headers.
func TestCompletionErrorFormat(t *testing.T) {
	for _, pc := range provCases {
		for _, stream := range []bool{false, true} {
			name := string(pc.kind) + map[bool]string{false: "/whole", true: "/stream"}[stream]
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, map[string]string{"ERROR_FORMAT": "completion"})
				c := call{path: pc.path, body: pc.body, header: pc.auth("00000000-0000-4000-8000-000000000000")}
				if stream {
					c = pc.streamCall("00000000-0000-4000-8000-000000000000")
				}
				a := e.do(c)
				if a.status != 200 {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				if a.header.Get(headerErrorStatus) != "401" || a.header.Get(headerError) != "Unauthorized" {
					t.Errorf("error headers %q %q", a.header.Get(headerError), a.header.Get(headerErrorStatus))
				}
				// Refused before its body is read, a request is known to
				// be a stream only from its path (Google's).
				text := fakeText(t, pc, a, stream && pc.kind == upstreamfake.Google)
				mustContain(t, "fake answer", text, "Invalid user token.")
				mustContain(t, "fake answer", text, "401")
			})
		}
	}

	t.Run("quota details", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ERROR_FORMAT": "completion"})
		pc := provCases[0]
		tk := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{"gpt4o": 10})})
		a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
		if a.status != 200 || a.header.Get(headerErrorStatus) != "429" {
			t.Fatalf("%d %v", a.status, a.header)
		}
		text := fakeText(t, pc, a, false)
		mustContain(t, "fake answer", text, "Quota: 10, used: 0, requested: ")
	})

	t.Run("upstream error", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ERROR_FORMAT": "completion"})
		e.fake(upstreamfake.Anthropic).Set(upstreamfake.Behavior{Status: 529})
		pc := provCases[1]
		tk := e.user(users.Patch{})
		a := e.do(pc.streamCall(tk))
		if a.status != 200 || a.header.Get(headerErrorStatus) != "529" {
			t.Fatalf("%d %v %s", a.status, a.header, a.body)
		}
		text := fakeText(t, pc, a, true)
		mustContain(t, "fake answer", text, "529 from Anthropic")
		mustContain(t, "fake answer", text, "The fake upstream was told to fail.")
		if u := e.get(tk); u.PromptCount != 0 {
			t.Errorf("an upstream error was charged")
		}
	})

	// The official SDK shows the error as the answer's text.
	t.Run("openai SDK", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ERROR_FORMAT": "completion"})
		client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/openai/v1"), option.WithAPIKey("not-a-user"), option.WithMaxRetries(0))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, "answer", resp.Choices[0].Message.Content, "Invalid user token.")
	})
}

// With ERROR_FORMAT=completion the refusal of a provider this proxy does
// not serve, given before any authentication, leaves the anonymous body
// unread, as every other refusal before the body does.
func TestNotServedRefusalLeavesTheBodyUnread(t *testing.T) {
	e := newEnv(t, map[string]string{"ERROR_FORMAT": "completion", "MISTRAL_AI_KEY": ""})
	body := `{"model":"body-was-read-by-proxy","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("x", 1<<20) + `"}]}`
	a := e.do(call{path: "/proxy/mistral-ai/v1/chat/completions", body: body})
	if a.header.Get(headerErrorStatus) != "503" {
		t.Fatalf("%d %v %.200s", a.status, a.header, a.body)
	}
	if strings.Contains(string(a.body), "body-was-read-by-proxy") {
		t.Errorf("the anonymous request's body was read to shape the refusal: %.300s", a.body)
	}
}
