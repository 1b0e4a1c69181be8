package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

func TestOpenAISDK(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.OpenAI)
	client := openai.NewClient(
		option.WithBaseURL(e.srv.URL+"/proxy/openai/v1"),
		option.WithAPIKey(token),
		option.WithMaxRetries(0),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4.1",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	}

	t.Run("non-streamed", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Message.Content; got != "Hello from the fake upstream!" {
			t.Errorf("content %q", got)
		}
		if resp.Usage.TotalTokens != 18 {
			t.Errorf("usage relayed: %+v", resp.Usage)
		}
		last := up.Last(t)
		if last.Path != "/v1/chat/completions" || last.Header.Get("Authorization") != "Bearer "+openAIKey {
			t.Errorf("upstream saw %s with Authorization %q", last.Path, last.Header.Get("Authorization"))
		}
		u := e.get(token)
		if u.PromptCount != 1 || u.TokenCounts["gpt41"] != 18 {
			t.Errorf("charged: promptCount %d, counts %v; want 1 and gpt41=18", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		hold := make(chan struct{})
		up.Set(upstreamfake.Behavior{HoldAfterFirst: hold, InputTokens: 20, OutputTokens: 9})
		defer up.Set(upstreamfake.Behavior{})
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		sawUsage := false
		released := false
		for stream.Next() {
			chunk := stream.Current()
			if len(chunk.Choices) == 0 && chunk.JSON.Usage.Valid() {
				sawUsage = true
			}
			for _, c := range chunk.Choices {
				text.WriteString(c.Delta.Content)
			}
			if !released && text.Len() > 0 {
				// The first words arrived while the upstream is still
				// holding the rest: nothing was buffered.
				if up.InFlight() != 1 {
					t.Errorf("upstream in flight %d while the first chunk was read", up.InFlight())
				}
				close(hold)
				released = true
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if !released {
			t.Fatal("no content chunk arrived")
		}
		if text.String() != "Hello from the fake upstream!" {
			t.Errorf("streamed text %q", text.String())
		}
		if sawUsage {
			t.Error("the usage chunk the proxy asked for reached a client that did not ask for it")
		}
		sent := up.Last(t).JSON()
		if dig(sent, "stream_options", "include_usage") != true {
			t.Errorf("upstream request did not ask for usage: %v", sent["stream_options"])
		}
		u := e.get(token)
		if u.PromptCount != 2 || u.TokenCounts["gpt41"] != 18+29 {
			t.Errorf("charged: promptCount %d, counts %v; want 2 and gpt41=47", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("streamed with usage asked", func(t *testing.T) {
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		var usage int64
		for stream.Next() {
			if c := stream.Current(); len(c.Choices) == 0 {
				usage = c.Usage.TotalTokens
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if usage != 18 {
			t.Errorf("a client that asked for usage got total %d, want 18", usage)
		}
	})

	e.neverSaw(token)
}

func TestAnthropicSDK(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.Anthropic)
	client := anthropic.NewClient(
		aoption.WithBaseURL(e.srv.URL+"/proxy/anthropic"),
		aoption.WithAPIKey(token),
		aoption.WithMaxRetries(0),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	params := anthropic.MessageNewParams{
		Model:     anthropic.ModelClaudeSonnet4_5,
		MaxTokens: 200,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))},
	}

	t.Run("non-streamed", func(t *testing.T) {
		msg, err := client.Messages.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake upstream!" {
			t.Errorf("content %+v", msg.Content)
		}
		last := up.Last(t)
		if last.Header.Get("X-Api-Key") != anthropicKey || last.Header.Get("Anthropic-Version") == "" {
			t.Errorf("upstream saw x-api-key %q, anthropic-version %q", last.Header.Get("X-Api-Key"), last.Header.Get("Anthropic-Version"))
		}
		if last.Header.Get("Authorization") != "" {
			t.Errorf("upstream saw an Authorization header %q", last.Header.Get("Authorization"))
		}
		u := e.get(token)
		if u.PromptCount != 1 || u.TokenCounts["claude"] != 18 {
			t.Errorf("charged: promptCount %d, counts %v; want 1 and claude=18", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		hold := make(chan struct{})
		up.Set(upstreamfake.Behavior{HoldAfterFirst: hold, InputTokens: 30, OutputTokens: 12})
		defer up.Set(upstreamfake.Behavior{})
		stream := client.Messages.NewStreaming(ctx, params)
		var msg anthropic.Message
		var text strings.Builder
		released := false
		for stream.Next() {
			ev := stream.Current()
			if err := msg.Accumulate(ev); err != nil {
				t.Fatal(err)
			}
			if d, ok := ev.AsAny().(anthropic.ContentBlockDeltaEvent); ok {
				text.WriteString(d.Delta.Text)
				if !released {
					if up.InFlight() != 1 {
						t.Errorf("upstream in flight %d while the first chunk was read", up.InFlight())
					}
					close(hold)
					released = true
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != "Hello from the fake upstream!" {
			t.Errorf("streamed text %q", text.String())
		}
		if msg.Usage.InputTokens != 30 || msg.Usage.OutputTokens != 12 {
			t.Errorf("usage relayed: %+v", msg.Usage)
		}
		u := e.get(token)
		if u.PromptCount != 2 || u.TokenCounts["claude"] != 18+42 {
			t.Errorf("charged: promptCount %d, counts %v; want 2 and claude=60", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("opus family", func(t *testing.T) {
		p := params
		p.Model = "claude-opus-4-1-20250805"
		if _, err := client.Messages.New(ctx, p); err != nil {
			t.Fatal(err)
		}
		if u := e.get(token); u.TokenCounts["claude-opus"] != 18 {
			t.Errorf("counts %v; want claude-opus=18", u.TokenCounts)
		}
	})

	e.neverSaw(token)
}
