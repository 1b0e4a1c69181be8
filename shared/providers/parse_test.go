package providers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	cases := []struct {
		name    string
		f       *Format
		body    string
		limit   int64
		clamp   bool
		want    string // body as forwarded
		model   string
		stream  bool
		maxOut  int64
		hasMax  bool
		hide    bool
		invalid bool
	}{
		{name: "chat untouched", f: OpenAIChat, body: `{"model":"gpt-4o","max_tokens":10,"messages":[]}`, limit: 1024, clamp: true,
			want: `{"model":"gpt-4o","max_tokens":10,"messages":[]}`, model: "gpt-4o", maxOut: 10, hasMax: true},
		{name: "no limit: the clamp added", f: OpenAIChat, body: `{"model":"gpt-4o","messages":[]}`, limit: 1024, clamp: true,
			want: `{"model":"gpt-4o","messages":[],"max_completion_tokens":1024}`, model: "gpt-4o", maxOut: 1024, hasMax: true},
		{name: "no limit, empty body", f: OpenAIChat, body: `{ }`, limit: 1024, clamp: true,
			want: `{ "max_completion_tokens":1024}`, maxOut: 1024, hasMax: true},
		{name: "no limit, exempt: none added", f: OpenAIChat, body: `{"model":"gpt-4o"}`, limit: 1024, clamp: false,
			want: `{"model":"gpt-4o"}`, model: "gpt-4o"},
		{name: "no limit, no clamp: none added", f: OpenAIChat, body: `{"model":"gpt-4o"}`, limit: 0, clamp: true,
			want: `{"model":"gpt-4o"}`, model: "gpt-4o"},
		{name: "no limit, stream", f: OpenAIChat, body: `{"stream":true}`, limit: 1024, clamp: true,
			want: `{"stream":true,"max_completion_tokens":1024,"stream_options":{"include_usage":true}}`, stream: true, hide: true, maxOut: 1024, hasMax: true},
		{name: "no limit, anthropic: the API requires one", f: AnthropicMessages, body: `{"model":"c"}`, limit: 1024, clamp: true,
			want: `{"model":"c"}`, model: "c"},
		{name: "no limit, google: config added", f: GoogleGenerate, body: `{"contents":[]}`, limit: 1024, clamp: true,
			want: `{"contents":[],"generationConfig":{"maxOutputTokens":1024}}`, maxOut: 1024, hasMax: true},
		{name: "no limit, google: last config completed", f: GoogleGenerate, body: `{"generationConfig":{"topK":1},"generationConfig":{"topK":2}}`, limit: 1024, clamp: true,
			want: `{"generationConfig":{"topK":1},"generationConfig":{"topK":2,"maxOutputTokens":1024}}`, maxOut: 1024, hasMax: true},
		{name: "google: a limit in an earlier config only, the last completed", f: GoogleGenerate,
			body: `{"generationConfig":{"maxOutputTokens":10},"generationConfig":{"topK":2}}`, limit: 1024, clamp: true,
			want: `{"generationConfig":{"maxOutputTokens":10},"generationConfig":{"topK":2,"maxOutputTokens":1024}}`, maxOut: 1024, hasMax: true},
		{name: "google: a limit in the other spelling's earlier config only", f: GoogleGenerate,
			body: `{"generation_config":{"max_output_tokens":10},"generationConfig":{}}`, limit: 1024, clamp: true,
			want: `{"generation_config":{"max_output_tokens":10},"generationConfig":{"maxOutputTokens":1024}}`, maxOut: 1024, hasMax: true},
		{name: "google: the last config's limit counts", f: GoogleGenerate,
			body: `{"generationConfig":{"topK":2},"generationConfig":{"maxOutputTokens":10}}`, limit: 1024, clamp: true,
			want: `{"generationConfig":{"topK":2},"generationConfig":{"maxOutputTokens":10}}`, maxOut: 10, hasMax: true},
		{name: "no limit, google: config of another type left", f: GoogleGenerate, body: `{"generationConfig":[]}`, limit: 1024, clamp: true,
			want: `{"generationConfig":[]}`},
		// Two limits under different names: an upstream may take either,
		// so the larger is counted (before, the last: 1 reserved, and up
		// to 1000 generated).
		{name: "two limits: the larger counts", f: OpenAIChat, body: `{"max_completion_tokens":1000,"max_tokens":1}`, limit: 1024, clamp: true,
			want: `{"max_completion_tokens":1000,"max_tokens":1}`, maxOut: 1000, hasMax: true},
		{name: "google: two spellings in one config, the larger counts", f: GoogleGenerate,
			body: `{"generationConfig":{"maxOutputTokens":900,"max_output_tokens":5}}`, limit: 1024, clamp: true,
			want: `{"generationConfig":{"maxOutputTokens":900,"max_output_tokens":5}}`, maxOut: 900, hasMax: true},
		{name: "clamp", f: OpenAIChat, body: `{"max_tokens":4096,"model":"gpt-4o"}`, limit: 1024, clamp: true,
			want: `{"max_tokens":1024,"model":"gpt-4o"}`, model: "gpt-4o", maxOut: 1024, hasMax: true},
		{name: "exempt: no clamp", f: OpenAIChat, body: `{"max_tokens":4096}`, limit: 1024, clamp: false,
			want: `{"max_tokens":4096}`, maxOut: 4096, hasMax: true},
		{name: "limit 0: no clamp", f: OpenAIChat, body: `{"max_tokens":4096}`, limit: 0, clamp: true,
			want: `{"max_tokens":4096}`, maxOut: 4096, hasMax: true},
		{name: "duplicate keys all clamped", f: OpenAIChat, body: `{"max_tokens":10,"max_tokens":99999}`, limit: 100, clamp: true,
			want: `{"max_tokens":10,"max_tokens":100}`, maxOut: 100, hasMax: true},
		{name: "null limit", f: OpenAIChat, body: `{"max_tokens":null}`, limit: 100, clamp: false,
			want: `{"max_tokens":null}`},
		{name: "string limit refused", f: OpenAIChat, body: `{"max_tokens":"lots"}`, limit: 100, clamp: true, invalid: true},
		{name: "numeric string refused", f: OpenAIChat, body: `{"max_tokens":"999999"}`, limit: 100, clamp: true, invalid: true},
		{name: "fraction refused", f: OpenAIChat, body: `{"max_tokens":99999.5}`, limit: 100, clamp: true, invalid: true},
		{name: "small exponent refused", f: AnthropicMessages, body: `{"max_tokens":1e-1}`, limit: 100, clamp: true, invalid: true},
		{name: "whole exponent clamped", f: AnthropicMessages, body: `{"max_tokens":1e9}`, limit: 100, clamp: true,
			want: `{"max_tokens":100}`, maxOut: 100, hasMax: true},
		{name: "whole exponent unclamped", f: AnthropicMessages, body: `{"max_tokens":2.5e2}`, limit: 0, clamp: false,
			want: `{"max_tokens":2.5e2}`, maxOut: 250, hasMax: true},
		{name: "negative refused", f: OpenAIChat, body: `{"max_completion_tokens":-1}`, limit: 100, clamp: true, invalid: true},
		{name: "huge refused even unclamped", f: OpenAIChat, body: `{"max_tokens":99999999999}`, limit: 0, clamp: false, invalid: true},
		{name: "bool refused", f: GoogleGenerate, body: `{"generationConfig":{"maxOutputTokens":true}}`, limit: 100, clamp: true, invalid: true},
		{name: "escaped key clamped", f: OpenAIChat, body: `{"max\u005ftokens":5000}`, limit: 100, clamp: true,
			want: `{"max\u005ftokens":100}`, maxOut: 100, hasMax: true},
		{name: "many include_usage replaced whole", f: OpenAIChat, body: `{"stream":true,"stream_options":{"include_usage":false,"include_usage":false,"include_usage":false,"include_usage":false,"include_usage":false}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true},
		{name: "clamp then ask usage", f: OpenAIChat, body: `{"max_tokens":99999,"stream":true,"stream_options":{"include_usage":false}}`, limit: 100, clamp: true,
			want: `{"max_tokens":100,"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true, maxOut: 100, hasMax: true},
		{name: "second of duplicates refused", f: OpenAIChat, body: `{"max_tokens":10,"max_tokens":"x"}`, limit: 100, clamp: true, invalid: true},
		{name: "nested key of the same name untouched", f: OpenAIChat, body: `{"metadata":{"max_tokens":5000}}`, limit: 100, clamp: true,
			want: `{"metadata":{"max_tokens":5000},"max_completion_tokens":100}`, maxOut: 100, hasMax: true},
		{name: "stream: usage asked", f: OpenAIChat, body: `{"model":"gpt-4o","stream":true}`, limit: 0,
			want: `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`, model: "gpt-4o", stream: true, hide: true},
		{name: "stream, with whitespace", f: OpenAIChat, body: "{ \"stream\" : true }\n", limit: 0,
			want: "{ \"stream\" : true ,\"stream_options\":{\"include_usage\":true}}\n", stream: true, hide: true},
		{name: "stream: client asked", f: OpenAIChat, body: `{"stream":true,"stream_options":{"include_usage":true}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true},
		{name: "stream: client refused", f: OpenAIChat, body: `{"stream":true,"stream_options":{"include_usage":false}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true},
		{name: "stream: other options kept", f: OpenAIChat, body: `{"stream":true,"stream_options":{"include_obfuscation":false}}`,
			want: `{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}`, stream: true, hide: true},
		{name: "stream: empty options", f: OpenAIChat, body: `{"stream":true,"stream_options":{}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true},
		{name: "stream: null options", f: OpenAIChat, body: `{"stream":true,"stream_options":null}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true},
		{name: "stream false", f: OpenAIChat, body: `{"stream":false}`, want: `{"stream":false}`},
		{name: "mistral never asked", f: MistralChat, body: `{"stream":true}`, want: `{"stream":true}`, stream: true},
		{name: "escaped model", f: AnthropicMessages, body: `{"model":"claude-\u006fpus-4"}`, want: `{"model":"claude-\u006fpus-4"}`, model: "claude-opus-4"},
		{name: "escaped quotes in strings", f: AnthropicMessages, body: `{"messages":[{"content":"say \"max_tokens\": 99\\"}],"max_tokens":500}`, limit: 100, clamp: true,
			want: `{"messages":[{"content":"say \"max_tokens\": 99\\"}],"max_tokens":100}`, maxOut: 100, hasMax: true},
		{name: "google nested", f: GoogleGenerate, body: `{"generationConfig":{"maxOutputTokens":8192,"topK":3}}`, limit: 1024, clamp: true,
			want: `{"generationConfig":{"maxOutputTokens":1024,"topK":3}}`, maxOut: 1024, hasMax: true},
		{name: "images default model sent", f: OpenAIImages, body: `{"prompt":"a cat"}`, want: `{"prompt":"a cat","model":"dall-e-2"}`, model: "dall-e-2"},
		{name: "images null model", f: OpenAIImages, body: `{"model":null,"prompt":"a cat"}`, want: `{"model":"dall-e-2","prompt":"a cat"}`, model: "dall-e-2"},
		{name: "images empty model", f: OpenAIImages, body: `{"model":"","prompt":"a cat"}`, want: `{"model":"dall-e-2","prompt":"a cat"}`, model: "dall-e-2"},
		{name: "images empty body", f: OpenAIImages, body: `{}`, want: `{"model":"dall-e-2"}`, model: "dall-e-2"},
		{name: "images model named", f: OpenAIImages, body: `{"model":"gpt-image-1"}`, want: `{"model":"gpt-image-1"}`, model: "gpt-image-1"},
		{name: "azure images: the deployment names it", f: azureImages, body: `{"prompt":"a cat"}`, want: `{"prompt":"a cat"}`, model: "dall-e-2"},
		{name: "background refused", f: OpenAIResponses, body: `{"background":true,"max_output_tokens":5}`, invalid: true},
		{name: "background false kept", f: OpenAIResponses, body: `{"background":false,"max_output_tokens":5}`,
			want: `{"background":false,"max_output_tokens":5}`, maxOut: 5, hasMax: true},
		{name: "not an object", f: OpenAIChat, body: `[1,2]`, invalid: true},
		{name: "empty", f: OpenAIChat, body: ``, invalid: true},
		{name: "truncated", f: OpenAIChat, body: `{"model":"gpt-4o","messages":[`, invalid: true},
		{name: "trailing garbage", f: OpenAIChat, body: `{"model":"gpt-4o"} x`, invalid: true},
		{name: "unterminated string", f: OpenAIChat, body: `{"model":"gpt-4o}`, invalid: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rq, err := tc.f.Parse([]byte(tc.body), tc.limit, tc.clamp, false)
			if tc.invalid {
				if err == nil {
					t.Fatalf("accepted %q", tc.body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(rq.Body) != tc.want {
				t.Errorf("body\n got %s\nwant %s", rq.Body, tc.want)
			}
			if json.Valid([]byte(tc.body)) && !json.Valid(rq.Body) {
				t.Errorf("edited body is not valid JSON: %s", rq.Body)
			}
			if rq.Model != tc.model || rq.Stream != tc.stream || rq.MaxOut != tc.maxOut || rq.HasMaxOut != tc.hasMax || rq.HideUsage != tc.hide {
				t.Errorf("got model %q stream %v maxOut %d/%v hide %v", rq.Model, rq.Stream, rq.MaxOut, rq.HasMaxOut, rq.HideUsage)
			}
		})
	}
}

// The prompt estimate counts text, not base64 images.
func TestPromptEstimate(t *testing.T) {
	text := strings.Repeat("word ", 400) // 2000 bytes
	image := strings.Repeat("QUJD", 100000)
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"` + text + `"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,` + image + `"}},{"type":"input_image","data":"` + image + `"}]}]}`
	rq, err := OpenAIChat.Parse([]byte(body), 0, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if rq.PromptTokens < 500 || rq.PromptTokens > 530 {
		t.Errorf("prompt estimate %d, want about 500 (2000 bytes of text, images left out)", rq.PromptTokens)
	}
}

// A prompt given as token ids counts one token an id, beyond what the
// same body without them counts; numbers elsewhere (a temperature, digits
// in text, a member of another format) count nothing.
func TestPromptEstimateCountsTokenIDs(t *testing.T) {
	estimate := func(f *Format, body string) int64 {
		rq, err := f.Parse([]byte(body), 0, false, false)
		if err != nil {
			t.Fatal(err)
		}
		return rq.PromptTokens
	}
	for _, c := range []struct {
		f         *Format
		body, ids string
		want      int64
	}{
		{OpenAICompletions, `{"model":"m","temperature":0.5,"prompt":%s}`, `[1, 2, -3, 1e2]`, 4},
		{OpenAICompletions, `{"model":"m","prompt":%s}`, `[[1,2],[3, 4, 5]]`, 5},
		{OpenAICompletions, `{"model":"m","prompt":%s}`, `["a", "1 2 3 4 5 6 7 8"]`, 0},
		{OpenAIEmbeddings, `{"model":"m","input":%s,"dimensions":256}`, `[[7,8,9]]`, 3},
		{OpenAIChat, `{"model":"m","messages":[],"prompt":%s}`, `[1,2,3]`, 0},
	} {
		with := estimate(c.f, strings.Replace(c.body, "%s", c.ids, 1))
		without := estimate(c.f, strings.Replace(c.body, "%s", "[]", 1))
		text := int64(0)
		if strings.Contains(c.ids, `"`) {
			text = estimate(OpenAIChat, `{"t":`+c.ids+`}`)
		}
		if got := with - without - text; got != c.want {
			t.Errorf("%s with %s: %d tokens for the ids, want %d", c.body, c.ids, got, c.want)
		}
	}
}

// Streams relayed without their event: lines (some gateways drop them)
// are still read by their data's type.
func TestEventsWithoutNames(t *testing.T) {
	st := &StreamState{}
	for _, d := range []string{
		`{"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}`,
		`{"type":"content_block_delta","delta":{"type":"text_delta","text":"12345678"}}`,
		`{"type":"message_delta","usage":{"output_tokens":3}}`,
		`{"type":"message_stop"}`,
	} {
		anthropicEvent(st, nil, []byte(d))
	}
	if !st.Done || st.Tokens(100) != 10 || st.Text != 8 {
		t.Errorf("anthropic: %+v", st)
	}
	st = &StreamState{}
	responsesEvent(st, nil, []byte(`{"type":"response.output_text.delta","delta":"abcd"}`))
	responsesEvent(st, nil, []byte(`{"type":"response.completed","response":{"output":[{"content":[{"text":"abcd"}]}],"usage":{"input_tokens":5,"output_tokens":4}}}`))
	if !st.Done || st.Tokens(100) != 9 || st.Text != 4 {
		t.Errorf("responses: %+v", st)
	}
}

// FuzzParseRequest: outside input never panics, and any edit keeps valid
// JSON valid.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","stream":true,"max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`,
		`{"stream":true,"stream_options":{"include_usage":false},"max_completion_tokens":1000000000}`,
		`{"generationConfig":{"maxOutputTokens":99999},"contents":[{"parts":[{"text":"\"\\"}]}]}`,
		`{"a":[{"b":"}"}],"max_tokens":-1}`, `{}`, `{"x":"\u00e9"}`, ` { "stream" : true } `,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, fm := range []*Format{OpenAIChat, GoogleGenerate} {
			rq, err := fm.Parse([]byte(body), 100, true, false)
			if err != nil {
				continue
			}
			if json.Valid([]byte(body)) && !json.Valid(rq.Body) {
				t.Fatalf("valid %q became invalid %q", body, rq.Body)
			}
		}
	})
}

// Parse never changes the caller's bytes; the exchange's in-place
// parse gives the same request.
func TestParseInPlaceMatchesCopy(t *testing.T) {
	for _, body := range []string{
		`{"model":"gpt-4o","stream":true,"max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`,
		`{"max_tokens":5,"stream":true,"stream_options":null,"max_completion_tokens":1000000000}`,
		`{"stream":true,"stream_options":{"include_usage":false},"max_tokens":2048}`,
	} {
		orig := []byte(body)
		rq, err := OpenAIChat.Parse(orig, 1024, true, false)
		if err != nil {
			t.Fatal(err)
		}
		if string(orig) != body {
			t.Fatalf("Parse changed its input: %s", orig)
		}
		own := make([]byte, len(body), len(body)+512) // the room the exchange leaves after a body
		copy(own, body)
		rq2, err := OpenAIChat.Parse(own, 1024, true, true)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rq.Body, rq2.Body) || &rq2.Body[0] != &own[0] {
			t.Errorf("in place %s (same buffer %v), copied %s", rq2.Body, &rq2.Body[0] == &own[0], rq.Body)
		}
	}
}

// Hidden reasoning is assumed only where the request asks for it: a cut
// stream is charged its whole output limit then, so a request that turns
// reasoning off (reasoning_effort "none", Claude's disabled thinking, a
// zero Gemini budget) is charged what it relayed.
func TestThinkingAskedOnlyWhenEnabled(t *testing.T) {
	for _, tc := range []struct {
		f    *Format
		body string
		want bool
	}{
		{OpenAIChat, `{"model":"gpt-5.1","reasoning_effort":"high","messages":[]}`, true},
		{OpenAIChat, `{"model":"gpt-5.1","reasoning_effort":"minimal","messages":[]}`, true},
		{OpenAIChat, `{"model":"gpt-5.1","reasoning_effort":"none","messages":[]}`, false},
		{OpenAIChat, `{"model":"gpt-5.1","reasoning_effort":null,"messages":[]}`, false},
		{OpenAIResponses, `{"model":"gpt-5.1","reasoning":{"effort":"none"},"input":"x"}`, false},
		{OpenAIResponses, `{"model":"gpt-5.1","reasoning":{"effort":"low"},"input":"x"}`, true},
		{AnthropicMessages, `{"model":"claude-sonnet-4-5","max_tokens":10,"thinking":{"type":"disabled"},"messages":[]}`, false},
		{AnthropicMessages, `{"model":"claude-sonnet-4-5","max_tokens":10,"thinking":{ "type" : "disabled" },"messages":[]}`, false},
		{AnthropicMessages, `{"model":"claude-sonnet-4-5","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[]}`, true},
		{GoogleGenerate, `{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":0}}}`, false},
		{GoogleGenerate, `{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget": 0, "includeThoughts": false}}}`, false},
		{GoogleGenerate, `{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":1024}}}`, true},
		// Google reads each member by either of its names, wherever it is.
		{GoogleGenerate, `{"contents":[],"generation_config":{"thinking_config":{"thinking_budget":1024}}}`, true},
		{GoogleGenerate, `{"contents":[],"generationConfig":{"thinking_config":{"thinking_budget":1024}}}`, true},
		{GoogleGenerate, `{"contents":[],"generation_config":{"thinkingConfig":{"thinkingBudget":1024}}}`, true},
		{GoogleGenerate, `{"contents":[],"generationConfig":{"thinking_config":{"thinking_budget":0}}}`, false},
		// The upstream reads a repeated member's last value.
		{GoogleGenerate, `{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":0,"thinkingBudget":1024}}}`, true},
		{AnthropicMessages, `{"model":"claude-sonnet-4-5","max_tokens":2000,"thinking":{"type":"disabled","type":"enabled","budget_tokens":1024},"messages":[]}`, true},
		{OpenAIResponses, `{"model":"gpt-5.1","reasoning":{"effort":"none","effort":"high"},"input":"x"}`, true},
		{GoogleGenerate, `{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":1024,"thinkingBudget":0}}}`, false},
	} {
		rq, err := tc.f.Parse([]byte(tc.body), 0, false, false)
		if err != nil {
			t.Errorf("%s %s: %v", tc.f.Name, tc.body, err)
			continue
		}
		if rq.Thinking != tc.want {
			t.Errorf("%s %s: Thinking %v, want %v", tc.f.Name, tc.body, rq.Thinking, tc.want)
		}
	}
}

// An image request's price is OpenAI's per image, times n; a hostile n
// is priced at most MaxOutputLimit, as an output limit is, so that a
// charge never wraps a user's count.
func TestImagePrice(t *testing.T) {
	for _, tc := range []struct {
		model, body string
		want        int64
	}{
		{"dall-e-3", `{"quality":"hd","size":"1792x1024"}`, 12000},
		{"dall-e-2", `{"n":3,"size":"256x256"}`, 4800},
		{"dall-e-2", `{}`, 2000},
		{"gpt-image-1", `{"n":2,"quality":"low","size":"1024x1024"}`, 544},
		{"dall-e-3", `{"n":-5}`, 4000},
		{"dall-e-3", `{"n":1e30}`, MaxOutputLimit},
		{"dall-e-3", `{"n":9223372036854775807}`, MaxOutputLimit},
		{"gpt-image-1", `{"n":9223372036854775807}`, MaxOutputLimit},
	} {
		if got := OpenAIImages.Price([]byte(tc.body), tc.model); got != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.model, tc.body, got, tc.want)
		}
	}
}
