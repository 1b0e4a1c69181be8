package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// What the official OpenAI client reads from every translated route, for
// every shape a Claude or Gemini answer takes: the fakes answer each case
// in their API's own format (a Messages answer, Gemini's parts), whole
// and streamed, and the client must read what OpenAI itself would have
// sent, charged exactly what the upstream reported.

// fidelityCase is one answer, scripted in each API, and what the client
// must read from it.
type fidelityCase struct {
	name string
	// claude and gemini are the fakes' answers (usage included).
	claude, gemini upstreamfake.Behavior
	// edit changes the request (nil: the plain one).
	edit func(p *openai.ChatCompletionNewParams)
	// native is found in the body the upstream received ("": nothing
	// checked), by API.
	claudeSent, geminiSent string
	want                   wantedAnswer
	// claudeRefused: the route refuses the request for Claude, with a
	// 400 naming this.
	claudeRefused string
}

type wantedAnswer struct {
	content, reasoning string
	tools              []wantedCall
	finish             string
	in, out            int64
}

type wantedCall struct{ name, args string }

func claudeText(text string) map[string]any {
	return map[string]any{"type": "text", "text": text}
}

func claudeTool(id, name string, input any) map[string]any {
	return map[string]any{"type": "tool_use", "id": id, "name": name, "input": input}
}

func geminiCall(name string, args any) map[string]any {
	return map[string]any{"functionCall": map[string]any{"name": name, "args": args}}
}

var fidelityCases = []fidelityCase{
	{
		name: "text after a system prompt and turns",
		edit: func(p *openai.ChatCompletionNewParams) {
			p.Messages = []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Hi."),
				openai.AssistantMessage("Hello."), openai.UserMessage("Say hello again.")}
		},
		claude: upstreamfake.Behavior{Blocks: []map[string]any{claudeText("Hello again!")}, InputTokens: 21, OutputTokens: 4},
		gemini: upstreamfake.Behavior{Parts: []map[string]any{{"text": "Hello again!"}}, InputTokens: 21, OutputTokens: 4},
		want:   wantedAnswer{content: "Hello again!", finish: "stop", in: 21, out: 4},
	},
	{
		name: "a stop sequence",
		edit: func(p *openai.ChatCompletionNewParams) {
			p.Stop = openai.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"END"}}
		},
		claude:     upstreamfake.Behavior{Blocks: []map[string]any{claudeText("One, two")}, StopReason: "stop_sequence", InputTokens: 12, OutputTokens: 3},
		gemini:     upstreamfake.Behavior{Parts: []map[string]any{{"text": "One, two"}}, InputTokens: 12, OutputTokens: 3},
		claudeSent: `"stop_sequences":["END"]`, geminiSent: `"stopSequences":["END"]`,
		want: wantedAnswer{content: "One, two", finish: "stop", in: 12, out: 3},
	},
	{
		name:   "the output limit reached",
		claude: upstreamfake.Behavior{Blocks: []map[string]any{claudeText("Once upon")}, StopReason: "max_tokens", InputTokens: 12, OutputTokens: 200},
		gemini: upstreamfake.Behavior{Parts: []map[string]any{{"text": "Once upon"}}, FinishReason: "MAX_TOKENS", InputTokens: 12, OutputTokens: 200},
		want:   wantedAnswer{content: "Once upon", finish: "length", in: 12, out: 200},
	},
	{
		name: "thinking, text and two tool calls",
		edit: withWeatherTool,
		claude: upstreamfake.Behavior{Blocks: []map[string]any{
			{"type": "thinking", "thinking": "Two cities: two calls.", "signature": "c2ln"},
			claudeText("Looking both up."),
			claudeTool("toolu_01", "weather", map[string]any{"city": "Paris"}),
			claudeTool("toolu_02", "weather", map[string]any{"city": "Rome", "unit": "celsius"}),
		}, StopReason: "tool_use", InputTokens: 40, OutputTokens: 55},
		gemini: upstreamfake.Behavior{Parts: []map[string]any{
			{"text": "Two cities: two calls.", "thought": true},
			{"text": "Looking both up."},
			geminiCall("weather", map[string]any{"city": "Paris"}),
			geminiCall("weather", map[string]any{"city": "Rome", "unit": "celsius"}),
		}, InputTokens: 40, OutputTokens: 30, ReasoningTokens: 25},
		want: wantedAnswer{content: "Looking both up.", reasoning: "Two cities: two calls.", finish: "tool_calls", in: 40, out: 55,
			tools: []wantedCall{{"weather", `{"city":"Paris"}`}, {"weather", `{"city":"Rome","unit":"celsius"}`}}},
	},
	{
		// OpenAI sends "{}" for a call without arguments; Claude streams
		// its empty input as one empty piece.
		name:   "a tool call without arguments",
		edit:   withWeatherTool,
		claude: upstreamfake.Behavior{Blocks: []map[string]any{claudeTool("toolu_03", "clock", map[string]any{})}, StopReason: "tool_use", InputTokens: 30, OutputTokens: 9},
		gemini: upstreamfake.Behavior{Parts: []map[string]any{geminiCall("clock", map[string]any{})}, InputTokens: 30, OutputTokens: 9},
		want:   wantedAnswer{finish: "tool_calls", in: 30, out: 9, tools: []wantedCall{{"clock", "{}"}}},
	},
	{
		name: "a refusal",
		claude: upstreamfake.Behavior{Blocks: []map[string]any{claudeText("I can't help with that.")}, StopReason: "refusal",
			InputTokens: 12, OutputTokens: 6},
		gemini: upstreamfake.Behavior{Parts: []map[string]any{{"text": "I can't help with that."}}, FinishReason: "SAFETY",
			InputTokens: 12, OutputTokens: 6},
		want: wantedAnswer{content: "I can't help with that.", finish: "content_filter", in: 12, out: 6},
	},
	{
		// Gemini answers a prompt it will not read with no candidate at
		// all, only promptFeedback; Claude refuses before any text.
		name:   "a prompt refused outright",
		claude: upstreamfake.Behavior{Blocks: []map[string]any{}, StopReason: "refusal", InputTokens: 9},
		gemini: upstreamfake.Behavior{BlockReason: "PROHIBITED_CONTENT", InputTokens: 9},
		want:   wantedAnswer{finish: "content_filter", in: 9},
	},
	{
		name: "JSON mode",
		edit: func(p *openai.ChatCompletionNewParams) {
			p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}}
		},
		gemini:        upstreamfake.Behavior{Parts: []map[string]any{{"text": `{"greeting":"hello"}`}}, InputTokens: 12, OutputTokens: 6},
		geminiSent:    `"responseMimeType":"application/json"`,
		claudeRefused: "response_format",
		want:          wantedAnswer{content: `{"greeting":"hello"}`, finish: "stop", in: 12, out: 6},
	},
}

func withWeatherTool(p *openai.ChatCompletionNewParams) {
	p.Tools = []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name:       "weather",
			Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		}),
		openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "clock"}),
	}
}

func TestTranslatedSDKFidelity(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, nil)
			for _, fc := range fidelityCases {
				t.Run(fc.name, func(t *testing.T) { testFidelity(t, e, tm, fc) })
			}
		})
	}
}

// claudeMount reports a mount that speaks Claude's Messages API.
func (tm translatedMount) claude() bool { return tm.assistant == "assistant" }

func (tm translatedMount) client(e *env, token string) openai.Client {
	return openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/"+tm.mount+"/v1"), option.WithAPIKey(token), option.WithMaxRetries(0))
}

func testFidelity(t *testing.T, e *env, tm translatedMount, fc fidelityCase) {
	up := e.fake(tm.fake)
	b, sent := fc.gemini, fc.geminiSent
	if tm.claude() {
		b, sent = fc.claude, fc.claudeSent
	}
	up.Set(b)
	defer up.Set(upstreamfake.Behavior{})
	params := openai.ChatCompletionNewParams{Model: tm.model, MaxTokens: openai.Int(200),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}}
	if fc.edit != nil {
		fc.edit(&params)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, stream := range []bool{false, true} {
		token := e.user(users.Patch{})
		client := tm.client(e, token)
		before := up.Count()
		var got wantedAnswer
		var ids []string
		var err error
		if stream {
			got, ids, err = streamAnswer(ctx, client, params)
		} else {
			got, ids, err = wholeAnswer(ctx, client, params)
		}
		if tm.claude() && fc.claudeRefused != "" {
			mustContain(t, "refusal", asAPIError(t, err, http.StatusBadRequest).Message, fc.claudeRefused)
			if up.Count() != before {
				t.Error("a refused request reached the upstream")
			}
			continue
		}
		if err != nil {
			t.Fatalf("stream %v: %v", stream, err)
		}
		if sent != "" {
			mustContain(t, "the native request", string(up.Last(t).Body), sent)
		}
		if got.content != fc.want.content || got.reasoning != fc.want.reasoning || got.finish != fc.want.finish {
			t.Errorf("stream %v: content %q, reasoning %q, finish %q; want %q, %q, %q", stream,
				got.content, got.reasoning, got.finish, fc.want.content, fc.want.reasoning, fc.want.finish)
		}
		if got.in != fc.want.in || got.out != fc.want.out {
			t.Errorf("stream %v: usage %d+%d, want %d+%d", stream, got.in, got.out, fc.want.in, fc.want.out)
		}
		if len(got.tools) != len(fc.want.tools) {
			t.Errorf("stream %v: tool calls %v, want %v", stream, got.tools, fc.want.tools)
		}
		for i := range min(len(got.tools), len(fc.want.tools)) {
			if got.tools[i] != fc.want.tools[i] || ids[i] == "" || i > 0 && ids[i] == ids[i-1] {
				t.Errorf("stream %v: tool call %d is %v (id %q), want %v", stream, i, got.tools[i], ids[i], fc.want.tools[i])
			}
		}
		e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
		if u := e.get(token); u.TokenCounts[tm.family] != fc.want.in+fc.want.out || u.PromptCount != 1 {
			t.Errorf("stream %v: charged %v in %d prompts, want %s=%d in 1", stream, u.TokenCounts, u.PromptCount, tm.family, fc.want.in+fc.want.out)
		}
	}
}

// wholeAnswer asks for a chat completion and reads it as a client does.
func wholeAnswer(ctx context.Context, client openai.Client, params openai.ChatCompletionNewParams) (wantedAnswer, []string, error) {
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		return wantedAnswer{}, nil, err
	}
	if len(resp.Choices) != 1 {
		return wantedAnswer{}, nil, fmt.Errorf("%d choices in %s", len(resp.Choices), resp.RawJSON())
	}
	c := resp.Choices[0]
	// OpenAI's message always has content and refusal, null when none: a
	// client may test them against null (JavaScript's undefined is not).
	if c.Message.JSON.Content.Raw() == respjson.Omitted || c.Message.JSON.Refusal.Raw() == respjson.Omitted {
		return wantedAnswer{}, nil, fmt.Errorf("content or refusal left out of %s", resp.RawJSON())
	}
	a := wantedAnswer{content: c.Message.Content, reasoning: extraString(c.Message.JSON.ExtraFields["reasoning_content"].Raw()),
		finish: c.FinishReason, in: resp.Usage.PromptTokens, out: resp.Usage.CompletionTokens}
	var ids []string
	for _, tc := range c.Message.ToolCalls {
		a.tools = append(a.tools, wantedCall{tc.Function.Name, tc.Function.Arguments})
		ids = append(ids, tc.ID)
	}
	return a, ids, nil
}

// streamAnswer asks for a streamed chat completion with its usage and
// reads it with the SDK's accumulator, as a client does.
func streamAnswer(ctx context.Context, client openai.Client, params openai.ChatCompletionNewParams) (wantedAnswer, []string, error) {
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	var reasoning strings.Builder
	for stream.Next() {
		chunk := stream.Current()
		if !acc.AddChunk(chunk) {
			return wantedAnswer{}, nil, fmt.Errorf("the accumulator refused %s", chunk.RawJSON())
		}
		for _, c := range chunk.Choices {
			reasoning.WriteString(extraString(c.Delta.JSON.ExtraFields["reasoning_content"].Raw()))
		}
	}
	if err := stream.Err(); err != nil {
		var a wantedAnswer
		if len(acc.Choices) > 0 {
			a.content = acc.Choices[0].Message.Content
		}
		return a, nil, err
	}
	if len(acc.Choices) != 1 {
		return wantedAnswer{}, nil, fmt.Errorf("%d choices", len(acc.Choices))
	}
	c := acc.Choices[0]
	a := wantedAnswer{content: c.Message.Content, reasoning: reasoning.String(), finish: c.FinishReason,
		in: acc.Usage.PromptTokens, out: acc.Usage.CompletionTokens}
	var ids []string
	for _, tc := range c.Message.ToolCalls {
		a.tools = append(a.tools, wantedCall{tc.Function.Name, tc.Function.Arguments})
		ids = append(ids, tc.ID)
	}
	return a, ids, nil
}

// extraString reads a string member the SDK does not know ("" if none).
func extraString(raw string) string {
	var s string
	_ = json.Unmarshal([]byte(raw), &s)
	return s
}

// A tool loop with reasoning: the client sends the call back with its
// result, as the OpenAI client does (no thinking, no signature: OpenAI's
// messages have no place for them), and the upstream must take it.
// Claude refuses a tool loop that asks for thinking without the thinking
// block that began the turn; Gemini 3 refuses a call sent back without
// its thought signature.
func TestTranslatedToolLoopWithReasoning(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, map[string]string{"MAX_OUTPUT_TOKENS_ANTHROPIC": "32000", "MAX_OUTPUT_TOKENS_AWS": "32000",
				"MAX_OUTPUT_TOKENS_GCP": "32000", "MAX_OUTPUT_TOKENS_GOOGLE_AI": "32000"})
			token := e.user(users.Patch{})
			client := tm.client(e, token)
			up := e.fake(tm.fake)
			call := upstreamfake.Behavior{Blocks: []map[string]any{
				{"type": "thinking", "thinking": "Paris, then.", "signature": "c2ln"},
				claudeTool("toolu_01", "weather", map[string]any{"city": "Paris"}),
			}, StopReason: "tool_use"}
			answer := upstreamfake.Behavior{Blocks: []map[string]any{claudeText("It is 21 degrees.")}}
			model := tm.model
			if !tm.claude() {
				model = "gemini-3-flash-preview"
				call = upstreamfake.Behavior{Parts: []map[string]any{{"text": "Paris, then.", "thought": true}, geminiCall("weather", map[string]any{"city": "Paris"})}}
				answer = upstreamfake.Behavior{Parts: []map[string]any{{"text": "It is 21 degrees."}}}
			}
			params := openai.ChatCompletionNewParams{Model: model, MaxTokens: openai.Int(4096), ReasoningEffort: openai.ReasoningEffortLow,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather in Paris?")}}
			withWeatherTool(&params)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, stream := range []bool{false, true} {
				up.Set(call)
				var msg openai.ChatCompletionMessage
				if stream {
					s := client.Chat.Completions.NewStreaming(ctx, params)
					var acc openai.ChatCompletionAccumulator
					for s.Next() {
						acc.AddChunk(s.Current())
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
					msg = acc.Choices[0].Message
				} else {
					resp, err := client.Chat.Completions.New(ctx, params)
					if err != nil {
						t.Fatal(err)
					}
					msg = resp.Choices[0].Message
				}
				if len(msg.ToolCalls) != 1 {
					t.Fatalf("stream %v: no call in %+v", stream, msg)
				}
				first := up.Last(t).JSON()
				up.Set(answer)
				next := params
				next.Messages = append(append([]openai.ChatCompletionMessageParamUnion{}, params.Messages...),
					msg.ToParam(), openai.ToolMessage(`{"celsius":21}`, msg.ToolCalls[0].ID))
				resp, err := client.Chat.Completions.New(ctx, next)
				if err != nil {
					t.Fatalf("stream %v: the tool result sent back: %s", stream, asAPIError(t, err, http.StatusOK).RawJSON())
				}
				if got := resp.Choices[0].Message.Content; got != "It is 21 degrees." {
					t.Errorf("stream %v: answer %q", stream, got)
				}
				// The first request asked for the thinking the client wanted.
				if tm.claude() && first["thinking"] == nil || !tm.claude() && dig(first, "generationConfig", "thinkingConfig") == nil {
					t.Errorf("stream %v: the first request asked for no thinking: %v", stream, first)
				}
			}
		})
	}
}

// A client's Accept is for the answer of the route's API (OpenAI chat):
// the native request goes without it, so that the upstream answers the
// format the translation reads (Google answers protobuf to a client that
// accepts it, whose answer, untranslatable, was charged nothing).
func TestTranslatedRequestsGoWithoutTheClientsAccept(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, nil)
			tk := e.user(users.Patch{})
			for _, stream := range []string{"false", "true"} {
				a := e.do(call{path: "/proxy/" + tm.mount + "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer " + tk, "Accept": "application/x-protobuf"},
					body: `{"model":"` + tm.model + `","max_tokens":50,"stream":` + stream + `,"messages":[{"role":"user","content":"Say hello."}]}`})
				if a.status != http.StatusOK {
					t.Fatalf("stream %s: %d %s", stream, a.status, a.body)
				}
				if got := e.fake(tm.fake).Last(t).Header.Get("Accept"); got == "application/x-protobuf" {
					t.Errorf("stream %s: the native request asked for %s", stream, got)
				}
			}
		})
	}
}

// An upstream that reports no usage (a gateway in front of the provider)
// is charged an estimate on a translated route, as on the native one: the
// translation shows no usage it was not told, rather than zeros that
// would be charged as reported.
func TestTranslatedAnswerWithoutUsageIsEstimated(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, nil)
			e.fake(tm.fake).Set(upstreamfake.Behavior{NoUsage: true})
			params := openai.ChatCompletionNewParams{Model: tm.model, MaxTokens: openai.Int(200),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, stream := range []bool{false, true} {
				token := e.user(users.Patch{})
				client := tm.client(e, token)
				shown := false
				if stream {
					p := params
					p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
					s := client.Chat.Completions.NewStreaming(ctx, p)
					for s.Next() {
						shown = shown || s.Current().JSON.Usage.Valid()
					}
					if err := s.Err(); err != nil {
						t.Fatal(err)
					}
				} else {
					resp, err := client.Chat.Completions.New(ctx, params)
					if err != nil {
						t.Fatal(err)
					}
					shown = resp.JSON.Usage.Valid()
				}
				if shown {
					t.Errorf("stream %v: a usage the upstream never reported was shown", stream)
				}
				e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
				// At least a quarter of the answer's 29 bytes of text, and
				// something for the prompt.
				if u := e.get(token); u.TokenCounts[tm.family] < 8+1 || u.PromptCount != 1 {
					t.Errorf("stream %v: charged %v in %d prompts, want the estimate", stream, u.TokenCounts, u.PromptCount)
				}
			}
		})
	}
	t.Run("anthropic legacy completions", func(t *testing.T) {
		e := newEnv(t, nil)
		e.fake(upstreamfake.Anthropic).Set(upstreamfake.Behavior{NoUsage: true})
		for _, stream := range []string{"false", "true"} {
			token := e.user(users.Patch{})
			a := e.do(call{path: "/proxy/anthropic/v1/complete", header: map[string]string{"x-api-key": token},
				body: `{"model":"claude-sonnet-4-5","prompt":"\n\nHuman: Say hello.\n\nAssistant:","max_tokens_to_sample":100,"stream":` + stream + `}`})
			if a.status != http.StatusOK || strings.Contains(string(a.body), `"usage"`) {
				t.Errorf("stream %s: %d %s", stream, a.status, a.body)
			}
			e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
			if u := e.get(token); u.TokenCounts["claude"] < 8+1 || u.PromptCount != 1 {
				t.Errorf("stream %s: charged %v in %d prompts, want the estimate", stream, u.TokenCounts, u.PromptCount)
			}
		}
	})
}

// An error the upstream reports in the middle of a stream (Claude's error
// event, Gemini's error object, a Bedrock exception) reaches the OpenAI
// client as the error it raises, after the text that came before it; the
// request is charged as a stream cut short: the input reported and a
// quarter of the text relayed.
func TestTranslatedStreamErrorEvent(t *testing.T) {
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, nil)
			token := e.user(users.Patch{})
			e.fake(tm.fake).Set(upstreamfake.Behavior{StreamError: "Overloaded", InputTokens: 40, OutputTokens: 9})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, _, err := streamAnswer(ctx, tm.client(e, token), openai.ChatCompletionNewParams{Model: tm.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}})
			if err == nil || !strings.Contains(err.Error(), "Overloaded") || got.content != "Hello from" {
				t.Errorf("content %q, error %v", got.content, err)
			}
			e.logs.waitLines(t, `"httpRequest"`, 1)
			if u := e.get(token); u.TokenCounts[tm.family] != 40+3 || u.PromptCount != 1 {
				t.Errorf("charged %v in %d prompts, want %s=%d", u.TokenCounts, u.PromptCount, tm.family, 40+3)
			}
		})
	}
}

// Gemini's calls carry no id; the translation gives each one, unique as
// OpenAI's are, so that a client matching results to calls across the
// turns of a conversation never takes one call for another.
func TestTranslatedGeminiCallIDsAreUnique(t *testing.T) {
	for _, tm := range translatedMounts {
		if tm.claude() {
			continue // Claude's calls carry Claude's own ids
		}
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, nil)
			e.fake(tm.fake).Set(upstreamfake.Behavior{Parts: []map[string]any{
				geminiCall("weather", map[string]any{"city": "Paris"}), geminiCall("weather", map[string]any{"city": "Rome"})}})
			client := tm.client(e, e.user(users.Patch{}))
			params := openai.ChatCompletionNewParams{Model: tm.model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Weather?")}}
			withWeatherTool(&params)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			seen := map[string]bool{}
			for _, ask := range []func(context.Context, openai.Client, openai.ChatCompletionNewParams) (wantedAnswer, []string, error){
				wholeAnswer, wholeAnswer, streamAnswer, streamAnswer} {
				_, ids, err := ask(ctx, client, params)
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					if seen[id] || !strings.HasPrefix(id, "call_") {
						t.Errorf("call id %q given twice (or not OpenAI's call_ form): %v", id, seen)
					}
					seen[id] = true
				}
			}
		})
	}
}
