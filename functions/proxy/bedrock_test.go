package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
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

// awsCred is an AWS_CREDENTIALS entry the Bedrock fake accepts.
func awsCred(accessKey, region string) string {
	return accessKey + ":" + upstreamfake.BedrockSecret(accessKey) + ":" + region
}

// newBedrockEnv serves both Bedrock mounts from one fake whose base URL
// puts the credential's region in the path, as the real template puts it
// in the host.
func newBedrockEnv(t *testing.T, creds string, vars map[string]string) (*env, *upstreamfake.Fake) {
	t.Helper()
	up := upstreamfake.Start(t, upstreamfake.Bedrock)
	all := map[string]string{"AWS_CREDENTIALS": creds, "AWS_BEDROCK_BASE_URL": up.URL + "/{region}"}
	for k, v := range vars {
		all[k] = v
	}
	e := newEnv(t, all)
	e.fakes[upstreamfake.Bedrock] = up
	return e, up
}

func anthropicClient(e *env, mount, token string) anthropic.Client {
	return anthropic.NewClient(
		aoption.WithBaseURL(e.srv.URL+"/proxy/"+mount),
		aoption.WithAPIKey(token),
		aoption.WithMaxRetries(0),
	)
}

func TestBedrockClaudeSDK(t *testing.T) {
	e, up := newBedrockEnv(t, awsCred("AKIDFIRST", "us-east-1"), nil)
	token := e.user(users.Patch{})
	client := anthropicClient(e, "aws/claude", token)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	params := anthropic.MessageNewParams{
		Model:     anthropic.ModelClaudeSonnet4_5,
		MaxTokens: 200,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))},
	}

	t.Run("non-streamed", func(t *testing.T) {
		msg, err := client.Messages.New(ctx, params, aoption.WithHeader("Anthropic-Beta", "interleaved-thinking-2025-05-14"))
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake upstream!" {
			t.Errorf("content %+v", msg.Content)
		}
		last := up.Last(t)
		// claude-sonnet-4-5 has no on-demand throughput: the region's
		// cross-region inference profile is called.
		if want := "/us-east-1/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"; last.Path != want {
			t.Errorf("upstream path %q, want %q", last.Path, want)
		}
		if !strings.HasPrefix(last.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDFIRST/") {
			t.Errorf("upstream Authorization %q", last.Header.Get("Authorization"))
		}
		body := last.JSON()
		if body["anthropic_version"] != "bedrock-2023-05-31" || body["model"] != nil || body["stream"] != nil || body["max_tokens"] != float64(200) {
			t.Errorf("upstream body %s", last.Body)
		}
		if betas, _ := body["anthropic_beta"].([]any); len(betas) != 1 || betas[0] != "interleaved-thinking-2025-05-14" {
			t.Errorf("anthropic_beta %v", body["anthropic_beta"])
		}
		for _, h := range []string{"Anthropic-Version", "Anthropic-Beta", "X-Api-Key"} {
			if last.Header.Get(h) != "" {
				t.Errorf("upstream saw %s %q", h, last.Header.Get(h))
			}
		}
		u := e.get(token)
		if u.PromptCount != 1 || u.TokenCounts["aws-claude"] != 18 {
			t.Errorf("charged: promptCount %d, counts %v; want 1 and aws-claude=18", u.PromptCount, u.TokenCounts)
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
					// Relayed chunk by chunk: the first arrives while
					// Bedrock still holds the rest.
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
		if last := up.Last(t); !strings.HasSuffix(last.Path, "/invoke-with-response-stream") || last.JSON()["stream"] != nil {
			t.Errorf("streamed upstream request %s %s", last.Path, last.Body)
		}
		u := e.get(token)
		if u.PromptCount != 2 || u.TokenCounts["aws-claude"] != 18+42 {
			t.Errorf("charged: promptCount %d, counts %v; want 2 and aws-claude=60", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("opus family and Bedrock IDs as named", func(t *testing.T) {
		p := params
		p.Model = "anthropic.claude-3-opus-20240229-v1:0"
		if _, err := client.Messages.New(ctx, p); err != nil {
			t.Fatal(err)
		}
		if want := "/us-east-1/model/anthropic.claude-3-opus-20240229-v1:0/invoke"; up.Last(t).Path != want {
			t.Errorf("upstream path %q, want %q", up.Last(t).Path, want)
		}
		if u := e.get(token); u.TokenCounts["aws-claude-opus"] != 18 || u.TokenCounts["aws-claude"] != 60 {
			t.Errorf("counts %v; want aws-claude-opus=18, aws-claude=60", u.TokenCounts)
		}
	})

	t.Run("count tokens", func(t *testing.T) {
		before := e.get(token)
		n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{
			Model:    anthropic.ModelClaudeSonnet4_5,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))},
		})
		if err != nil {
			t.Fatal(err)
		}
		if n.InputTokens != 11 {
			t.Errorf("input tokens %d", n.InputTokens)
		}
		if want := "/us-east-1/model/anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens"; up.Last(t).Path != want {
			t.Errorf("upstream path %q, want %q", up.Last(t).Path, want)
		}
		if u := e.get(token); u.TokenCounts["aws-claude"] != before.TokenCounts["aws-claude"] || u.PromptCount != before.PromptCount {
			t.Errorf("counting was charged: %v, %d prompts", u.TokenCounts, u.PromptCount)
		}
	})

	t.Run("another vendor's model is refused before Bedrock", func(t *testing.T) {
		before := up.Count()
		for _, model := range []string{"mistral.mistral-large-2407-v1:0", "claude-nonexistent", ""} {
			a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
				body: `{"model":"` + model + `","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`})
			if a.status != http.StatusBadRequest || dig(a.json(t), "error", "type") != "invalid_request_error" ||
				!strings.Contains(string(a.body), "serves Anthropic (Claude) models on Bedrock only") {
				t.Errorf("%q: status %d: %s", model, a.status, a.body)
			}
		}
		if up.Count() != before {
			t.Errorf("upstream saw %d requests", up.Count()-before)
		}
	})

	t.Run("Bedrock's refusal in Anthropic's shape", func(t *testing.T) {
		p := params
		p.Model = "anthropic.claude-nonexistent-v1:0"
		_, err := client.Messages.New(ctx, p)
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
			t.Fatalf("error %v", err)
		}
		raw := apiErr.RawJSON()
		if !strings.Contains(raw, `"invalid_request_error"`) || !strings.Contains(raw, "ValidationException: The provided model identifier is invalid.") {
			t.Errorf("error body %s", raw)
		}
		if u := e.get(token); u.TokenCounts["aws-claude"] != 60 {
			t.Errorf("a refusal was charged: %v", u.TokenCounts)
		}
	})

	e.neverSaw(token)
}

func TestBedrockRegionProfiles(t *testing.T) {
	e, up := newBedrockEnv(t, awsCred("AKIDEU", "eu-west-3"), nil)
	token := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
		body: `{"model":"claude-opus-4-1","max_tokens":50,"messages":[{"role":"user","content":"hi"}],"metadata":{"user_id":"u1"}}`})
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	last := up.Last(t)
	if want := "/eu-west-3/model/eu.anthropic.claude-opus-4-1-20250805-v1:0/invoke"; last.Path != want {
		t.Errorf("upstream path %q, want %q", last.Path, want)
	}
	// Bedrock refuses members it does not know; the fake does too.
	if last.JSON()["metadata"] != nil {
		t.Errorf("metadata sent: %s", last.Body)
	}
	if u := e.get(token); u.TokenCounts["aws-claude-opus"] != 18 {
		t.Errorf("counts %v", u.TokenCounts)
	}
}

func TestBedrockKeys(t *testing.T) {
	t.Run("a wrong secret is set aside, the next credential answers", func(t *testing.T) {
		e, up := newBedrockEnv(t, "AKIDWRONG:not-the-secret:us-east-1,"+awsCred("AKIDGOOD", "us-west-2"), nil)
		token := e.user(users.Patch{})
		body := `{"model":"claude-3-5-sonnet-20241022","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`
		for i := range 2 {
			a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token}, body: body})
			if a.status != http.StatusOK {
				t.Fatalf("request %d: status %d: %s", i, a.status, a.body)
			}
		}
		var keys []string
		for _, r := range up.Requests() {
			keys = append(keys, r.Key+" "+r.Path)
		}
		want := []string{
			"AKIDWRONG /us-east-1/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
			"AKIDGOOD /us-west-2/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
			"AKIDGOOD /us-west-2/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
		}
		if strings.Join(keys, "\n") != strings.Join(want, "\n") {
			t.Errorf("upstream saw\n%s\nwant\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
		}
		mustContain(t, "log", e.logs.String(), "upstream key rejected")
		if strings.Contains(e.logs.String(), "not-the-secret") || strings.Contains(e.logs.String(), upstreamfake.BedrockSecret("AKIDGOOD")) {
			t.Error("a secret access key was logged")
		}
		if u := e.get(token); u.TokenCounts["aws-claude"] != 36 {
			t.Errorf("counts %v", u.TokenCounts)
		}
		e.neverSaw(token)
	})

	t.Run("both mounts share the pool; unknown keys are dead too", func(t *testing.T) {
		e, up := newBedrockEnv(t, "UNKNOWNKEY:whatever:us-east-1", nil)
		token := e.user(users.Patch{})
		a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
			body: `{"model":"claude-3-haiku-20240307","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`})
		if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "no working") {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		// The Mistral mount uses the same credential, already set aside.
		a = e.do(call{path: "/proxy/aws/mistral/v1/chat/completions", header: bearerH(token),
			body: `{"model":"mistral-large-latest","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`})
		if a.status != http.StatusServiceUnavailable {
			t.Fatalf("mistral: status %d: %s", a.status, a.body)
		}
		if up.Count() != 1 {
			t.Errorf("upstream saw %d requests, want 1", up.Count())
		}
	})

	t.Run("throttling moves on without setting aside; model access is the request's", func(t *testing.T) {
		e, up := newBedrockEnv(t, awsCred("AKIDBUSY", "us-east-1")+","+awsCred("AKIDOK", "us-east-1"),
			nil)
		up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"AKIDBUSY": http.StatusTooManyRequests, "AKIDOK": http.StatusForbidden}})
		token := e.user(users.Patch{})
		a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
			body: `{"model":"claude-3-haiku-20240307","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`})
		if a.status != http.StatusForbidden || !strings.Contains(string(a.body), `"permission_error"`) || !strings.Contains(string(a.body), "AccessDeniedException") {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		if up.Count() != 2 {
			t.Errorf("upstream saw %d requests, want 2 (throttled, then refused)", up.Count())
		}
		if strings.Contains(e.logs.String(), "upstream key rejected") {
			t.Error("a key was set aside for a throttle or a model refusal")
		}
	})

	t.Run("a malformed credential is the operator's error", func(t *testing.T) {
		for cred, logged := range map[string]string{
			"AKIDONLY:us-east-1":                              "accessKeyId:secretAccessKey:region",
			"AKIDX:top-secret-value:bedrock.attacker.example": "third part is not an AWS region",
			// Region and secret swapped: the secret is in the region's place.
			"AKIDX:us-east-1:top-secret-value": "third part is not an AWS region",
		} {
			e, up := newBedrockEnv(t, cred, nil)
			token := e.user(users.Patch{})
			a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
				body: `{"model":"claude-3-haiku-20240307","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`})
			if a.status != http.StatusBadGateway || !strings.Contains(string(a.body), "could not be authorised") {
				t.Fatalf("%s: status %d: %s", cred, a.status, a.body)
			}
			mustContain(t, "log", e.logs.String(), logged)
			if strings.Contains(e.logs.String(), "top-secret-value") || strings.Contains(string(a.body), "top-secret-value") {
				t.Errorf("%s: the secret was logged or answered", cred)
			}
			if up.Count() != 0 {
				t.Errorf("%s: upstream saw %d requests", cred, up.Count())
			}
		}
	})
}

func TestBedrockClampAndErrorFormat(t *testing.T) {
	e, up := newBedrockEnv(t, awsCred("AKIDCLAMP", "us-east-1"), map[string]string{"MAX_OUTPUT_TOKENS_AWS": "100", "ERROR_FORMAT": "completion"})
	token := e.user(users.Patch{})
	client := anthropicClient(e, "aws/claude", token)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	params := anthropic.MessageNewParams{
		Model:     "claude-3-haiku-20240307",
		MaxTokens: 5000,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	}
	if _, err := client.Messages.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	if got := up.Last(t).JSON()["max_tokens"]; got != float64(100) {
		t.Errorf("upstream max_tokens %v, want the clamp 100", got)
	}

	up.Set(upstreamfake.Behavior{Status: http.StatusBadRequest})
	msg, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatalf("ERROR_FORMAT=completion answered an error: %v", err)
	}
	if len(msg.Content) != 1 || !strings.Contains(msg.Content[0].Text, "ValidationException") {
		t.Errorf("fake completion %+v", msg.Content)
	}
	stream := client.Messages.NewStreaming(ctx, params)
	var text strings.Builder
	for stream.Next() {
		if d, ok := stream.Current().AsAny().(anthropic.ContentBlockDeltaEvent); ok {
			text.WriteString(d.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil || !strings.Contains(text.String(), "ValidationException") {
		t.Errorf("streamed fake completion %q, err %v", text.String(), err)
	}
	if u := e.get(token); u.TokenCounts["aws-claude"] != 18 {
		t.Errorf("counts %v; only the first answer is charged", u.TokenCounts)
	}
}

func TestBedrockStreamException(t *testing.T) {
	e, up := newBedrockEnv(t, awsCred("AKIDEXC", "us-east-1"), nil)
	up.Set(upstreamfake.Behavior{BedrockException: "throttlingException", Text: "0123456789abcdef", Chunks: 4})
	token := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
		body: `{"model":"claude-3-haiku-20240307","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"0123456789abcdef"}]}`})
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	s := string(a.body)
	mustContain(t, "stream", s, "event: content_block_delta")
	mustContain(t, "stream", s, "event: error\n")
	mustContain(t, "stream", s, `"rate_limit_error"`)
	mustContain(t, "stream", s, "throttlingException: The fake upstream was told to fail midway.")
	if strings.Contains(s, "message_stop") {
		t.Error("the stream went on after the exception")
	}

	// The SDK raises it.
	client := anthropicClient(e, "aws/claude", token)
	stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
		Model: "claude-3-haiku-20240307", MaxTokens: 50,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("0123456789abcdef"))},
	})
	for stream.Next() {
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "throttlingException") {
		t.Errorf("SDK stream error %v", err)
	}
	// Cut short: charged what was relayed, input as Bedrock reported it
	// (11) and the text relayed (one chunk of 4 bytes: 1 token), once the
	// handler has ended.
	e.logs.waitLines(t, `"httpRequest"`, 2)
	if u := e.get(token); u.TokenCounts["aws-claude"] != 2*(11+1) {
		t.Errorf("counts %v; want aws-claude=%d", u.TokenCounts, 2*(11+1))
	}
}

func TestBedrockMistral(t *testing.T) {
	e, up := newBedrockEnv(t, awsCred("AKIDMISTRAL", "us-west-2"), map[string]string{"MAX_OUTPUT_TOKENS_AWS": "64"})
	token := e.user(users.Patch{})
	client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/aws/mistral/v1"), option.WithAPIKey(token), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	params := openai.ChatCompletionNewParams{
		Model:     "mistral-large-latest",
		MaxTokens: openai.Int(1000),
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	}

	t.Run("non-streamed", func(t *testing.T) {
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != "Hello from the fake upstream!" || c.Choices[0].FinishReason != "stop" {
			t.Errorf("choices %+v", c.Choices)
		}
		if c.Usage.PromptTokens != 11 || c.Usage.CompletionTokens != 7 || c.Model != "mistral-large-latest" {
			t.Errorf("usage %+v model %q", c.Usage, c.Model)
		}
		last := up.Last(t)
		if want := "/us-west-2/model/mistral.mistral-large-2407-v1:0/invoke"; last.Path != want {
			t.Errorf("upstream path %q, want %q", last.Path, want)
		}
		if b := last.JSON(); b["model"] != nil || b["max_tokens"] != float64(64) {
			t.Errorf("upstream body %s", last.Body)
		}
		if u := e.get(token); u.TokenCounts["aws-mistral-large"] != 18 {
			t.Errorf("counts %v", u.TokenCounts)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		up.Set(upstreamfake.Behavior{InputTokens: 20, OutputTokens: 5})
		defer up.Set(upstreamfake.Behavior{})
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "Hello from the fake upstream!" {
			t.Errorf("streamed %+v", acc.Choices)
		}
		if acc.Usage.PromptTokens != 20 || acc.Usage.CompletionTokens != 5 {
			t.Errorf("streamed usage %+v", acc.Usage)
		}
		if u := e.get(token); u.TokenCounts["aws-mistral-large"] != 18+25 {
			t.Errorf("counts %v", u.TokenCounts)
		}
	})

	t.Run("text-only models take the messages as a prompt", func(t *testing.T) {
		p := params
		p.Model = "open-mistral-7b"
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Say hello.")}
		c, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != "Hello from the fake upstream!" || c.Usage.TotalTokens != 18 {
			t.Errorf("answer %+v, usage %+v", c.Choices, c.Usage)
		}
		last := up.Last(t)
		if want := "/us-west-2/model/mistral.mistral-7b-instruct-v0:2/invoke"; last.Path != want {
			t.Errorf("upstream path %q, want %q", last.Path, want)
		}
		if got := last.JSON()["prompt"]; got != "<s>[INST] Be brief.\n\nSay hello. [/INST]" {
			t.Errorf("prompt %q", got)
		}
		p.Model = "open-mixtral-8x7b"
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "Hello from the fake upstream!" || acc.Usage.TotalTokens != 18 {
			t.Errorf("streamed %+v, usage %+v", acc.Choices, acc.Usage)
		}
		if u := e.get(token); u.TokenCounts["aws-mistral-tiny"] != 18 || u.TokenCounts["aws-mistral-small"] != 18 {
			t.Errorf("counts %v", u.TokenCounts)
		}
	})

	t.Run("refusal in OpenAI's shape", func(t *testing.T) {
		p := params
		p.Model = "mistral.mistral-unknown-v1:0"
		_, err := client.Chat.Completions.New(ctx, p)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "ValidationException: The provided model identifier is invalid.") {
			t.Fatalf("error %v", err)
		}
		p.Model = "us.anthropic.claude-opus-4-1-20250805-v1:0"
		_, err = client.Chat.Completions.New(ctx, p)
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "serves Mistral models on Bedrock only") {
			t.Fatalf("error %v", err)
		}
		if u := e.get(token); u.TokenCounts["aws-mistral-large"] != 18+25 {
			t.Errorf("refusals charged: %v", u.TokenCounts)
		}
	})
	e.neverSaw(token)
}

func TestBedrockServiceInfo(t *testing.T) {
	e, _ := newBedrockEnv(t, awsCred("AKIDINFO", "us-east-1"), nil)
	a := e.do(call{method: http.MethodGet, path: "/proxy/"})
	var info struct {
		Providers []struct {
			Provider string   `json:"provider"`
			BaseURL  string   `json:"baseUrl"`
			Families []string `json:"families"`
			Routes   []string `json:"routes"`
		} `json:"providers"`
	}
	if err := json.Unmarshal(a.body, &info); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
	found := map[string]string{}
	for _, p := range info.Providers {
		found[p.Provider] = p.BaseURL + " " + strings.Join(p.Routes, ",") + " " + strings.Join(p.Families, ",")
	}
	for mount, want := range map[string]string{
		"aws/claude":  "/proxy/aws/claude POST /v1/messages,POST /v1/messages/count_tokens,POST /v1/chat/completions,GET /v1/models aws-claude,aws-claude-opus",
		"aws/mistral": "/proxy/aws/mistral POST /v1/chat/completions,GET /v1/models aws-mistral-tiny,aws-mistral-small,aws-mistral-medium,aws-mistral-large",
	} {
		if !strings.HasSuffix(found[mount], want) && !strings.Contains(found[mount], want) {
			t.Errorf("GET / for %s: %q, want %q", mount, found[mount], want)
		}
	}
}

// A client that leaves mid-stream cancels the Bedrock request too, and is
// charged what was relayed; a stream Bedrock cuts mid-frame ends with
// Anthropic's error event.
func TestBedrockStreamCutShort(t *testing.T) {
	body := `{"model":"claude-3-haiku-20240307","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"0123456789abcdef"}]}`
	t.Run("client leaves", func(t *testing.T) {
		e, up := newBedrockEnv(t, awsCred("AKIDLEAVE", "us-east-1"), nil)
		token := e.user(users.Patch{})
		hold := make(chan struct{})
		defer close(hold)
		up.Set(upstreamfake.Behavior{HoldAfterFirst: hold})
		e.streamUntil(t, call{path: "/proxy/aws/claude/v1/messages", body: body, header: map[string]string{"X-Api-Key": token}},
			"Hello from", "its first chunk")()
		if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 }) {
			t.Fatalf("the Bedrock request was not cancelled (in flight %d)", up.InFlight())
		}
		e.logs.waitLines(t, `"httpRequest"`, 1)
		// 11 input tokens from message_start; "Hello from" is the first of
		// three chunks (10 bytes: 3 tokens).
		if u := e.get(token); u.PromptCount != 1 || u.TokenCounts["aws-claude"] != 11+3 {
			t.Errorf("charged %d prompts, %v; want aws-claude=14", u.PromptCount, u.TokenCounts)
		}
	})
	t.Run("Bedrock cuts the stream", func(t *testing.T) {
		e, up := newBedrockEnv(t, awsCred("AKIDCUT", "us-east-1"), nil)
		token := e.user(users.Patch{})
		up.Set(upstreamfake.Behavior{CloseAfter: 1})
		a := e.do(call{path: "/proxy/aws/claude/v1/messages", header: map[string]string{"X-Api-Key": token}, body: body})
		s := string(a.body)
		if a.status != http.StatusOK || !strings.Contains(s, "Hello from") || !strings.Contains(s, "event: error\ndata: {\"error\":{\"message\":") || strings.Contains(s, "message_stop") {
			t.Errorf("status %d: %s", a.status, s)
		}
		e.logs.waitLines(t, `"httpRequest"`, 1)
		if u := e.get(token); u.TokenCounts["aws-claude"] != 11+3 {
			t.Errorf("charged %v; want aws-claude=14", u.TokenCounts)
		}
	})
}
