package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// translatedMount is a mount that serves OpenAI chat completions from its
// provider's own API; adding a mount (Bedrock's or Vertex's Claude) is a
// row.
type translatedMount struct {
	mount  string
	fake   upstreamfake.Kind
	model  string
	family string
	// nativePath is the path the upstream must see.
	nativePath func(stream bool) string
	// fetchesURLs: the provider fetches https image URLs itself.
	fetchesURLs bool
	// native reads what the fake received: the system prompt, the roles
	// of the turns, and the blocks or parts of turn i.
	system func(m map[string]any) string
	roles  func(m map[string]any) []string
	parts  func(m map[string]any, i int) []any
	// maxTokens is where the output limit went.
	maxTokens []string
	// assistant is the native name of the assistant's role.
	assistant string
	// toolDeltas is how many tool-call deltas a streamed call arrives in
	// (Claude streams the arguments in pieces; Gemini sends calls whole).
	toolDeltas int
	// env builds the proxy with this mount served (nil: newEnv, whose
	// fakes serve the direct providers).
	env func(t *testing.T, vars map[string]string) *env
	// failure is what the fake's refusal of a status says (nil: the
	// fakes' common message).
	failure func(status int) string
	// models is how many models the mount's list holds (from its fake).
	models int
}

func (tm translatedMount) failureText(status int) string {
	if tm.failure == nil {
		return "The fake upstream was told to fail."
	}
	return tm.failure(status)
}

func (tm translatedMount) newEnv(t *testing.T, vars map[string]string) *env {
	if tm.env == nil {
		return newEnv(t, vars)
	}
	return tm.env(t, vars)
}

// The cloud mounts' rows: the same Claude and Gemini, through Bedrock's
// and Vertex AI's own paths and credentials.
var cloudClaude = translatedMount{
	system:     func(m map[string]any) string { return str(dig(asMap(first(m["system"])), "text")) },
	roles:      func(m map[string]any) []string { return rolesOf(m["messages"], "role") },
	parts:      func(m map[string]any, i int) []any { return list(dig(asMap(at(m["messages"], i)), "content")) },
	maxTokens:  []string{"max_tokens"},
	assistant:  "assistant",
	toolDeltas: 4,
}

func bedrockRow() translatedMount {
	tm := cloudClaude
	tm.mount, tm.fake, tm.model, tm.family = "aws/claude", upstreamfake.Bedrock, "claude-sonnet-4-5", "aws-claude"
	tm.models = 6 // the fake's Claude models; not their provisioned-only variants
	tm.nativePath = func(stream bool) string {
		if stream {
			return "/us-east-1/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream"
		}
		return "/us-east-1/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
	}
	tm.env = func(t *testing.T, vars map[string]string) *env {
		e, _ := newBedrockEnv(t, awsCred("AKIDTRANSLATE", "us-east-1"), vars)
		return e
	}
	tm.failure = func(status int) string {
		if status == http.StatusTooManyRequests {
			return "ThrottlingException: Too many requests"
		}
		return "ServiceUnavailableException: Bedrock is unable to process your request."
	}
	return tm
}

var geminiRow = translatedMount{
	mount: "google-ai", fake: upstreamfake.Google, model: "gemini-2.5-flash", family: "gemini-flash",
	nativePath: func(stream bool) string {
		if stream {
			return "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
		}
		return "/v1beta/models/gemini-2.5-flash:generateContent"
	},
	system: func(m map[string]any) string {
		return str(dig(asMap(first(dig(m, "systemInstruction", "parts"))), "text"))
	},
	roles:      func(m map[string]any) []string { return rolesOf(m["contents"], "role") },
	parts:      func(m map[string]any, i int) []any { return list(dig(asMap(at(m["contents"], i)), "parts")) },
	maxTokens:  []string{"generationConfig", "maxOutputTokens"},
	assistant:  "model",
	toolDeltas: 1,
	models:     2,
}

func vertexGeminiRow() translatedMount {
	tm := geminiRow // as on /google-ai
	tm.mount, tm.fake, tm.family = "gcp/gemini", upstreamfake.Vertex, "gcp-gemini-flash"
	tm.nativePath = func(stream bool) string {
		method := "generateContent"
		if stream {
			method = "streamGenerateContent"
		}
		return "/v1/projects/tollgate-test/locations/us-east5/publishers/google/models/gemini-2.5-flash:" + method
	}
	tm.env = vertexClaudeRow().env
	return tm
}

func vertexClaudeRow() translatedMount {
	tm := cloudClaude
	tm.mount, tm.fake, tm.model, tm.family = "gcp/claude", upstreamfake.Vertex, "claude-sonnet-4-5@20250929", "gcp-claude"
	tm.models = 3
	tm.nativePath = func(stream bool) string {
		method := "rawPredict"
		if stream {
			method = "streamRawPredict"
		}
		return "/v1/projects/tollgate-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:" + method
	}
	tm.env = func(t *testing.T, vars map[string]string) *env {
		e, _ := vertexEnv(t, nil, vars)
		return e
	}
	return tm
}

var translatedMounts = []translatedMount{
	{
		mount: "anthropic", fake: upstreamfake.Anthropic, model: "claude-sonnet-4-5-20250929", family: "claude",
		nativePath:  func(bool) string { return "/v1/messages" },
		fetchesURLs: true,
		system:      func(m map[string]any) string { return str(dig(asMap(first(m["system"])), "text")) },
		roles:       func(m map[string]any) []string { return rolesOf(m["messages"], "role") },
		parts:       func(m map[string]any, i int) []any { return list(dig(asMap(at(m["messages"], i)), "content")) },
		maxTokens:   []string{"max_tokens"},
		assistant:   "assistant",
		toolDeltas:  4, // the start, then the arguments in the fake's 3 pieces
		models:      2,
	},
	geminiRow,
	bedrockRow(),
	vertexClaudeRow(),
	vertexGeminiRow(),
}

func TestTranslatedChat(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) { testTranslatedChat(t, tm) })
	}
}

func testTranslatedChat(t *testing.T, tm translatedMount) {
	e := tm.newEnv(t, map[string]string{"ALLOWED_VISION_SERVICES": "anthropic,google-ai,aws,gcp"})
	token := e.user(users.Patch{})
	up := e.fake(tm.fake)
	client := openai.NewClient(
		option.WithBaseURL(e.srv.URL+"/proxy/"+tm.mount+"/v1"),
		option.WithAPIKey(token),
		option.WithMaxRetries(0),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	params := openai.ChatCompletionNewParams{
		Model:     tm.model,
		MaxTokens: openai.Int(200),
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("Be brief."),
			openai.UserMessage("Say hello."),
		},
	}
	charged, prompts := int64(0), int64(0)
	wantCharged := func(t *testing.T, add int64) {
		t.Helper()
		charged += add
		if add > 0 {
			prompts++
		}
		u := e.get(token)
		if u.TokenCounts[tm.family] != charged || u.PromptCount != prompts {
			t.Errorf("charged %v, %d prompts; want %s=%d, %d prompts", u.TokenCounts, u.PromptCount, tm.family, charged, prompts)
		}
	}

	t.Run("text", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Message.Content; got != "Hello from the fake upstream!" {
			t.Errorf("content %q", got)
		}
		if resp.Choices[0].FinishReason != "stop" || resp.Usage.PromptTokens != 11 || resp.Usage.CompletionTokens != 7 {
			t.Errorf("finish %q, usage %+v", resp.Choices[0].FinishReason, resp.Usage)
		}
		last := up.Last(t)
		native := last.JSON()
		if last.Path != tm.nativePath(false) {
			t.Errorf("upstream path %s, want %s", last.Path, tm.nativePath(false))
		}
		if got := tm.system(native); got != "Be brief." {
			t.Errorf("system prompt %q; native request %s", got, last.Body)
		}
		if got := tm.roles(native); strings.Join(got, ",") != "user" {
			t.Errorf("roles %v", got)
		}
		if got := dig(native, tm.maxTokens...); got != float64(200) {
			t.Errorf("output limit %v at %v", got, tm.maxTokens)
		}
		wantCharged(t, 18)
	})

	t.Run("streamed", func(t *testing.T) {
		hold := make(chan struct{})
		up.Set(upstreamfake.Behavior{HoldAfterFirst: hold, InputTokens: 20, OutputTokens: 9})
		defer up.Set(upstreamfake.Behavior{})
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		var finish string
		released, sawUsage := false, false
		for stream.Next() {
			chunk := stream.Current()
			if len(chunk.Choices) == 0 {
				sawUsage = true
			}
			for _, c := range chunk.Choices {
				text.WriteString(c.Delta.Content)
				if c.FinishReason != "" {
					finish = c.FinishReason
				}
			}
			if !released && text.Len() > 0 {
				// The first words came while the upstream held the rest:
				// the translation buffers nothing.
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
		if text.String() != "Hello from the fake upstream!" || finish != "stop" {
			t.Errorf("streamed text %q, finish %q", text.String(), finish)
		}
		if sawUsage {
			t.Error("a usage chunk reached a client that did not ask for it")
		}
		if last := up.Last(t); last.Path != tm.nativePath(true) {
			t.Errorf("upstream path %s, want %s", last.Path, tm.nativePath(true))
		}
		wantCharged(t, 29)

		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream = client.Chat.Completions.NewStreaming(ctx, p)
		var usage openai.CompletionUsage
		for stream.Next() {
			if c := stream.Current(); len(c.Choices) == 0 {
				usage = c.Usage
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if usage.PromptTokens != 20 || usage.CompletionTokens != 9 || usage.TotalTokens != 29 {
			t.Errorf("a client that asked for usage got %+v", usage)
		}
		wantCharged(t, 29)
	})

	t.Run("image", func(t *testing.T) {
		const png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
		p := params
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.TextContentPart("What is this?"),
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64," + png}),
		})}
		if _, err := client.Chat.Completions.New(ctx, p); err != nil {
			t.Fatal(err)
		}
		parts := tm.parts(up.Last(t).JSON(), 0)
		if len(parts) != 2 || !strings.Contains(string(mustJSON(parts[1])), png) || !strings.Contains(string(mustJSON(parts[1])), "image/png") {
			t.Errorf("native parts %s", mustJSON(parts))
		}
		wantCharged(t, 18)

		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.TextContentPart("What is this?"),
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "https://example.com/cat.png"}),
		})}
		before := up.Count()
		_, err := client.Chat.Completions.New(ctx, p)
		if tm.fetchesURLs {
			if err != nil {
				t.Fatal(err)
			}
			if got := string(mustJSON(tm.parts(up.Last(t).JSON(), 0)[1])); !strings.Contains(got, `"url":"https://example.com/cat.png"`) {
				t.Errorf("native image part %s", got)
			}
			wantCharged(t, 18)
			return
		}
		apiErr := asAPIError(t, err, http.StatusBadRequest)
		mustContain(t, "refusal", apiErr.Message, "messages[0].content[1].image_url.url")
		if apiErr.Type != "invalid_request_error" || up.Count() != before {
			t.Errorf("type %q; upstream asked %d times", apiErr.Type, up.Count()-before)
		}
	})

	t.Run("tools", func(t *testing.T) {
		const args = `{"city":"Paris","unit":"celsius"}`
		up.Set(upstreamfake.Behavior{Text: "Let me look.", ToolCall: &upstreamfake.ToolCall{ID: "toolu_01", Name: "weather", Arguments: args}})
		defer up.Set(upstreamfake.Behavior{})
		p := params
		p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name: "weather", Description: openai.String("The weather in a city."),
			Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		})}
		p.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "weather"})
		resp, err := client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		msg := resp.Choices[0].Message
		if len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "weather" || msg.ToolCalls[0].Function.Arguments != args ||
			resp.Choices[0].FinishReason != "tool_calls" || msg.Content != "Let me look." {
			t.Fatalf("answer %s", resp.RawJSON())
		}
		native := string(up.Last(t).Body)
		mustContain(t, "native tools", native, `"weather"`)
		mustContain(t, "native tools", native, `"The weather in a city."`)
		wantCharged(t, 18)

		// The round trip: the call and its result go back.
		up.Set(upstreamfake.Behavior{})
		p.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{}
		p.Messages = append(append([]openai.ChatCompletionMessageParamUnion{}, params.Messages...), msg.ToParam(),
			openai.ToolMessage(`{"temp":21}`, msg.ToolCalls[0].ID))
		resp, err = client.Chat.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content != "Hello from the fake upstream!" {
			t.Errorf("answer %s", resp.RawJSON())
		}
		sent := up.Last(t).JSON()
		if got := strings.Join(tm.roles(sent), ","); got != "user,"+tm.assistant+",user" {
			t.Errorf("roles %s", got)
		}
		call, result := string(mustJSON(tm.parts(sent, 1))), string(mustJSON(tm.parts(sent, 2)))
		mustContain(t, "the call sent back", call, `"city":"Paris"`)
		mustContain(t, "the call sent back", call, "weather")
		mustContain(t, "the result sent back", strings.ReplaceAll(result, `\"`, `"`), `{"temp":21}`)
		wantCharged(t, 18)

		// Streamed: the call arrives as tool-call deltas.
		up.Set(upstreamfake.Behavior{Text: "Let me look.", ToolCall: &upstreamfake.ToolCall{ID: "toolu_02", Name: "weather", Arguments: args}})
		p.Messages = params.Messages
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		deltas := 0
		for stream.Next() {
			chunk := stream.Current()
			acc.AddChunk(chunk)
			for _, c := range chunk.Choices {
				deltas += len(c.Delta.ToolCalls)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		got := acc.Choices[0].Message
		if len(got.ToolCalls) != 1 || got.ToolCalls[0].Function.Name != "weather" || got.ToolCalls[0].Function.Arguments != args ||
			got.ToolCalls[0].ID == "" || acc.Choices[0].FinishReason != "tool_calls" || got.Content != "Let me look." {
			t.Errorf("streamed answer %+v, finish %q", got, acc.Choices[0].FinishReason)
		}
		if deltas != tm.toolDeltas {
			t.Errorf("%d tool-call deltas streamed, want %d", deltas, tm.toolDeltas)
		}
		wantCharged(t, 18)
	})

	t.Run("stream cut short", func(t *testing.T) {
		up.Set(upstreamfake.Behavior{CloseAfter: 1, InputTokens: 40, OutputTokens: 9})
		defer up.Set(upstreamfake.Behavior{})
		body := `{"model":"` + tm.model + `","stream":true,"messages":[{"role":"user","content":"Say hello."}]}`
		a := e.do(call{path: "/proxy/" + tm.mount + "/v1/chat/completions", body: body, header: bearerH(token)})
		var text strings.Builder
		broken := false
		for _, line := range strings.Split(string(a.body), "\n") {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var chunk map[string]any
			if err := json.Unmarshal([]byte(data), &chunk); err != nil {
				t.Fatalf("chunk %q", data)
			}
			text.WriteString(str(dig(asMap(first(chunk["choices"])), "delta", "content")))
			broken = broken || dig(chunk, "error", "code") == "upstream_stream_broken"
		}
		if a.status != 200 || !broken || text.String() != "Hello from" || strings.Contains(string(a.body), "[DONE]") {
			t.Errorf("a broken stream: %d %s", a.status, a.body)
		}
		// The usage comes at the end of a translated stream: one cut short
		// is charged the input the native stream reported, and an
		// estimate of the relayed text.
		e.logs.waitLines(t, `"route":"POST /`+tm.mount+`/v1/chat/completions"`, int(prompts)+1)
		wantCharged(t, 40+int64(len("Hello from")+3)/4)
	})

	t.Run("refusals", func(t *testing.T) {
		before := up.Count()
		_, err := client.Chat.Completions.New(ctx, params, option.WithJSONSet("frobnicate", true))
		apiErr := asAPIError(t, err, http.StatusBadRequest)
		mustContain(t, "refusal", apiErr.Message, "frobnicate")

		p := params
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.ToolMessage("x", "call_nowhere")}
		_, err = client.Chat.Completions.New(ctx, p)
		mustContain(t, "refusal", asAPIError(t, err, http.StatusBadRequest).Message, "messages[0].tool_call_id")

		// The proxy's own refusals are told in OpenAI's shape.
		other := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/"+tm.mount+"/v1"), option.WithAPIKey("not-a-token"), option.WithMaxRetries(0))
		_, err = other.Chat.Completions.New(ctx, params)
		apiErr = asAPIError(t, err, http.StatusUnauthorized)
		if apiErr.Message == "" {
			t.Errorf("no message in %s", apiErr.RawJSON())
		}
		if up.Count() != before {
			t.Errorf("refused requests reached the upstream %d times", up.Count()-before)
		}

		// The upstream's errors too, with their status.
		up.Set(upstreamfake.Behavior{Status: http.StatusTooManyRequests})
		defer up.Set(upstreamfake.Behavior{})
		_, err = client.Chat.Completions.New(ctx, params)
		apiErr = asAPIError(t, err, http.StatusTooManyRequests)
		if !strings.HasPrefix(apiErr.Message, tm.failureText(http.StatusTooManyRequests)) || apiErr.Type != "rate_limit_error" {
			t.Errorf("upstream error relayed as %s", apiErr.RawJSON())
		}
		wantCharged(t, 0)
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != tm.models {
			t.Fatalf("%d models listed, want %d: %s", len(page.Data), tm.models, page.RawJSON())
		}
		for _, m := range page.Data {
			if m.ID == "" || strings.Contains(m.ID, "/") || m.Object != "model" || m.OwnedBy == "" {
				t.Errorf("model %s", m.RawJSON())
			}
		}
		// The path without /v1 lists them too.
		a := e.do(call{method: http.MethodGet, path: "/proxy/" + tm.mount + "/models", header: bearerH(token)})
		if a.status != http.StatusOK || len(list(a.json(t)["data"])) != tm.models {
			t.Errorf("GET /models: %d %s", a.status, a.body)
		}
		// Every id listed is one the mount takes back.
		for _, m := range page.Data {
			p := params
			p.Model = m.ID
			if _, err := client.Chat.Completions.New(ctx, p); err != nil {
				t.Errorf("model %s listed, then: %v", m.ID, err)
			}
		}
	})

	e.neverSaw(token)
}

func asAPIError(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an API error %d, got %T %v", status, err, err)
	}
	if apiErr.StatusCode != status {
		t.Errorf("status %d, want %d: %s", apiErr.StatusCode, status, apiErr.RawJSON())
	}
	return apiErr
}

func first(v any) any { return at(v, 0) }

func at(v any, i int) any {
	l, _ := v.([]any)
	if i < len(l) {
		return l[i]
	}
	return nil
}

func list(v any) []any { l, _ := v.([]any); return l }

func str(v any) string { s, _ := v.(string); return s }

func rolesOf(v any, key string) []string {
	var out []string
	for _, m := range list(v) {
		out = append(out, str(dig(asMap(m), key)))
	}
	return out
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Claude reports a stream's input in message_start and Gemini in every
// chunk, while a translated stream tells its usage only in its last chunk:
// a client that leaves a translated stream is charged the input the native
// stream reported, as on the native route (TestClientDisconnectMidStream),
// not the proxy's estimate of the prompt.
func TestTranslatedStreamLeftChargesReportedInput(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			body := `{"model":"` + tm.model + `","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`
			leaveTranslatedStream(t, tm.newEnv(t, nil), tm.fake, tm.family, "/proxy/"+tm.mount+"/v1/chat/completions", body, bearerH)
		})
	}
	t.Run("anthropic legacy completions", func(t *testing.T) {
		body := `{"model":"claude-sonnet-4-5","prompt":"\n\nHuman: Say hello.\n\nAssistant:","max_tokens_to_sample":100,"stream":true}`
		leaveTranslatedStream(t, newEnv(t, nil), upstreamfake.Anthropic, "claude", "/proxy/anthropic/v1/complete", body,
			func(token string) map[string]string { return map[string]string{"x-api-key": token} })
	})
}

// leaveTranslatedStream asks for a stream whose upstream reports 5000 input
// tokens, leaves after its first text, and checks the charge.
func leaveTranslatedStream(t *testing.T, e *env, fake upstreamfake.Kind, family, path, body string, auth func(token string) map[string]string) {
	t.Helper()
	token := e.user(users.Patch{})
	up := e.fake(fake)
	hold := make(chan struct{}) // never released: only the client can end this
	defer close(hold)
	up.Set(upstreamfake.Behavior{HoldAfterFirst: hold, InputTokens: 5000, OutputTokens: 7})

	e.streamUntil(t, call{path: path, body: body, header: auth(token)}, "Hello from", "its first chunk")()

	if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 }) {
		t.Fatalf("the upstream request was not cancelled (in flight %d)", up.InFlight())
	}
	e.logs.waitLines(t, `"httpRequest"`, 1)
	// The reported input plus a quarter of the relayed "Hello from".
	if u := e.get(token); u.PromptCount != 1 || u.TokenCounts[family] != 5000+3 {
		t.Errorf("charged %d prompts, %v; want 1 prompt and %s=%d, the reported input", u.PromptCount, u.TokenCounts, family, 5000+3)
	}
}

// Every route is served without its /v1 too, as in the original: an
// OpenAI client given the mount alone as its base URL works.
func TestRoutesWithoutV1(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		mount, model, upstreamPath string
		fake                       upstreamfake.Kind
	}{
		{"openai", "gpt-4.1", "/v1/chat/completions", upstreamfake.OpenAI},
		{"anthropic", "claude-sonnet-4-5", "/v1/messages", upstreamfake.Anthropic},
	} {
		client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/"+tc.mount), option.WithAPIKey(token), option.WithMaxRetries(0))
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: tc.model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}})
		if err != nil {
			t.Fatalf("%s: %v", tc.mount, err)
		}
		if resp.Choices[0].Message.Content != "Hello from the fake upstream!" {
			t.Errorf("%s: %s", tc.mount, resp.RawJSON())
		}
		if p := e.fake(tc.fake).Last(t).Path; p != tc.upstreamPath {
			t.Errorf("%s: upstream path %s, want %s", tc.mount, p, tc.upstreamPath)
		}
	}
	e.logs.waitLines(t, `"route":"POST /anthropic/v1/chat/completions"`, 1)
}

// Anthropic's legacy text completions are served from the Messages API
// and charged as Messages answers are.
func TestAnthropicLegacyComplete(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.Anthropic)
	h := map[string]string{"x-api-key": token}
	const prompt = `"You are terse.\n\nHuman: Say hello.\n\nAssistant: Sure.\n\nHuman: Go on.\n\nAssistant:"`

	a := e.do(call{path: "/proxy/anthropic/v1/complete", header: h,
		body: `{"model":"claude-sonnet-4-5","prompt":` + prompt + `,"max_tokens_to_sample":300,"stop_sequences":["\n\nHuman:"]}`})
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	m := a.json(t)
	if m["type"] != "completion" || m["completion"] != "Hello from the fake upstream!" || m["stop_reason"] != "stop_sequence" {
		t.Errorf("answer %s", a.body)
	}
	native := up.Last(t)
	if native.Path != "/v1/messages" {
		t.Errorf("upstream path %s", native.Path)
	}
	want := `{"max_tokens":300,"messages":[{"content":[{"text":"Say hello.","type":"text"}],"role":"user"},{"content":[{"text":"Sure.","type":"text"}],"role":"assistant"},{"content":[{"text":"Go on.","type":"text"}],"role":"user"}],"model":"claude-sonnet-4-5","stop_sequences":["\n\nHuman:"],"stream":false,"system":"You are terse."}`
	if string(mustJSON(native.JSON())) != want {
		t.Errorf("native request\n%s\nwant\n%s", mustJSON(native.JSON()), want)
	}
	if u := e.get(token); u.TokenCounts["claude"] != 18 {
		t.Errorf("charged %v", u.TokenCounts)
	}

	up.Set(upstreamfake.Behavior{InputTokens: 20, OutputTokens: 9})
	a = e.do(call{path: "/proxy/anthropic/v1/complete", header: h,
		body: `{"model":"claude-sonnet-4-5","prompt":` + prompt + `,"max_tokens_to_sample":300,"stream":true}`})
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var text strings.Builder
	stops := 0
	for _, line := range strings.Split(string(a.body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev["type"] != "completion" {
			t.Fatalf("event %s", data)
		}
		text.WriteString(str(ev["completion"]))
		if ev["stop_reason"] != nil {
			stops++
		}
	}
	if text.String() != "Hello from the fake upstream!" || stops != 1 {
		t.Errorf("streamed %q with %d ends:\n%s", text.String(), stops, a.body)
	}
	if u := e.get(token); u.TokenCounts["claude"] != 18+29 || u.PromptCount != 2 {
		t.Errorf("charged %v, %d prompts", u.TokenCounts, u.PromptCount)
	}

	a = e.do(call{path: "/proxy/anthropic/v1/complete", header: h, body: `{"model":"claude-sonnet-4-5","prompt":"\n\nHuman: hi\n\nAssistant:"}`})
	if a.status != 400 || dig(a.json(t), "error", "type") != "invalid_request_error" || !strings.Contains(string(a.body), "max_tokens_to_sample") {
		t.Errorf("no limit: %d %s", a.status, a.body)
	}
}

// With ERROR_FORMAT=completion, an upstream error on a translated route is
// a chat completion the OpenAI client shows, not the provider's answer.
func TestTranslatedErrorAsCompletion(t *testing.T) {
	for _, tm := range translatedMounts {
		e := tm.newEnv(t, map[string]string{"ERROR_FORMAT": "completion"})
		token := e.user(users.Patch{})
		e.fake(tm.fake).Set(upstreamfake.Behavior{Status: http.StatusServiceUnavailable})
		client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/"+tm.mount+"/v1"), option.WithAPIKey(token), option.WithMaxRetries(0))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: tm.model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", tm.mount, err)
		}
		got := resp.Choices[0].Message.Content
		if !strings.HasPrefix(got, "[tollgate] Upstream error (503 from ") || !strings.Contains(got, tm.failureText(http.StatusServiceUnavailable)) {
			t.Errorf("%s: %q", tm.mount, got)
		}
		if u := e.get(token); u.PromptCount != 0 {
			t.Errorf("%s: errors charged: %+v", tm.mount, u.TokenCounts)
		}
	}
}

// A client that leaves a translated stream after the answer's last text,
// while the upstream has yet to report the usage, is charged the usage the
// upstream reports (the upstream is read on, as on the native route:
// TestLeavingBeforeUsageChargesTheReport), not an estimate of the text:
// Claude's answer ends with content_block_stop, which the translation
// shows nothing of, before its message_delta reports the output.
func TestTranslatedLeavingBeforeUsageChargesTheReport(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, nil)
			token := e.user(users.Patch{})
			up := e.fake(tm.fake)
			hold := make(chan struct{})
			up.Set(upstreamfake.Behavior{HoldBeforeUsage: hold, InputTokens: 11, OutputTokens: 700})
			body := `{"model":"` + tm.model + `","stream":true,"messages":[{"role":"user","content":"Say hello."}]}`
			leave := e.streamUntil(t, call{path: "/proxy/" + tm.mount + "/v1/chat/completions", body: body, header: bearerH(token)},
				"upstream!", "its last text")
			time.Sleep(100 * time.Millisecond) // what followed the text has been read
			leave()
			time.Sleep(200 * time.Millisecond) // the proxy notices the client is gone
			close(hold)
			e.logs.waitLines(t, `"httpRequest"`, 1)
			if got := e.get(token).TokenCounts[tm.family]; got != 711 {
				t.Errorf("charged %d, want the 711 tokens the upstream reported", got)
			}
			if up.Cancelled() != 0 {
				t.Error("the upstream was cancelled although only its usage was left")
			}
		})
	}
}

// A translated request of more messages, parts, tool calls and tools than
// the translation holds (shared/providers TestTranslatedRequestItemsBounded)
// is refused with a 400 in OpenAI's shape, on every translated chat route,
// before anything is sent upstream.
func TestTranslatedRequestTooManyItems(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "claude,gemini-flash,dall-e", "IMAGE_MODEL_RATE_LIMIT": "0"})
	token := e.user(users.Patch{})
	msgs := strings.TrimSuffix(strings.Repeat(`{"role":"user","content":"Image: a"},`, 100_001), ",")
	for mount, model := range map[string]string{"anthropic": "claude-sonnet-4-5", "google-ai": "gemini-2.5-flash", "openai-image": "dall-e-3"} {
		a := e.do(call{path: "/proxy/" + mount + "/v1/chat/completions", header: bearerH(token),
			body: `{"model":"` + model + `","messages":[` + msgs + `]}`})
		if a.status != http.StatusBadRequest || dig(a.json(t), "error", "type") != "invalid_request_error" ||
			!strings.Contains(str(dig(a.json(t), "error", "message")), "100000") {
			t.Errorf("%s: %d %.300s", mount, a.status, a.body)
		}
	}
	for _, k := range []upstreamfake.Kind{upstreamfake.Anthropic, upstreamfake.Google, upstreamfake.OpenAI} {
		if n := e.fake(k).Count(); n != 0 {
			t.Errorf("%s asked %d times", k, n)
		}
	}
}

// With no clamp (MAX_OUTPUT_TOKENS_…=0), a request that names no limit is
// sent Claude's required max_tokens by the translation (4096): the quota
// reserves it, as it reserves a limit the client names, and a stream cut
// short while Claude thinks is charged it, as the limit asked.
func TestTranslatedClaudeDefaultLimitIsReserved(t *testing.T) {
	unclamped := map[string]string{"MAX_OUTPUT_TOKENS_ANTHROPIC": "0", "MAX_OUTPUT_TOKENS_AWS": "0", "MAX_OUTPUT_TOKENS_GCP": "0"}
	for _, tm := range translatedMounts {
		if !tm.claude() {
			continue
		}
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, unclamped)
			path := "/proxy/" + tm.mount + "/v1/chat/completions"
			body := `{"model":"` + tm.model + `","messages":[{"role":"user","content":"Say hello."}]}`
			tight := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{tm.family: 1000})})
			a := e.do(call{path: path, body: body, header: bearerH(tight)})
			if a.status != http.StatusTooManyRequests || dig(a.json(t), "error", "requested") == nil {
				t.Errorf("4096 output tokens sent with 1000 left: %d %s", a.status, a.body)
			}

			token := e.user(users.Patch{})
			e.fake(tm.fake).Set(upstreamfake.Behavior{CloseAfter: 1, InputTokens: 40})
			stream := `{"model":"` + tm.model + `","stream":true,"reasoning_effort":"low","messages":[{"role":"user","content":"Say hello."}]}`
			e.do(call{path: path, body: stream, header: bearerH(token)})
			if got := dig(e.fake(tm.fake).Last(t).JSON(), "max_tokens"); got != float64(4096) {
				t.Errorf("native max_tokens %v", got)
			}
			e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
			if got := e.get(token).TokenCounts[tm.family]; got != 40+4096 {
				t.Errorf("a thinking stream cut short charged %d, want the input reported and the 4096 sent (%d)", got, 40+4096)
			}
		})
	}
}
