package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

// The request policies read a translated request as it is sent upstream:
// a rejected phrase is found wherever the OpenAI request puts it (a
// system or developer message, a tool's name, description or schema, a
// tool call's arguments, a tool's result, text split across parts), and
// an image is refused outside ALLOWED_VISION_SERVICES, on every mount
// that translates; nothing refused reaches the upstream or is charged.
func TestTranslatedPoliciesSeeWhatIsSent(t *testing.T) {
	user := `{"role":"user","content":"hi"}`
	tool := func(name, desc, params string) string {
		return `"tools":[{"type":"function","function":{"name":"` + name + `","description":"` + desc + `","parameters":` + params + `}}]`
	}
	call := `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"q\":\"ARGS\"}"}}]}`
	result := `{"role":"tool","tool_call_id":"call_1","content":"RESULT"}`
	phrases := map[string]func(model string) string{
		"system message": func(m string) string {
			return `{"model":"` + m + `","messages":[{"role":"system","content":"the secret plan"},` + user + `]}`
		},
		"developer message after a turn": func(m string) string {
			return `{"model":"` + m + `","messages":[` + user + `,{"role":"developer","content":[{"type":"text","text":"the secret plan"}]}]}`
		},
		"tool description": func(m string) string {
			return `{"model":"` + m + `","messages":[` + user + `],` + tool("f", "the secret plan", `{"type":"object"}`) + `}`
		},
		"tool name": func(m string) string {
			return `{"model":"` + m + `","messages":[` + user + `],` + tool("secretplan", "", `{"type":"object"}`) + `}`
		},
		"tool schema": func(m string) string {
			return `{"model":"` + m + `","messages":[` + user + `],` + tool("f", "", `{"type":"object","properties":{"q":{"type":"string","description":"the secret plan"}}}`) + `}`
		},
		"call arguments": func(m string) string {
			return `{"model":"` + m + `","messages":[` + user + `,` + strings.Replace(call, "ARGS", "the secret plan", 1) + `,` + strings.Replace(result, "RESULT", "ok", 1) + `]}`
		},
		"tool result": func(m string) string {
			return `{"model":"` + m + `","messages":[` + user + `,` + strings.Replace(call, "ARGS", "x", 1) + `,` + strings.Replace(result, "RESULT", "the secret plan", 1) + `]}`
		},
		"split across parts": func(m string) string {
			return `{"model":"` + m + `","messages":[{"role":"user","content":[{"type":"text","text":"the secret "},{"type":"text","text":"plan"}]}]}`
		},
		"split across messages": func(m string) string {
			return `{"model":"` + m + `","messages":[{"role":"user","content":"the secret "},{"role":"user","content":"plan"}]}`
		},
	}
	const png = "data:image/png;base64,iVBORw0KGgo="
	image := func(m string) string {
		return `{"model":"` + m + `","messages":[{"role":"user","content":[{"type":"text","text":"what is it?"},{"type":"image_url","image_url":{"url":"` + png + `"}}]}]}`
	}
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, map[string]string{"REJECT_PHRASES": "secret plan,secretplan", "REJECT_MESSAGE": "Not here."})
			tk := e.user(users.Patch{Type: setOpt(users.Special)})
			path := "/proxy/" + tm.mount + "/v1/chat/completions"
			up := e.fake(tm.fake)
			for name, body := range phrases {
				a := e.do(callOf(path, body(tm.model), tk))
				if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "Not here.") {
					t.Errorf("%s: %d %s", name, a.status, a.body)
				}
			}
			// A special user is exempt from the image policy; a normal
			// one is not.
			normal := e.user(users.Patch{})
			a := e.do(callOf(path, image(tm.model), normal))
			if a.status != http.StatusForbidden || !strings.Contains(string(a.body), "images are not permitted") {
				t.Errorf("image: %d %s", a.status, a.body)
			}
			if tm.fetchesURLs {
				// An image the upstream fetches itself is an image too.
				a := e.do(callOf(path, strings.Replace(image(tm.model), png, "https://example.com/cat.png", 1), normal))
				if a.status != http.StatusForbidden || !strings.Contains(string(a.body), "images are not permitted") {
					t.Errorf("image URL: %d %s", a.status, a.body)
				}
			}
			if n := up.Count(); n != 0 {
				t.Errorf("%d refused requests reached the upstream", n)
			}
			if u := e.get(tk); u.PromptCount != 0 {
				t.Errorf("refused requests charged: %+v", u.TokenCounts)
			}
			// The innocent twins pass, so the refusals above are the
			// policies', not the translation's.
			for _, body := range []string{
				strings.Replace(phrases["tool result"](tm.model), "the secret plan", "the plan", 1),
				strings.Replace(phrases["tool description"](tm.model), "the secret plan", "the plan", 1),
			} {
				if a := e.do(callOf(path, body, tk)); a.status != 200 {
					t.Errorf("innocent: %d %s", a.status, a.body)
				}
			}
			if a := e.do(callOf(path, image(tm.model), tk)); a.status != 200 {
				t.Errorf("image from a special user: %d %s", a.status, a.body)
			}
		})
	}
	t.Run("vision allowed", func(t *testing.T) {
		for _, tm := range translatedMounts {
			service, _, _ := strings.Cut(tm.mount, "/")
			e := tm.newEnv(t, map[string]string{"ALLOWED_VISION_SERVICES": service})
			tk := e.user(users.Patch{})
			if a := e.do(callOf("/proxy/"+tm.mount+"/v1/chat/completions", image(tm.model), tk)); a.status != 200 {
				t.Errorf("%s: %d %s", tm.mount, a.status, a.body)
			}
		}
	})
}

func callOf(path, body, token string) call {
	return call{path: path, body: body, header: bearerH(token)}
}

// Every member of an OpenAI request that changes what the upstream bills
// is either carried into the native request, where the quota reserves it,
// or refused before anything is sent: more than one answer, log
// probabilities, audio, web search, predicted outputs, tools the upstream
// runs, unknown members. Of max_tokens and max_completion_tokens the
// larger is sent (clamped), and a request naming none is sent the clamp;
// a price tier is not sent at all.
func TestTranslatedCostFieldsCarriedOrRefused(t *testing.T) {
	clamps := map[string]string{"MAX_OUTPUT_TOKENS_ANTHROPIC": "1024", "MAX_OUTPUT_TOKENS_GOOGLE_AI": "1024",
		"MAX_OUTPUT_TOKENS_AWS": "1024", "MAX_OUTPUT_TOKENS_GCP": "1024"}
	msgs := `"messages":[{"role":"user","content":"Say hello."}]`
	refused := map[string]string{
		`"n":2`:                     "n:",
		`"logprobs":true`:           "logprobs",
		`"top_logprobs":3`:          "top_logprobs",
		`"modalities":["audio"]`:    "modalities",
		`"audio":{"voice":"alloy"}`: "audio",
		`"web_search_options":{"search_context_size":"high"}`: "web_search_options",
		`"prediction":{"type":"content","content":"x"}`:       "prediction",
		`"functions":[{"name":"f"}]`:                          "functions",
		`"frobnicate":1`:                                      "frobnicate",
		`"tools":[{"type":"web_search_preview"}]`:             "tools[0].type",
		`"Max_Tokens":100000`:                                 "Max_Tokens",
	}
	for _, tm := range translatedMounts {
		t.Run(tm.mount, func(t *testing.T) {
			e := tm.newEnv(t, clamps)
			tk := e.user(users.Patch{})
			path := "/proxy/" + tm.mount + "/v1/chat/completions"
			up := e.fake(tm.fake)
			for member, what := range refused {
				a := e.do(callOf(path, `{"model":"`+tm.model+`",`+member+`,`+msgs+`}`, tk))
				if a.status != http.StatusBadRequest || !strings.Contains(str(dig(a.json(t), "error", "message")), what) {
					t.Errorf("%s: %d %s", member, a.status, a.body)
				}
			}
			if n := up.Count(); n != 0 {
				t.Fatalf("%d refused requests reached the upstream", n)
			}
			limit := func() any {
				path := append([]string(nil), tm.maxTokens...)
				return dig(up.Last(t).JSON(), path...)
			}
			for body, want := range map[string]float64{
				`"max_tokens":300,"max_completion_tokens":700`:   700,
				`"max_completion_tokens":700,"max_tokens":300`:   700,
				`"max_tokens":5000,"max_completion_tokens":null`: 1024,
				`"max_tokens":0`: 1024,
				`"stream_options":{"include_usage":true},"service_tier":"priority"`: 1024,
			} {
				a := e.do(callOf(path, `{"model":"`+tm.model+`",`+body+`,`+msgs+`}`, tk))
				if a.status != 200 {
					t.Errorf("%s: %d %s", body, a.status, a.body)
					continue
				}
				if got := limit(); got != want {
					t.Errorf("%s: native limit %v, want %v", body, got, want)
				}
				if sent := string(up.Last(t).Body); strings.Contains(sent, "priority") || strings.Contains(sent, "stream_options") {
					t.Errorf("%s: sent %s", body, sent)
				}
			}
			// The larger limit is the one the quota reserves.
			tight := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{tm.family: 600})})
			a := e.do(callOf(path, `{"model":"`+tm.model+`","max_tokens":300,"max_completion_tokens":700,`+msgs+`}`, tight))
			if a.status != http.StatusTooManyRequests {
				t.Errorf("700 output tokens asked with 600 left: %d %s", a.status, a.body)
			}
		})
	}
}

// An upstream's error on a translated route is told in OpenAI's shape
// with the native message only: the operator's organisation and key are
// replaced in it as on the native route (TestAnthropicOrganizationNotRelayed),
// whole, streamed and as a completion, and the native body's request id
// and the upstream's account headers are not relayed.
func TestTranslatedErrorsHideTheAccount(t *testing.T) {
	const org = "7f54fbff-3504-477a-b4a2-08359988239d"
	msg := "This request would exceed the rate limit for your organization (" + org + ") of 40,000 input tokens per minute; key " + anthropicKey + "."
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Anthropic-Organization-Id", org)
		w.Header().Set("Anthropic-Ratelimit-Input-Tokens-Remaining", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"`+msg+`"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`)
	}))
	defer up.Close()
	for _, format := range []string{"", "completion"} {
		e := newEnv(t, map[string]string{"ANTHROPIC_BASE_URL": up.URL, "ERROR_FORMAT": format})
		tk := e.user(users.Patch{})
		for _, stream := range []string{"false", "true"} {
			a := e.do(callOf("/proxy/anthropic/v1/chat/completions",
				`{"model":"claude-sonnet-4-5","stream":`+stream+`,"messages":[{"role":"user","content":"hi"}]}`, tk))
			body := strings.ToLower(string(a.body))
			if !strings.Contains(body, "rate limit") {
				t.Fatalf("%q, stream %s: %d %s", format, stream, a.status, a.body)
			}
			for _, secret := range []string{org, strings.ToLower(anthropicKey), "req_011"} {
				if strings.Contains(body, secret) {
					t.Errorf("%q, stream %s: %q relayed: %s", format, stream, secret, a.body)
				}
			}
			for k := range a.header {
				if strings.HasPrefix(k, "Anthropic-") {
					t.Errorf("%q, stream %s: header %s relayed", format, stream, k)
				}
			}
		}
		if u := e.get(tk); u.PromptCount != 0 {
			t.Errorf("errors charged: %+v", u.TokenCounts)
		}
	}
}
