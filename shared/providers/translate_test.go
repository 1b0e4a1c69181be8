package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/shared/users"
)

var chatTranslations = map[string]*Translation{"anthropic": AnthropicChat, "cloud-anthropic": CloudAnthropicChat, "google": GoogleChat("v1beta")}

// translate parses body as the proxy does (limit 100000, clamped) and
// translates it.
func translate(t testing.TB, tr *Translation, body string) (map[string]any, *Request, error) {
	t.Helper()
	return translateWith(t, tr, body, 100000)
}

func translateWith(t testing.TB, tr *Translation, body string, limit int64) (map[string]any, *Request, error) {
	t.Helper()
	rq, err := OpenAIChat.Parse([]byte(body), limit, true, false)
	if err != nil {
		return nil, nil, err
	}
	out, err := tr.Request(rq)
	if err != nil {
		return nil, rq, err
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("native request is not JSON: %v\n%s", err, out)
	}
	return m, rq, nil
}

// geminiCallSentBack is an assistant's call and its result, as an OpenAI
// client sends them back.
const geminiCallSentBack = `{"role":"assistant","tool_calls":[{"id":"call_0","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"call_0","content":"ok"}`

func TestTranslateRequests(t *testing.T) {
	const user = `{"role":"user","content":"hi"}`
	cases := []struct {
		name, via, body string
		want            []string // substrings of the native request
		refused         string   // substring of the refusal
		limit           int64    // the operator's clamp (default 100000)
	}{
		{name: "stop string", via: "anthropic", body: `{"model":"c","stop":"END","messages":[` + user + `]}`, want: []string{`"stop_sequences":["END"]`}},
		{name: "no limit under a clamp", via: "anthropic", body: `{"model":"c","max_tokens":0,"messages":[` + user + `]}`, limit: 1000, want: []string{`"max_tokens":1000`}},
		{name: "no limit", via: "anthropic", body: `{"model":"c","messages":[` + user + `]}`, want: []string{`"max_tokens":4096`}},
		{name: "no limit, gemini", via: "google", body: `{"model":"g","messages":[` + user + `]}`, limit: 1000, want: []string{`"maxOutputTokens":1000`}},
		{name: "clamped limit", via: "anthropic", body: `{"model":"c","max_tokens":5000,"max_tokens":9,"MAX_TOKENS":1,"messages":[` + user + `]}`, refused: "MAX_TOKENS"},
		{name: "limit", via: "anthropic", body: `{"model":"c","max_completion_tokens":500000,"messages":[` + user + `]}`, want: []string{`"max_tokens":100000`}},
		{name: "merged turns", via: "anthropic", body: `{"model":"c","messages":[{"role":"system","content":"S"},` + user + `,{"role":"user","content":"again"},{"role":"system","content":"late"}]}`,
			want: []string{`"messages":[{"content":[{"text":"hi","type":"text"},{"text":"again","type":"text"},{"text":"late","type":"text"}],"role":"user"}]`, `"system":[{"text":"S","type":"text"}]`}},
		{name: "prefill trimmed", via: "anthropic", body: `{"model":"c","messages":[` + user + `,{"role":"assistant","content":"Sure: \n"}]}`, want: []string{`"text":"Sure:"`}},
		{name: "tool choice", via: "anthropic", body: `{"model":"c","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required","parallel_tool_calls":false,"messages":[` + user + `]}`,
			want: []string{`"tool_choice":{"disable_parallel_tool_use":true,"type":"any"}`, `"input_schema":{"type":"object"}`}},
		{name: "thinking", via: "anthropic", body: `{"model":"c","max_tokens":1000,"reasoning_effort":"minimal","messages":[` + user + `]}`, refused: "max_tokens above 1024"},
		{name: "thinking budget", via: "anthropic", body: `{"model":"c","max_tokens":999,"max_completion_tokens":5000,"reasoning_effort":"low","messages":[` + user + `]}`, want: []string{`"thinking":{"budget_tokens":2048,"type":"enabled"}`}},
		{name: "claude penalty", via: "anthropic", body: `{"model":"c","presence_penalty":0.5,"messages":[` + user + `]}`, refused: "presence_penalty"},
		{name: "claude zero penalty", via: "anthropic", body: `{"model":"c","frequency_penalty":0,"seed":1,"messages":[` + user + `]}`, want: []string{`"model":"c"`}},
		{name: "gemini late system", via: "google", body: `{"model":"g","messages":[{"role":"developer","content":"D"},` + user + `,{"role":"system","content":"late"}]}`,
			want: []string{`"systemInstruction":{"parts":[{"text":"D"}]}`, `"contents":[{"parts":[{"text":"hi"},{"text":"late"}],"role":"user"}]`}},
		{name: "gemini 3 calls sent back", via: "google", body: `{"model":"gemini-3-pro-preview","messages":[` + user + `,` + geminiCallSentBack + `]}`,
			want: []string{`{"functionCall":{"args":{"a":1},"name":"f"},"thoughtSignature":"skip_thought_signature_validator"}`}},
		{name: "gemini 2.5 calls sent back", via: "google", body: `{"model":"gemini-2.5-pro","messages":[` + user + `,` + geminiCallSentBack + `]}`,
			want: []string{`{"functionCall":{"args":{"a":1},"name":"f"}}`}},
		{name: "gemini no thinking", via: "google", body: `{"model":"g","reasoning_effort":"none","messages":[` + user + `]}`, want: []string{`"thinkingConfig":{"includeThoughts":false,"thinkingBudget":0}`}},
		{name: "file part", via: "anthropic", body: `{"model":"c","messages":[{"role":"user","content":[{"type":"file","file":{}}]}]}`, refused: `"file"`},
		{name: "claude temperature", via: "anthropic", body: `{"model":"c","temperature":1.5,"messages":[` + user + `]}`, refused: "temperature"},
		{name: "claude json", via: "anthropic", body: `{"model":"c","response_format":{"type":"json_object"},"messages":[` + user + `]}`, refused: "response_format"},
		{name: "http image", via: "anthropic", body: `{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}`, refused: "messages[0].content[0].image_url.url"},
		{name: "svg image", via: "anthropic", body: `{"model":"c","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml;base64,AAAA"}}]}]}`, refused: "image/svg+xml"},
		{name: "bad base64", via: "google", body: `{"model":"g","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%%%"}}]}]}`, refused: "messages[0].content[0].image_url.url"},
		{name: "audio", via: "google", body: `{"model":"g","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, refused: `messages[0].content[0].type "input_audio"`},
		{name: "n", via: "google", body: `{"model":"g","n":2,"messages":[` + user + `]}`, refused: "n:"},
		{name: "n=1", via: "google", body: `{"model":"g","n":1,"messages":[` + user + `]}`, want: []string{`"contents":[{"parts":[{"text":"hi"}],"role":"user"}]`}},
		{name: "logprobs", via: "google", body: `{"model":"g","logprobs":true,"messages":[` + user + `]}`, refused: "logprobs"},
		{name: "wrong type", via: "google", body: `{"model":"g","messages":[{"role":5}]}`, refused: "messages.role"},
		{name: "no messages", via: "google", body: `{"model":"g","messages":[]}`, refused: "messages"},
		{name: "only system", via: "anthropic", body: `{"model":"c","messages":[{"role":"system","content":"S"}]}`, refused: "messages"},
		{name: "bad arguments", via: "google", body: `{"model":"g","messages":[` + user + `,{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`,
			refused: "messages[1].tool_calls[0].function.arguments"},
		{name: "gemini model path", via: "google", body: `{"model":"../../v1/files","messages":[` + user + `]}`, refused: "model"},
		{name: "gemini model prefix", via: "google", body: `{"model":"models/gemini-2.5-pro","messages":[` + user + `]}`, want: []string{`"contents"`}},
		{name: "gemini config", via: "google", body: `{"model":"g","max_completion_tokens":500000,"temperature":1.5,"top_p":0.5,"stop":["a","b"],"seed":3,"presence_penalty":0.1,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},"reasoning_effort":"low","messages":[` + user + `]}`,
			want: []string{`"maxOutputTokens":100000`, `"temperature":1.5`, `"topP":0.5`, `"stopSequences":["a","b"]`, `"seed":3`, `"presencePenalty":0.1`, `"responseMimeType":"application/json"`, `"responseJsonSchema":{"type":"object"}`, `"thinkingConfig":{"includeThoughts":true,"thinkingBudget":2048}`}},
		{name: "gemini tools", via: "google", body: `{"model":"g","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"messages":[` + user + `,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}]}`,
			want: []string{`"functionDeclarations":[{"name":"f","parametersJsonSchema":{"type":"object"}}]`, `"functionCallingConfig":{"allowedFunctionNames":["f"],"mode":"ANY"}`,
				`{"parts":[{"functionCall":{"args":{"a":1},"name":"f"}}],"role":"model"}`, `{"parts":[{"functionResponse":{"name":"f","response":{"content":"sunny"}}}],"role":"user"}`}},
		{name: "tool choice without tools", via: "google", body: `{"model":"g","tool_choice":"auto","messages":[` + user + `]}`, refused: "tool_choice"},
		{name: "functions", via: "anthropic", body: `{"model":"c","functions":[{"name":"f"}],"messages":[` + user + `]}`, refused: "functions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = 100000
			}
			m, _, err := translateWith(t, chatTranslations[tc.via], tc.body, limit)
			if tc.refused != "" {
				var e *users.Error
				if !errors.As(err, &e) || e.Code != users.CodeInvalid || !strings.Contains(e.Message, tc.refused) {
					t.Fatalf("got %v; want a refusal naming %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			native := string(MustJSON(m))
			for _, w := range tc.want {
				if !strings.Contains(native, w) {
					t.Errorf("native request lacks %s:\n%s", w, native)
				}
			}
		})
	}
}

func TestGoogleNative(t *testing.T) {
	tr := GoogleChat("v1beta")
	if p, q := tr.Native("gemini-2.5-pro", true); p != "/v1beta/models/gemini-2.5-pro:streamGenerateContent" || q != "alt=sse" {
		t.Errorf("stream: %s ?%s", p, q)
	}
	if p, q := tr.Native("a/b", false); p != "/v1beta/models/a%2Fb:generateContent" || q != "" {
		t.Errorf("escaped: %s ?%s", p, q)
	}
}

// nativeAnswer runs a native answer through a translation.
func nativeAnswer(t testing.TB, tr *Translation, status int, contentType, body string) (*http.Response, []byte, error) {
	t.Helper()
	resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {contentType}}, Body: io.NopCloser(strings.NewReader(body))}
	if err := tr.Response(resp, &Request{Model: "m"}); err != nil {
		return resp, nil, err
	}
	out, err := io.ReadAll(resp.Body)
	return resp, out, err
}

func TestTranslateAnswers(t *testing.T) {
	t.Run("anthropic thinking and tools", func(t *testing.T) {
		_, out, err := nativeAnswer(t, AnthropicChat, 200, ContentJSON, `{"id":"msg_1","model":"claude-x","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"ok"},{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}],"stop_reason":"tool_use","usage":{"input_tokens":3,"cache_read_input_tokens":4,"output_tokens":5}}`)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{`"reasoning_content":"hm"`, `"content":"ok"`, `"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]`,
			`"finish_reason":"tool_calls"`, `"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}`} {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("answer lacks %s:\n%s", w, out)
			}
		}
	})
	t.Run("google blocked and thoughts", func(t *testing.T) {
		_, out, _ := nativeAnswer(t, GoogleChat("v1beta"), 200, ContentJSON, `{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":4}}`)
		if !bytes.Contains(out, []byte(`"finish_reason":"content_filter"`)) || !bytes.Contains(out, []byte(`"prompt_tokens":4`)) {
			t.Errorf("blocked prompt: %s", out)
		}
		_, out, _ = nativeAnswer(t, GoogleChat("v1beta"), 200, ContentJSON, `{"candidates":[{"content":{"parts":[{"text":"think","thought":true},{"text":"say"}]},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"thoughtsTokenCount":3}}`)
		for _, w := range []string{`"reasoning_content":"think"`, `"content":"say"`, `"finish_reason":"length"`, `"completion_tokens":5`} {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("answer lacks %s:\n%s", w, out)
			}
		}
	})
	t.Run("errors in OpenAI's shape", func(t *testing.T) {
		resp, out, _ := nativeAnswer(t, AnthropicChat, 529, ContentJSON, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		if resp.StatusCode != 529 || string(out) != `{"error":{"code":null,"message":"Overloaded","param":null,"type":"server_error"}}` {
			t.Errorf("%d %s", resp.StatusCode, out)
		}
		_, out, _ = nativeAnswer(t, GoogleChat("v1beta"), 502, "text/html", `<html>Bad gateway</html>`)
		if !bytes.Contains(out, []byte(`"message":"\u003chtml\u003eBad gateway\u003c/html\u003e"`)) {
			t.Errorf("%s", out)
		}
	})
	t.Run("error events", func(t *testing.T) {
		_, out, err := nativeAnswer(t, AnthropicChat, 200, ContentSSE, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
		if err != nil || !bytes.Contains(out, []byte(`data: {"error":{"code":null,"message":"Overloaded","param":null,"type":"server_error"}}`)) {
			t.Errorf("%v %s", err, out)
		}
		_, out, err = nativeAnswer(t, GoogleChat("v1beta"), 200, ContentSSE, "data: {\"error\":{\"code\":429,\"message\":\"Slow down\"}}\r\n\r\n")
		if err != nil || !bytes.Contains(out, []byte(`"message":"Slow down","param":null,"type":"rate_limit_error"`)) {
			t.Errorf("%v %s", err, out)
		}
	})
	t.Run("gemini stream ends", func(t *testing.T) {
		// Finished without output counts (a safety block): the body's end
		// ends it, with the counts there are.
		_, out, err := nativeAnswer(t, GoogleChat("v1beta"), 200, ContentSSE, "data: {\"candidates\":[{\"finishReason\":\"SAFETY\"}],\"usageMetadata\":{\"promptTokenCount\":5}}\r\n\r\n")
		if err != nil || !bytes.Contains(out, []byte(`"finish_reason":"content_filter"`)) || !bytes.Contains(out, []byte(`"usage":{"prompt_tokens":5,"completion_tokens":0,"total_tokens":5}`)) || !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
			t.Errorf("%v %s", err, out)
		}
		// Never finished: cut short, no [DONE].
		_, out, err = nativeAnswer(t, GoogleChat("v1beta"), 200, ContentSSE, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}],\"usageMetadata\":{\"promptTokenCount\":5}}\r\n\r\n")
		if !errors.Is(err, io.ErrUnexpectedEOF) || bytes.Contains(out, []byte("[DONE]")) || !bytes.Contains(out, []byte(`"content":"Hel"`)) {
			t.Errorf("%v %s", err, out)
		}
	})
	t.Run("anthropic stream cut short", func(t *testing.T) {
		_, _, err := nativeAnswer(t, AnthropicChat, 200, ContentSSE, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":2}}}\n\n")
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("a stream without message_stop ended with %v", err)
		}
	})
}

// checkChunks checks a translated stream: SSE events whose data is a
// JSON object or [DONE], which comes last if at all.
func checkChunks(t *testing.T, out []byte) {
	var s framing.SSE
	done := false
	s.Feed(out, func(_, _, data []byte) {
		switch {
		case done:
			t.Fatalf("an event after [DONE]: %s", out)
		case string(data) == "[DONE]":
			done = true
		case !json.Valid(data) || data[0] != '{':
			t.Fatalf("a chunk that is not a JSON object: %q", data)
		}
	})
	if rest := s.Rest(); len(rest) > 0 {
		t.Fatalf("an incomplete event at the end: %q", rest)
	}
}

// nativeRequestRules check a translated request: JSON of the native
// schema's shape, turns alternating, nothing empty.
var (
	geminiPath = regexp.MustCompile(`^/v1beta/models/[A-Za-z0-9][A-Za-z0-9._-]*:(generateContent|streamGenerateContent)$`)
)

func checkNative(t *testing.T, via string, m map[string]any, rq *Request, tr *Translation) {
	turns, roles := "messages", []string{"user", "assistant"}
	if via == "google" {
		turns, roles = "contents", []string{"user", "model"}
		if p, _ := tr.Native(rq.Model, rq.Stream); !geminiPath.MatchString(p) {
			t.Fatalf("native path %q", p)
		}
	} else if n, _ := m["max_tokens"].(float64); n <= 0 || n > 100000 {
		t.Fatalf("max_tokens %v", m["max_tokens"])
	}
	list, _ := m[turns].([]any)
	if len(list) == 0 {
		t.Fatalf("no %s: %v", turns, m)
	}
	prev := ""
	for _, turn := range list {
		tm, _ := turn.(map[string]any)
		role, _ := tm["role"].(string)
		if role != roles[0] && role != roles[1] || role == prev {
			t.Fatalf("roles do not alternate: %s", MustJSON(list))
		}
		prev = role
		parts, _ := tm["content"].([]any)
		if via == "google" {
			parts, _ = tm["parts"].([]any)
		}
		if len(parts) == 0 {
			t.Fatalf("an empty turn: %s", MustJSON(list))
		}
	}
}

func FuzzTranslateRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"claude-x","messages":[{"role":"system","content":"S"},{"role":"user","content":"hi"}]}`,
		`{"model":"gemini-2.5-flash","stream":true,"max_tokens":50,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`,
		`{"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{}}}],"tool_choice":"auto","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"1","content":"r"}]}`,
		`{"model":"m","messages":[{"role":"assistant","content":" "},{"role":"developer","content":"d"}]}`,
		`{"model":"m","stop":["a"],"temperature":0.5,"top_p":1,"reasoning_effort":"high","max_tokens":30000,"messages":[{"role":"user","content":""}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for via, tr := range chatTranslations {
			m, rq, err := translate(t, tr, body)
			if rq == nil {
				continue // refused by the proxy's own parse
			}
			if err != nil {
				var e *users.Error
				if !errors.As(err, &e) || e.Code != users.CodeInvalid || e.Message == "" {
					t.Fatalf("%s: a refusal that is not a clear 400: %v", via, err)
				}
				continue
			}
			checkNative(t, via, m, rq, tr)
			if via == "cloud-anthropic" && strings.Contains(string(MustJSON(m)), `"type":"url"`) {
				t.Fatalf("an image URL went to a service that cannot fetch it: %s", MustJSON(m))
			}
		}
	})
}

func FuzzTranslateStream(f *testing.F) {
	f.Add("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":2}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":3}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	f.Add("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"},{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1,\"candidatesTokenCount\":2}}\r\n\r\n")
	f.Add("data: {\"error\":{\"code\":500,\"message\":\"x\"}}\n\ndata: [DONE]\n\n: comment\n\ndata: {not json\n\n")
	f.Fuzz(func(t *testing.T, stream string) {
		for via, tr := range chatTranslations {
			_, out, err := nativeAnswer(t, tr, 200, ContentSSE, stream)
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s: %v", via, err)
			}
			checkChunks(t, out)
		}
	})
}

func TestLegacyPrompt(t *testing.T) {
	cases := []struct{ prompt, system, turns string }{
		{"\n\nHuman: hi\n\nAssistant:", "", `[{"role":"user","content":[{"text":"hi","type":"text"}]}]`},
		{"just a question", "", `[{"role":"user","content":[{"text":"just a question","type":"text"}]}]`},
		{"Rules.\n\nHuman: a\n\nHuman: b\n\nAssistant: The answer is ", "Rules.",
			`[{"role":"user","content":[{"text":"a","type":"text"},{"text":"b","type":"text"}]},{"role":"assistant","content":[{"text":"The answer is","type":"text"}]}]`},
		{"Question?\n\nAssistant:", "", `[{"role":"user","content":[{"text":"Question?","type":"text"}]}]`},
		{"\n\nAssistant: x", "", `[{"role":"assistant","content":[{"text":"x","type":"text"}]}]`},
	}
	for _, tc := range cases {
		system, turns := promptTurns(tc.prompt)
		if system != tc.system || string(MustJSON(turns)) != tc.turns {
			t.Errorf("%q: %q %s; want %q %s", tc.prompt, system, MustJSON(turns), tc.system, tc.turns)
		}
	}
	rq, _ := AnthropicComplete.Parse([]byte(`{"model":"c","prompt":"\n\nAssistant: x","max_tokens_to_sample":5}`), 0, false, false)
	if _, err := AnthropicLegacy.Request(rq); err == nil || !strings.Contains(err.Error(), "Human:") {
		t.Errorf("a prompt without a Human: turn: %v", err)
	}
}

func FuzzLegacyPrompt(f *testing.F) {
	for _, s := range []string{"\n\nHuman: hi\n\nAssistant:", "S\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d ", "x", "\n\nAssistant:\n\nHuman:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prompt string) {
		rq, err := AnthropicComplete.Parse(MustJSON(map[string]any{"model": "c", "prompt": prompt, "max_tokens_to_sample": 5}), 0, false, false)
		if err != nil {
			t.Fatal(err)
		}
		out, err := AnthropicLegacy.Request(rq)
		if err != nil {
			var e *users.Error
			if !errors.As(err, &e) || e.Code != users.CodeInvalid {
				t.Fatalf("not a clear 400: %v", err)
			}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		checkNative(t, "anthropic", m, rq, AnthropicLegacy)
		if first, _ := m["messages"].([]any)[0].(map[string]any); first["role"] != "user" {
			t.Fatalf("first turn %v", first)
		}
	})
}

// The translations' costs per request and per streamed answer.
func BenchmarkTranslateRequest(b *testing.B) {
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},` +
		strings.Repeat(`{"role":"user","content":"Tell me about the weather in Paris, in some detail please."},{"role":"assistant","content":"It is mild and often grey, with rain spread across the year."},`, 20) +
		`{"role":"user","content":"And in Rome?"}]}`)
	for name, tr := range chatTranslations {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				rq, err := OpenAIChat.Parse(body, 4096, true, false)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tr.Request(rq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTranslateStream(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":20}}}\n\n")
	for range 200 {
		sb.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"some words \"}}\n\n")
	}
	sb.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":400}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	stream := sb.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		if _, _, err := nativeAnswer(b, AnthropicChat, 200, ContentSSE, stream); err != nil {
			b.Fatal(err)
		}
	}
}

// Claude on Bedrock and Vertex AI takes image data only: an image URL is
// refused naming its field, where Anthropic's own API would fetch it.
func TestCloudClaudeRefusesImageURLs(t *testing.T) {
	body := `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},` +
		`{"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}`
	if m, _, err := translate(t, AnthropicChat, body); err != nil || !strings.Contains(string(MustJSON(m)), `"type":"url"`) {
		t.Fatalf("Anthropic's API: %v %v", err, m)
	}
	_, _, err := translate(t, CloudAnthropicChat, body)
	var e *users.Error
	if !errors.As(err, &e) || e.Code != users.CodeInvalid || !strings.Contains(e.Message, "messages[2].content[1].image_url.url") {
		t.Fatalf("cloud: %v", err)
	}
	data := strings.Replace(body, "https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo=", 1)
	if m, _, err := translate(t, CloudAnthropicChat, data); err != nil || !strings.Contains(string(MustJSON(m)), `"type":"base64"`) {
		t.Fatalf("cloud, data URL: %v %v", err, m)
	}
}

// A translated request becomes Go values and native blocks, a few hundred
// bytes for each message, part, tool call and tool: a 32 MiB body of tiny
// messages took some 850 MiB to translate, on instances of 512 MiB. Past
// maxItems of them the request is refused, counted before anything is
// decoded, whatever the keys' case or repetition (the decoder reads the
// last of a repeated key, any casing of a field's name).
func TestTranslatedRequestItemsBounded(t *testing.T) {
	many := func(n int, item string) string {
		return strings.TrimSuffix(strings.Repeat(item+",", n), ",")
	}
	const msg = `{"role":"user","content":"Image: a"}`
	over := maxItems + 1
	bodies := map[string]string{
		"messages":          `{"model":"m","messages":[` + many(over, `{}`) + `]}`,
		"parts":             `{"model":"m","messages":[{"role":"user","content":[` + many(over, `{}`) + `]}]}`,
		"tool calls":        `{"model":"m","messages":[{"role":"assistant","tool_calls":[` + many(over, `{}`) + `]}]}`,
		"tools":             `{"model":"m","messages":[` + msg + `],"tools":[` + many(over, `{}`) + `]}`,
		"repeated messages": `{"model":"m","messages":[` + msg + `],"messages":[` + many(over, `{}`) + `]}`,
		"repeated content":  `{"model":"m","messages":[{"role":"user","content":"a","content":[` + many(over, `{}`) + `]}]}`,
		"content casing":    `{"model":"m","messages":[{"role":"user","CONTENT":[` + many(over, `{}`) + `]}]}`,
		"content escaped":   `{"model":"m","messages":[{"role":"user","\u0063ontent":[` + many(over, `{}`) + `]}]}`,
		"calls folded":      `{"model":"m","messages":[{"role":"assistant","tool_callſ":[` + many(over, `{}`) + `]}]}`,
	}
	for name, tr := range map[string]*Translation{"anthropic": AnthropicChat, "google": GoogleChat("v1beta"), "image": imageChat} {
		for what, body := range bodies {
			if name == "google" && what != "messages" || name == "image" && (what == "tools" || what == "tool calls" || what == "calls folded") {
				continue // the chat translations share the count; the image route reads the messages only
			}
			rq, err := OpenAIChat.Parse([]byte(body), 1000, true, false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.Request(rq)
			var ue *users.Error
			if !errors.As(err, &ue) || ue.Code != users.CodeInvalid || !strings.Contains(ue.Message, "100000") {
				t.Errorf("%s, %s: %v", name, what, err)
			}
		}
	}
	// Up to the bound, a request is translated.
	if _, err := boundItems(json.RawMessage(`[`+many(maxItems-3, msg)+`,{"role":"assistant","content":[{}],"tool_calls":[{}]}]`), nil); err != nil {
		t.Errorf("%d items refused: %v", maxItems, err)
	}

	// What a refusal costs: about the body's own size, not tens of times
	// it.
	var b strings.Builder
	b.WriteString(`{"model":"m","messages":[`)
	for b.Len() < 8<<20 {
		b.WriteString(msg + ",")
	}
	body := strings.TrimSuffix(b.String(), ",") + "]}"
	rq, err := OpenAIChat.Parse([]byte(body), 1000, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = AnthropicChat.Request(rq)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("8 MiB of messages translated")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(len(body)) {
		t.Errorf("refusing a %d MiB body allocated %d MiB", len(body)>>20, alloc>>20)
	}
}
