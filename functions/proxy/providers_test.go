package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// sseData returns the data of every event of an SSE body.
func sseData(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestGoogle(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.Google)
	up.Set(upstreamfake.Behavior{InputTokens: 10, OutputTokens: 6, ReasoningTokens: 4})
	// A limit under the clamp: the body needs no change.
	const body = `{"contents":[{"role":"user","parts":[{"text":"Say hello."}]}],"generationConfig":{"temperature":0.5,"maxOutputTokens":1000}}`
	charged := int64(0)
	cases := []struct {
		name   string
		path   string
		header map[string]string
		stream bool
	}{
		{"generateContent with ?key=", "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent?key=" + token, nil, false},
		{"generateContent with x-goog-api-key", "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent", map[string]string{"x-goog-api-key": token}, false},
		{"streamGenerateContent alt=sse with ?key=", "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=" + token, nil, true},
		{"streamGenerateContent alt=sse with header", "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", map[string]string{"x-goog-api-key": token}, true},
		{"streamGenerateContent as a JSON array", "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?key=" + token, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(call{path: tc.path, body: body, header: tc.header})
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			var text strings.Builder
			var parts []map[string]any
			switch {
			case !tc.stream:
				parts = append(parts, a.json(t))
			case strings.Contains(tc.path, "alt=sse"):
				for _, d := range sseData(t, a.body) {
					var m map[string]any
					if err := json.Unmarshal([]byte(d), &m); err != nil {
						t.Fatalf("event %q: %v", d, err)
					}
					parts = append(parts, m)
				}
			default:
				if err := json.Unmarshal(a.body, &parts); err != nil {
					t.Fatalf("array stream: %v\n%s", err, a.body)
				}
			}
			for _, p := range parts {
				cands, _ := p["candidates"].([]any)
				for _, c := range cands {
					for _, part := range dig(c.(map[string]any), "content", "parts").([]any) {
						text.WriteString(part.(map[string]any)["text"].(string))
					}
				}
			}
			if text.String() != "Hello from the fake upstream!" {
				t.Errorf("text %q", text.String())
			}
			last := up.Last(t)
			wantPath := "/v1beta/models/gemini-2.5-flash:generateContent"
			if tc.stream {
				wantPath = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
			}
			if last.Path != wantPath {
				t.Errorf("upstream path %q, want %q", last.Path, wantPath)
			}
			if last.Header.Get("X-Goog-Api-Key") != googleKey || last.Query.Has("key") {
				t.Errorf("upstream key header %q, query %q", last.Header.Get("X-Goog-Api-Key"), last.RawQuery)
			}
			if strings.Contains(tc.path, "alt=sse") && last.Query.Get("alt") != "sse" {
				t.Errorf("alt=sse lost: query %q", last.RawQuery)
			}
			if string(last.Body) != body {
				t.Errorf("body changed without need:\n got %s\nwant %s", last.Body, body)
			}
			charged += 20 // 10 prompt + 6 candidates + 4 thoughts
			if u := e.get(token); u.TokenCounts["gemini-flash"] != charged {
				t.Errorf("charged %v, want gemini-flash=%d", u.TokenCounts, charged)
			}
		})
	}
	t.Run("countTokens is not charged", func(t *testing.T) {
		a := e.do(call{path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:countTokens", body: body, header: map[string]string{"x-goog-api-key": token}})
		if a.status != 200 || dig(a.json(t), "totalTokens") != float64(10) {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		if u := e.get(token); u.TokenCounts["gemini-flash"] != charged || u.PromptCount != int64(len(cases)) {
			t.Errorf("countTokens charged: %v, %d prompts", u.TokenCounts, u.PromptCount)
		}
	})
	t.Run("pro family", func(t *testing.T) {
		a := e.do(call{path: "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent", body: body, header: map[string]string{"x-goog-api-key": token}})
		if a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		if u := e.get(token); u.TokenCounts["gemini-pro"] != 20 {
			t.Errorf("counts %v; want gemini-pro=20", u.TokenCounts)
		}
	})
	e.neverSaw(token)
}

func TestMistral(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.Mistral)
	t.Run("chat", func(t *testing.T) {
		a := e.do(call{path: "/proxy/mistral-ai/v1/chat/completions", header: bearerH(token),
			body: `{"model":"mistral-large-latest","messages":[{"role":"user","content":"Say hello."}]}`})
		if a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		if got := dig(a.json(t), "usage", "total_tokens"); got != float64(18) {
			t.Errorf("usage relayed: %v", got)
		}
		if h := up.Last(t).Header.Get("Authorization"); h != "Bearer "+mistralKey {
			t.Errorf("upstream Authorization %q", h)
		}
		if u := e.get(token); u.TokenCounts["mistral-large"] != 18 {
			t.Errorf("counts %v", u.TokenCounts)
		}
	})
	t.Run("stream", func(t *testing.T) {
		a := e.do(call{path: "/proxy/mistral-ai/v1/chat/completions", header: bearerH(token),
			body: `{"model":"mistral-small-latest","stream":true,"messages":[{"role":"user","content":"Say hello."}]}`})
		if a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		data := sseData(t, a.body)
		if len(data) < 3 || data[len(data)-1] != "[DONE]" {
			t.Fatalf("stream %q", data)
		}
		// Mistral's usage rides on its last chunk, which must reach the client.
		mustContain(t, "last chunk", data[len(data)-2], `"usage"`)
		if _, ok := up.Last(t).JSON()["stream_options"]; ok {
			t.Error("stream_options sent to Mistral, which refuses it")
		}
		if u := e.get(token); u.TokenCounts["mistral-small"] != 18 {
			t.Errorf("counts %v", u.TokenCounts)
		}
	})
	e.neverSaw(token)
}

// The OpenAI routes besides chat: each is forwarded to its path and
// charged from its own usage shape.
func TestOpenAIRoutes(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "gpt41,turbo,gpt-image,gpt4o"})
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.OpenAI)
	cases := []struct {
		path, body string
		family     string
		charge     int64
		check      func(t *testing.T, a answer)
	}{
		{"/v1/responses", `{"model":"gpt-4.1","input":"Say hello.","max_output_tokens":50}`, "gpt41", 18, func(t *testing.T, a answer) {
			if dig(a.json(t), "usage", "total_tokens") != float64(18) {
				t.Errorf("answer %s", a.body)
			}
		}},
		{"/v1/responses", `{"model":"gpt-4.1","input":"Say hello.","stream":true}`, "gpt41", 18, func(t *testing.T, a answer) {
			mustContain(t, "stream", string(a.body), "event: response.completed")
		}},
		{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"Say hello.","stream":true}`, "turbo", 18, func(t *testing.T, a answer) {
			for _, d := range sseData(t, a.body) {
				if strings.Contains(d, `"choices":[]`) {
					t.Errorf("hidden usage chunk relayed: %s", d)
				}
			}
		}},
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":"hello"}`, "turbo", 11, nil},
		{"/v1/images/generations", `{"model":"gpt-image-1","prompt":"a cat"}`, "gpt-image", 18, nil},
	}
	total := map[string]int64{}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			a := e.do(call{path: "/proxy/openai" + tc.path, body: tc.body, header: bearerH(token)})
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if p := up.Last(t).Path; p != tc.path {
				t.Errorf("upstream path %q", p)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
			total[tc.family] += tc.charge
			if u := e.get(token); u.TokenCounts[tc.family] != total[tc.family] {
				t.Errorf("counts %v; want %s=%d", u.TokenCounts, tc.family, total[tc.family])
			}
		})
	}
}

// Model lists are forwarded to the upstream with the operator's key and
// are not charged.
func TestModelLists(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	cases := []struct {
		path   string
		header map[string]string
		kind   upstreamfake.Kind
		want   string
	}{
		{"/proxy/openai/v1/models", bearerH(token), upstreamfake.OpenAI, `"gpt-5"`},
		{"/proxy/openai/v1/models/gpt-5", bearerH(token), upstreamfake.OpenAI, `"id":"gpt-5","object":"model"`},
		{"/proxy/anthropic/v1/models", map[string]string{"x-api-key": token}, upstreamfake.Anthropic, `"claude-sonnet-4-5-20250929"`},
		{"/proxy/google-ai/v1beta/models?key=" + token, nil, upstreamfake.Google, `"models/gemini-2.5-flash"`},
		{"/proxy/mistral-ai/v1/models", bearerH(token), upstreamfake.Mistral, `"mistral-large-latest"`},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			a := e.do(call{method: http.MethodGet, path: tc.path, header: tc.header})
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			mustContain(t, "model list", string(a.body), tc.want)
			if e.fake(tc.kind).Last(t).Key == "" {
				t.Error("upstream got no key")
			}
		})
	}
	if u := e.get(token); u.PromptCount != 0 {
		t.Errorf("model lists were charged: %d prompts", u.PromptCount)
	}
	if a := e.do(call{method: http.MethodGet, path: "/proxy/openai/v1/models"}); a.status != 401 {
		t.Errorf("model list without a token: %d", a.status)
	}
	e.neverSaw(token)
}

// The Anthropic version header is the client's when sent, else defaulted.
func TestAnthropicVersionHeader(t *testing.T) {
	e := newEnv(t, nil)
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.Anthropic)
	body := `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct{ sent, want string }{{"", "2023-06-01"}, {"2024-10-22", "2024-10-22"}} {
		h := map[string]string{"x-api-key": token, "anthropic-beta": "tools-2024-04-04"}
		if tc.sent != "" {
			h["anthropic-version"] = tc.sent
		}
		if a := e.do(call{path: "/proxy/anthropic/v1/messages", body: body, header: h}); a.status != 200 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		last := up.Last(t)
		if got := last.Header.Get("Anthropic-Version"); got != tc.want {
			t.Errorf("sent %q: upstream got anthropic-version %q, want %q", tc.sent, got, tc.want)
		}
		if last.Header.Get("Anthropic-Beta") != "tools-2024-04-04" {
			t.Errorf("anthropic-beta not forwarded")
		}
	}
	// count_tokens is limited like any request but charges nothing.
	a := e.do(call{path: "/proxy/anthropic/v1/messages/count_tokens", body: body, header: map[string]string{"x-api-key": token}})
	if a.status != 200 || dig(a.json(t), "input_tokens") != float64(11) {
		t.Fatalf("count_tokens: %d %s", a.status, a.body)
	}
	if u := e.get(token); u.PromptCount != 2 {
		t.Errorf("promptCount %d after two messages and one count_tokens, want 2", u.PromptCount)
	}
}

// Output limits are clamped to MAX_OUTPUT_TOKENS_* by editing only the
// number; special users are not clamped.
func TestClamp(t *testing.T) {
	e := newEnv(t, map[string]string{"MAX_OUTPUT_TOKENS_OPENAI": "100", "MAX_OUTPUT_TOKENS_ANTHROPIC": "200", "MAX_OUTPUT_TOKENS_GOOGLE_AI": "300", "MAX_OUTPUT_TOKENS_MISTRAL_AI": "400"})
	normal := e.user(users.Patch{})
	special := e.user(users.Patch{Type: users.Opt[users.Type]{Set: true, Value: users.Special}})
	cases := []struct {
		name, path, body, want string
		kind                   upstreamfake.Kind
		header                 func(token string) map[string]string
	}{
		{"openai max_tokens", "/proxy/openai/v1/chat/completions",
			`{"model":"gpt-4o", "max_tokens": 5000 ,"messages":[{"role":"user","content":"max_tokens: 5000"}]}`,
			`{"model":"gpt-4o", "max_tokens": 100 ,"messages":[{"role":"user","content":"max_tokens: 5000"}]}`,
			upstreamfake.OpenAI, bearerH},
		{"openai max_completion_tokens", "/proxy/openai/v1/chat/completions",
			`{"model":"o3","max_completion_tokens":4096,"messages":[]}`,
			`{"model":"o3","max_completion_tokens":100,"messages":[]}`,
			upstreamfake.OpenAI, bearerH},
		{"openai under the limit", "/proxy/openai/v1/chat/completions",
			`{"model":"gpt-4o","max_tokens":50,"messages":[]}`,
			`{"model":"gpt-4o","max_tokens":50,"messages":[]}`,
			upstreamfake.OpenAI, bearerH},
		// A request that names no limit gets the clamp, in the member
		// the API takes for every model (o-series refuse max_tokens).
		{"openai none asked: the clamp added", "/proxy/openai/v1/chat/completions",
			`{"model":"o3","messages":[]}`,
			`{"model":"o3","messages":[],"max_completion_tokens":100}`,
			upstreamfake.OpenAI, bearerH},
		{"openai null limit: the clamp added", "/proxy/openai/v1/chat/completions",
			`{"model":"gpt-4o","max_tokens":null,"messages":[]}`,
			`{"model":"gpt-4o","max_tokens":null,"messages":[],"max_completion_tokens":100}`,
			upstreamfake.OpenAI, bearerH},
		{"openai legacy completions none asked", "/proxy/openai/v1/completions",
			`{"model":"gpt-3.5-turbo-instruct","prompt":"hi"}`,
			`{"model":"gpt-3.5-turbo-instruct","prompt":"hi","max_tokens":100}`,
			upstreamfake.OpenAI, bearerH},
		{"openai responses none asked", "/proxy/openai/v1/responses",
			`{"model":"o3","input":"think hard"}`,
			`{"model":"o3","input":"think hard","max_output_tokens":100}`,
			upstreamfake.OpenAI, bearerH},
		{"openai responses", "/proxy/openai/v1/responses",
			`{"model":"gpt-4.1","input":"hi","max_output_tokens":9999}`,
			`{"model":"gpt-4.1","input":"hi","max_output_tokens":100}`,
			upstreamfake.OpenAI, bearerH},
		{"anthropic", "/proxy/anthropic/v1/messages",
			`{"model":"claude-sonnet-4-5","max_tokens":64000,"messages":[]}`,
			`{"model":"claude-sonnet-4-5","max_tokens":200,"messages":[]}`,
			upstreamfake.Anthropic, func(tk string) map[string]string { return map[string]string{"x-api-key": tk} }},
		{"google", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[],"generationConfig":{"temperature":1,"maxOutputTokens":65536}}`,
			`{"contents":[],"generationConfig":{"temperature":1,"maxOutputTokens":300}}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		{"google snake case", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[],"generation_config":{"max_output_tokens":1e5}}`,
			`{"contents":[],"generation_config":{"max_output_tokens":300}}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		{"google none asked", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[]}`,
			`{"contents":[],"generationConfig":{"maxOutputTokens":300}}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		{"google none asked in its config", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"generationConfig":{"temperature":1},"contents":[]}`,
			`{"generationConfig":{"temperature":1,"maxOutputTokens":300},"contents":[]}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		{"google none asked in a snake case config", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[],"generation_config":{ }}`,
			`{"contents":[],"generation_config":{ "maxOutputTokens":300}}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		{"google null config", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[],"generationConfig":null}`,
			`{"contents":[],"generationConfig":{"maxOutputTokens":300}}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		// 0 leaves the model's own maximum (Gemini reads it as unset), and
		// so does null where the clamp would go: both become the clamp.
		{"google 0", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[],"generationConfig":{"maxOutputTokens":0}}`,
			`{"contents":[],"generationConfig":{"maxOutputTokens":300}}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		{"google null", "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent",
			`{"contents":[],"generationConfig":{"maxOutputTokens":null}}`,
			`{"contents":[],"generationConfig":{"maxOutputTokens":300}}`,
			upstreamfake.Google, func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }},
		{"openai 0", "/proxy/openai/v1/chat/completions",
			`{"model":"gpt-4o","max_completion_tokens":0,"messages":[]}`,
			`{"model":"gpt-4o","max_completion_tokens":100,"messages":[]}`,
			upstreamfake.OpenAI, bearerH},
		{"mistral none asked", "/proxy/mistral-ai/v1/chat/completions",
			`{"model":"mistral-large-latest","messages":[]}`,
			`{"model":"mistral-large-latest","messages":[],"max_tokens":400}`,
			upstreamfake.Mistral, bearerH},
		{"mistral", "/proxy/mistral-ai/v1/chat/completions",
			`{"model":"mistral-large-latest","max_tokens":8000,"messages":[]}`,
			`{"model":"mistral-large-latest","max_tokens":400,"messages":[]}`,
			upstreamfake.Mistral, bearerH},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if a := e.do(call{path: tc.path, body: tc.body, header: tc.header(normal)}); a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if got := string(e.fake(tc.kind).Last(t).Body); got != tc.want {
				t.Errorf("upstream body\n got %s\nwant %s", got, tc.want)
			}
			if a := e.do(call{path: tc.path, body: tc.body, header: tc.header(special)}); a.status != 200 {
				t.Fatalf("special: status %d: %s", a.status, a.body)
			}
			if got := string(e.fake(tc.kind).Last(t).Body); got != tc.body {
				t.Errorf("special user's body was changed:\n got %s\nwant %s", got, tc.body)
			}
		})
	}
}

// Rate-limit headers ride on every proxied answer.
func TestRateLimitHeaders(t *testing.T) {
	e := newEnv(t, map[string]string{"TEXT_MODEL_RATE_LIMIT": "10"})
	token := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: `{"model":"gpt-4o","messages":[]}`, header: bearerH(token)})
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	reset := e.clock.Now().Add(time.Minute).Unix()
	want := map[string]string{"X-Ratelimit-Limit": "10", "X-Ratelimit-Remaining": "9", "X-Ratelimit-Reset": itoa(reset)}
	for k, v := range want {
		if got := a.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// An upstream error is a proxied answer too.
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Status: 400})
	a = e.do(call{path: "/proxy/openai/v1/chat/completions", body: `{"model":"gpt-4o","messages":[]}`, header: bearerH(token)})
	if a.status != 400 || a.header.Get("X-Ratelimit-Remaining") != "8" {
		t.Errorf("upstream error: status %d, remaining %q", a.status, a.header.Get("X-Ratelimit-Remaining"))
	}
	if a.header.Get(headerError) != "" {
		t.Errorf("an upstream error was marked as the proxy's: %q", a.header.Get(headerError))
	}
	if u := e.get(token); u.PromptCount != 1 {
		t.Errorf("the upstream error was charged: %d prompts", u.PromptCount)
	}
}

// An upstream's own headers of the rate headers' names never reach the
// client beside ours: the client is told our limit, once.
func TestRateLimitHeadersReplaceTheUpstreams(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ratelimit-Limit", "999")
		w.Header().Set("X-Ratelimit-Remaining", "998")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	}))
	defer up.Close()
	e := newEnv(t, map[string]string{"TEXT_MODEL_RATE_LIMIT": "10", "OPENAI_BASE_URL": up.URL})
	a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: `{"model":"gpt-4o","messages":[]}`, header: bearerH(e.user(users.Patch{}))})
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	for k, v := range map[string]string{"X-Ratelimit-Limit": "10", "X-Ratelimit-Remaining": "9"} {
		if got := a.header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want only %q", k, got, v)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
