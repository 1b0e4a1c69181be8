package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	cases := []struct {
		name    string
		f       *apiFormat
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
		{name: "chat untouched", f: fmtChat, body: `{"model":"gpt-4o","messages":[]}`, limit: 1024, clamp: true,
			want: `{"model":"gpt-4o","messages":[]}`, model: "gpt-4o"},
		{name: "clamp", f: fmtChat, body: `{"max_tokens":4096,"model":"gpt-4o"}`, limit: 1024, clamp: true,
			want: `{"max_tokens":1024,"model":"gpt-4o"}`, model: "gpt-4o", maxOut: 1024, hasMax: true},
		{name: "exempt: no clamp", f: fmtChat, body: `{"max_tokens":4096}`, limit: 1024, clamp: false,
			want: `{"max_tokens":4096}`, maxOut: 4096, hasMax: true},
		{name: "limit 0: no clamp", f: fmtChat, body: `{"max_tokens":4096}`, limit: 0, clamp: true,
			want: `{"max_tokens":4096}`, maxOut: 4096, hasMax: true},
		{name: "duplicate keys all clamped", f: fmtChat, body: `{"max_tokens":10,"max_tokens":99999}`, limit: 100, clamp: true,
			want: `{"max_tokens":10,"max_tokens":100}`, maxOut: 100, hasMax: true},
		{name: "null limit", f: fmtChat, body: `{"max_tokens":null}`, limit: 100, clamp: true,
			want: `{"max_tokens":null}`},
		{name: "string limit left to the upstream", f: fmtChat, body: `{"max_tokens":"lots"}`, limit: 100, clamp: true,
			want: `{"max_tokens":"lots"}`},
		{name: "nested key of the same name untouched", f: fmtChat, body: `{"metadata":{"max_tokens":5000}}`, limit: 100, clamp: true,
			want: `{"metadata":{"max_tokens":5000}}`},
		{name: "stream: usage asked", f: fmtChat, body: `{"model":"gpt-4o","stream":true}`, limit: 0,
			want: `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`, model: "gpt-4o", stream: true, hide: true},
		{name: "stream, with whitespace", f: fmtChat, body: "{ \"stream\" : true }\n", limit: 0,
			want: "{ \"stream\" : true ,\"stream_options\":{\"include_usage\":true}}\n", stream: true, hide: true},
		{name: "stream: client asked", f: fmtChat, body: `{"stream":true,"stream_options":{"include_usage":true}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true},
		{name: "stream: client refused", f: fmtChat, body: `{"stream":true,"stream_options":{"include_usage":false}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true},
		{name: "stream: other options kept", f: fmtChat, body: `{"stream":true,"stream_options":{"include_obfuscation":false}}`,
			want: `{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}`, stream: true, hide: true},
		{name: "stream: empty options", f: fmtChat, body: `{"stream":true,"stream_options":{}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true},
		{name: "stream: null options", f: fmtChat, body: `{"stream":true,"stream_options":null}`,
			want: `{"stream":true,"stream_options":{"include_usage":true}}`, stream: true, hide: true},
		{name: "stream false", f: fmtChat, body: `{"stream":false}`, want: `{"stream":false}`},
		{name: "mistral never asked", f: fmtMistralChat, body: `{"stream":true}`, want: `{"stream":true}`, stream: true},
		{name: "escaped model", f: fmtMessages, body: `{"model":"claude-\u006fpus-4"}`, want: `{"model":"claude-\u006fpus-4"}`, model: "claude-opus-4"},
		{name: "escaped quotes in strings", f: fmtMessages, body: `{"messages":[{"content":"say \"max_tokens\": 99\\"}],"max_tokens":500}`, limit: 100, clamp: true,
			want: `{"messages":[{"content":"say \"max_tokens\": 99\\"}],"max_tokens":100}`, maxOut: 100, hasMax: true},
		{name: "google nested", f: fmtGenerate, body: `{"generationConfig":{"maxOutputTokens":8192,"topK":3}}`, limit: 1024, clamp: true,
			want: `{"generationConfig":{"maxOutputTokens":1024,"topK":3}}`, maxOut: 1024, hasMax: true},
		{name: "images default model", f: fmtImages, body: `{"prompt":"a cat"}`, want: `{"prompt":"a cat"}`, model: "dall-e-2"},
		{name: "not an object", f: fmtChat, body: `[1,2]`, invalid: true},
		{name: "empty", f: fmtChat, body: ``, invalid: true},
		{name: "truncated", f: fmtChat, body: `{"model":"gpt-4o","messages":[`, invalid: true},
		{name: "trailing garbage", f: fmtChat, body: `{"model":"gpt-4o"} x`, invalid: true},
		{name: "unterminated string", f: fmtChat, body: `{"model":"gpt-4o}`, invalid: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rq, err := parseRequest(tc.f, []byte(tc.body), tc.limit, tc.clamp)
			if tc.invalid {
				if err == nil {
					t.Fatalf("accepted %q", tc.body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(rq.body) != tc.want {
				t.Errorf("body\n got %s\nwant %s", rq.body, tc.want)
			}
			if json.Valid([]byte(tc.body)) && !json.Valid(rq.body) {
				t.Errorf("edited body is not valid JSON: %s", rq.body)
			}
			if rq.model != tc.model || rq.stream != tc.stream || rq.maxOut != tc.maxOut || rq.hasMaxOut != tc.hasMax || rq.hideUsage != tc.hide {
				t.Errorf("got model %q stream %v maxOut %d/%v hide %v", rq.model, rq.stream, rq.maxOut, rq.hasMaxOut, rq.hideUsage)
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
	rq, err := parseRequest(fmtChat, []byte(body), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if rq.promptTokens < 500 || rq.promptTokens > 530 {
		t.Errorf("prompt estimate %d, want about 500 (2000 bytes of text, images left out)", rq.promptTokens)
	}
}

// Events are found whatever the read boundaries, in LF and CRLF streams.
func TestSSESplitter(t *testing.T) {
	streams := []string{
		"data: {\"a\":1}\n\ndata: {\"a\":2}\n\nevent: x\ndata: [DONE]\n\n",
		"data: {\"a\":1}\r\n\r\ndata: {\"a\":2}\r\n\r\nevent: x\r\ndata: [DONE]\r\n\r\n",
		": comment\n\ndata: {\"a\":1}\n\n\ndata: {\"a\":2}\n\nevent: x\ndata: [DONE]\n\n",
	}
	for _, stream := range streams {
		for _, size := range []int{1, 2, 3, 5, 7, 1000} {
			s := &sseSplitter{}
			var raw bytes.Buffer
			var data []string
			for i := 0; i < len(stream); i += size {
				s.feed([]byte(stream[i:min(i+size, len(stream))]), func(r, name, d []byte) {
					raw.Write(r)
					if len(d) > 0 {
						data = append(data, string(name)+"|"+string(d))
					}
				})
			}
			raw.Write(s.rest())
			if raw.String() != stream {
				t.Errorf("size %d: relayed bytes differ:\n%q\n%q", size, raw.String(), stream)
			}
			if got := strings.Join(data, ","); got != `|{"a":1},|{"a":2},x|[DONE]` {
				t.Errorf("size %d: events %s", size, got)
			}
		}
	}
}

func TestArraySplitter(t *testing.T) {
	stream := `[{"candidates":[{"content":{"parts":[{"text":"a]}\"{"}]}}]}` + "\n,\r\n" + `{"usageMetadata":{"promptTokenCount":3}}]`
	for _, size := range []int{1, 4, 1000} {
		s := &arraySplitter{}
		var raw bytes.Buffer
		var elems []string
		for i := 0; i < len(stream); i += size {
			s.feed([]byte(stream[i:min(i+size, len(stream))]), func(r, _, d []byte) {
				raw.Write(r)
				if len(d) > 0 {
					elems = append(elems, string(d))
				}
			})
		}
		if raw.String() != stream {
			t.Errorf("size %d: relayed %q", size, raw.String())
		}
		if len(elems) != 2 || !json.Valid([]byte(elems[0])) || elems[1] != `{"usageMetadata":{"promptTokenCount":3}}` {
			t.Errorf("size %d: elements %q", size, elems)
		}
	}
}

// The stream reader relays everything but a hidden usage chunk, and reads
// usage on the way.
func TestStreamReaderHidesOnlyTheAskedUsage(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"content\":\"Hi there\"}}],\"usage\":null}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n" +
		"data: [DONE]\n\n"
	for _, hide := range []bool{true, false} {
		st := &streamState{hideUsage: hide}
		ended := 0
		r := newStreamReader(t.Context(), io.NopCloser(strings.NewReader(in)), &sseSplitter{}, st, chatEvent)
		r.onEnd = func() { ended++ }
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), `"prompt_tokens"`) == hide {
			t.Errorf("hide %v: relayed %q", hide, out)
		}
		if !strings.HasSuffix(string(out), "data: [DONE]\n\n") || ended != 1 || st.tokens(100) != 7 {
			t.Errorf("hide %v: out %q ended %d tokens %d", hide, out, ended, st.tokens(100))
		}
	}
}

func TestStringFields(t *testing.T) {
	cases := []struct {
		data string
		keys []string
		want int64
	}{
		{`{"choices":[{"delta":{"content":"Hello"}}]}`, []string{"content"}, 5},
		{`{"delta":{"content": "a\"b"}}`, []string{"content"}, 4}, // raw bytes: a \ " b
		{`{"delta":{"content":null,"tool_calls":[{"function":{"arguments":"{\"x\":1}"}}]}}`, []string{"content", "arguments"}, 9},
		{`{"text":"content","content":"x"}`, []string{"content"}, 1}, // "content" as a value is not a key
		{`{"a":"say \"content\":\"no\""}`, []string{"content"}, 0},
		{`{"parts":[{"text":"ab"},{"text":"cd"}]}`, []string{"text"}, 4},
		{`{"content":"unterminated`, []string{"content"}, 0},
	}
	for _, tc := range cases {
		if got := stringFields([]byte(tc.data), tc.keys...); got != tc.want {
			t.Errorf("stringFields(%s, %v) = %d, want %d", tc.data, tc.keys, got, tc.want)
		}
	}
	if !hasObject([]byte(`{"usage" : {"a":1}}`), "usage") || hasObject([]byte(`{"usage":null,"x":"usage"}`), "usage") {
		t.Error("hasObject")
	}
}

// Streams relayed without their event: lines (some gateways drop them)
// are still read by their data's type.
func TestEventsWithoutNames(t *testing.T) {
	st := &streamState{}
	for _, d := range []string{
		`{"type":"message_start","message":{"usage":{"input_tokens":7,"output_tokens":1}}}`,
		`{"type":"content_block_delta","delta":{"type":"text_delta","text":"12345678"}}`,
		`{"type":"message_delta","usage":{"output_tokens":3}}`,
		`{"type":"message_stop"}`,
	} {
		anthropicEvent(st, nil, []byte(d))
	}
	if !st.done || st.tokens(100) != 10 || st.text != 8 {
		t.Errorf("anthropic: %+v", st)
	}
	st = &streamState{}
	responsesEvent(st, nil, []byte(`{"type":"response.output_text.delta","delta":"abcd"}`))
	responsesEvent(st, nil, []byte(`{"type":"response.completed","response":{"output":[{"content":[{"text":"abcd"}]}],"usage":{"input_tokens":5,"output_tokens":4}}}`))
	if !st.done || st.tokens(100) != 9 || st.text != 4 {
		t.Errorf("responses: %+v", st)
	}
}

func TestWithoutKey(t *testing.T) {
	cases := map[string]string{
		"":                      "",
		"alt=sse":               "alt=sse",
		"alt=sse&key=abc":       "alt=sse",
		"k%65y=abc&alt=sse":     "alt=sse",
		"KEY=abc&monkey=1":      "KEY=abc&monkey=1",
		"pageSize=5&key=a&key=": "pageSize=5",
	}
	for in, want := range cases {
		if got := withoutKey(in); got != want {
			t.Errorf("withoutKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseRequest: outside input never panics, and any edit keeps valid
// JSON valid.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","stream":true,"max_tokens":5000,"messages":[{"role":"user","content":"hi"}]}`,
		`{"stream":true,"stream_options":{"include_usage":false},"max_completion_tokens":1e9}`,
		`{"generationConfig":{"maxOutputTokens":99999},"contents":[{"parts":[{"text":"\"\\"}]}]}`,
		`{"a":[{"b":"}"}],"max_tokens":-1}`, `{}`, `{"x":"\u00e9"}`, ` { "stream" : true } `,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, fm := range []*apiFormat{fmtChat, fmtGenerate} {
			rq, err := parseRequest(fm, []byte(body), 100, true)
			if err != nil {
				continue
			}
			if json.Valid([]byte(body)) && !json.Valid(rq.body) {
				t.Fatalf("valid %q became invalid %q", body, rq.body)
			}
		}
	})
}

// FuzzSSESplitter: relayed bytes always equal the input.
func FuzzSSESplitter(f *testing.F) {
	f.Add("data: {\"a\":1}\n\ndata: x\r\n\r\n", 3)
	f.Add("\n\n\r\n\r\ndata:\n\n", 1)
	f.Fuzz(func(t *testing.T, stream string, size int) {
		if size <= 0 || size > 64 {
			size = 7
		}
		s := &sseSplitter{}
		var raw bytes.Buffer
		for i := 0; i < len(stream); i += size {
			s.feed([]byte(stream[i:min(i+size, len(stream))]), func(r, _, _ []byte) { raw.Write(r) })
		}
		raw.Write(s.rest())
		if raw.String() != stream {
			t.Fatalf("relayed %q, want %q", raw.String(), stream)
		}
	})
}
