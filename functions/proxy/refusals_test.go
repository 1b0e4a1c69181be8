package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// provCase is how a client of one provider calls the proxy and how that
// provider's errors look.
type provCase struct {
	kind   upstreamfake.Kind
	path   string
	body   string
	stream string // the streaming form of body (or path, for Google)
	auth   func(token string) map[string]string
	// family is the family the request's model is counted in.
	family string
	shape  func(t *testing.T, a answer)
}

func openAIShape(t *testing.T, a answer) {
	t.Helper()
	m := a.json(t)
	msg, _ := dig(m, "error", "message").(string)
	typ, _ := dig(m, "error", "type").(string)
	code, _ := dig(m, "error", "code").(string)
	if msg == "" || typ == "" || code == "" {
		t.Errorf("not OpenAI's error shape {error:{message,type,code}}: %s", a.body)
	}
}

func anthropicShape(t *testing.T, a answer) {
	t.Helper()
	m := a.json(t)
	msg, _ := dig(m, "error", "message").(string)
	typ, _ := dig(m, "error", "type").(string)
	if m["type"] != "error" || msg == "" || typ == "" {
		t.Errorf("not Anthropic's error shape {type:error, error:{type,message}}: %s", a.body)
	}
}

func googleShape(t *testing.T, a answer) {
	t.Helper()
	m := a.json(t)
	msg, _ := dig(m, "error", "message").(string)
	st, _ := dig(m, "error", "status").(string)
	if dig(m, "error", "code") != float64(a.status) || msg == "" || st == "" || st == "UNKNOWN" {
		t.Errorf("not Google's error shape {error:{code,message,status}}: %s", a.body)
	}
}

var provCases = []provCase{
	{
		kind: upstreamfake.OpenAI, path: "/proxy/openai/v1/chat/completions",
		body:   `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"Say hello."}]}`,
		stream: `{"model":"gpt-4o","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`,
		auth:   bearerH, family: "gpt4o", shape: openAIShape,
	},
	{
		kind: upstreamfake.Anthropic, path: "/proxy/anthropic/v1/messages",
		body:   `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"Say hello."}]}`,
		stream: `{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`,
		auth:   func(tk string) map[string]string { return map[string]string{"x-api-key": tk} },
		family: "claude", shape: anthropicShape,
	},
	{
		kind: upstreamfake.Google, path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent",
		body:   `{"contents":[{"role":"user","parts":[{"text":"Say hello."}]}],"generationConfig":{"maxOutputTokens":100}}`,
		stream: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
		auth:   func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} },
		family: "gemini-flash", shape: googleShape,
	},
	{
		kind: upstreamfake.Mistral, path: "/proxy/mistral-ai/v1/chat/completions",
		body:   `{"model":"mistral-small-latest","max_tokens":100,"messages":[{"role":"user","content":"Say hello."}]}`,
		stream: `{"model":"mistral-small-latest","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`,
		auth:   bearerH, family: "mistral-small", shape: openAIShape,
	},
}

// streamCall is pc's streaming request.
func (pc provCase) streamCall(token string) call {
	if pc.kind == upstreamfake.Google {
		return call{path: pc.stream, body: pc.body, header: pc.auth(token)}
	}
	return call{path: pc.path, body: pc.stream, header: pc.auth(token)}
}

func setOpt[T any](v T) users.Opt[T] { return users.Opt[T]{Set: true, Value: v} }

// TestRefusals checks every refusal of the gatekeeper and the router, for
// every provider: status, error headers, the provider's error shape, and
// that nothing reached the upstream or was charged.
func TestRefusals(t *testing.T) {
	cases := []struct {
		name   string
		vars   map[string]string
		status int
		// run sets up, then returns the user's token ("" when none) and
		// the refused request.
		run   func(e *env, pc provCase) (string, func() answer)
		check func(t *testing.T, a answer)
	}{
		{"missing token", nil, 401, func(e *env, pc provCase) (string, func() answer) {
			return "", func() answer { return e.do(call{path: pc.path, body: pc.body}) }
		}, nil},
		{"invalid token", nil, 401, func(e *env, pc provCase) (string, func() answer) {
			return "", func() answer {
				return e.do(call{path: pc.path, body: pc.body, header: pc.auth("00000000-0000-4000-8000-000000000000")})
			}
		}, nil},
		{"disabled token", nil, 403, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{DisabledAt: setOpt(int64(1)), DisabledReason: setOpt("Abuse of the service.")})
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, func(t *testing.T, a answer) { mustContain(t, "error", string(a.body), "Abuse of the service.") }},
		{"expired temporary token", nil, 403, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{Type: setOpt(users.Temporary), ExpiresAt: setOpt(e.clock.Now().Add(-time.Minute).UnixMilli())})
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, func(t *testing.T, a answer) { mustContain(t, "error", string(a.body), users.ExpiredReason) }},
		{"IP limit", map[string]string{"MAX_IPS_PER_USER": "1"}, 403, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{IP: setOpt([]string{"10.9.8.7"})})
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, func(t *testing.T, a answer) { mustContain(t, "error", string(a.body), "IP address limit") }},
		{"family not allowed", map[string]string{"ALLOWED_MODEL_FAMILIES": "turbo"}, 403, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{})
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, nil},
		{"IP blacklist", map[string]string{"IP_BLACKLIST": "127.0.0.0/8"}, 403, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{})
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, nil},
		{"quota", nil, 429, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{pc.family: 50}), TokenCounts: setOpt(map[string]int64{pc.family: 20})})
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, func(t *testing.T, a answer) {
			m := a.json(t)
			inner, _ := m["error"].(map[string]any)
			req, _ := inner["requested"].(float64)
			if inner["quota"] != float64(50) || inner["used"] != float64(20) || req < 100 {
				t.Errorf("quota details missing or wrong (want quota 50, used 20, requested ≥ 100): %s", a.body)
			}
		}},
		{"rate limit", map[string]string{"TEXT_MODEL_RATE_LIMIT": "1"}, 429, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{})
			if a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}); a.status != 200 {
				e.t.Fatalf("first request: %d %s", a.status, a.body)
			}
			e.clock.Advance(20 * time.Second)
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, func(t *testing.T, a answer) {
			if a.header.Get("Retry-After") != "40" {
				t.Errorf("Retry-After %q, want 40", a.header.Get("Retry-After"))
			}
			if a.header.Get("X-Ratelimit-Limit") != "1" || a.header.Get("X-Ratelimit-Remaining") != "0" {
				t.Errorf("rate headers: limit %q remaining %q", a.header.Get("X-Ratelimit-Limit"), a.header.Get("X-Ratelimit-Remaining"))
			}
		}},
		{"concurrency", map[string]string{"USER_CONCURRENCY_LIMIT": "1"}, 429, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{})
			up := e.fake(pc.kind)
			hold := make(chan struct{})
			up.Set(upstreamfake.Behavior{HoldAfterFirst: hold})
			done := make(chan answer)
			go func() { done <- e.do(pc.streamCall(tk)) }()
			if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.InFlight() == 1 }) {
				e.t.Fatal("the first request never reached the upstream")
			}
			return "", func() answer { // the held request is charged; not this one
				a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
				close(hold)
				if first := <-done; first.status != 200 {
					e.t.Errorf("the request in flight failed: %d %s", first.status, first.body)
				}
				return a
			}
		}, nil},
		{"body too large", nil, 413, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{})
			big := `{"model":"x","messages":[{"role":"user","content":"` + strings.Repeat("a", 33<<20) + `"}]}`
			return tk, func() answer { return e.do(call{path: pc.path, body: big, header: pc.auth(tk)}) }
		}, nil},
		{"unknown route", nil, 404, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{})
			path := map[upstreamfake.Kind]string{
				upstreamfake.OpenAI:    "/proxy/openai/v1/fine_tuning/jobs",
				upstreamfake.Anthropic: "/proxy/anthropic/v1/batches",
				upstreamfake.Google:    "/proxy/google-ai/v1beta/models/gemini-2.5-flash:embedContent",
				upstreamfake.Mistral:   "/proxy/mistral-ai/v1/embeddings",
			}[pc.kind]
			return tk, func() answer { return e.do(call{path: path, body: pc.body, header: pc.auth(tk)}) }
		}, nil},
		{"provider without key", map[string]string{"OPENAI_KEY": "", "ANTHROPIC_KEY": "", "GOOGLE_AI_KEY": "", "MISTRAL_AI_KEY": ""}, 503, func(e *env, pc provCase) (string, func() answer) {
			tk := e.user(users.Patch{})
			return tk, func() answer { return e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}) }
		}, func(t *testing.T, a answer) {
			if !strings.Contains(string(a.body), "OpenAI") && !strings.Contains(string(a.body), "Anthropic") &&
				!strings.Contains(string(a.body), "Google AI") && !strings.Contains(string(a.body), "Mistral AI") {
				t.Errorf("the 503 does not name the provider: %s", a.body)
			}
		}},
	}
	for _, tc := range cases {
		for _, pc := range provCases {
			t.Run(tc.name+"/"+string(pc.kind), func(t *testing.T) {
				e := newEnv(t, tc.vars)
				e.origin = "http://localhost:8000" // a browser client: refusals must be readable
				up := e.fake(pc.kind)
				token, refused := tc.run(e, pc)
				before := up.Count()
				a := refused()
				if a.status != tc.status {
					t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
				}
				if a.header.Get(headerError) == "" || a.header.Get(headerErrorStatus) != strconv.Itoa(tc.status) {
					t.Errorf("error headers: %q=%q %q=%q", headerError, a.header.Get(headerError), headerErrorStatus, a.header.Get(headerErrorStatus))
				}
				if a.header.Get("Access-Control-Allow-Origin") != "*" {
					t.Error("refusal lacks the CORS header")
				}
				pc.shape(t, a)
				if tc.check != nil {
					tc.check(t, a)
				}
				if up.Count() != before {
					t.Error("a refused request reached the upstream")
				}
				if token != "" {
					if u, err := e.d.Store.Get(context.Background(), token); err == nil && u.PromptCount != 0 && tc.name != "rate limit" {
						t.Errorf("a refused request was charged: %d prompts", u.PromptCount)
					} else if err == nil && tc.name == "rate limit" && u.PromptCount != 1 {
						t.Errorf("rate limit: %d prompts charged, want 1 (the first request)", u.PromptCount)
					}
				}
			})
		}
	}
}

// Unknown routes outside any provider answer 404 in OpenAI's shape.
func TestUnknownRoute(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/proxy/nope", "/proxy/v1/chat/completions", "/favicon.ico"} {
		a := e.do(call{method: http.MethodGet, path: path})
		if a.status != 404 || a.header.Get(headerErrorStatus) != "404" {
			t.Errorf("%s: %d %s", path, a.status, a.body)
			continue
		}
		openAIShape(t, a)
	}
	// A wrong method on a known path is an unknown route too.
	a := e.do(call{method: http.MethodGet, path: "/proxy/openai/v1/chat/completions"})
	if a.status != 404 {
		t.Errorf("GET chat/completions: %d", a.status)
	}
}

// Proxy and admin keys: proxy_key mode and ADMIN_KEY's pass.
func TestProxyKeyMode(t *testing.T) {
	e := newEnv(t, map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": "the-shared-proxy-key"})
	pc := provCases[0]
	if a := e.do(call{path: pc.path, body: pc.body, header: pc.auth("wrong")}); a.status != 401 {
		t.Errorf("wrong proxy key: %d", a.status)
	}
	for _, key := range []string{"the-shared-proxy-key", adminKey} {
		if a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(key)}); a.status != 200 {
			t.Errorf("key %q: %d %s", key, a.status, a.body)
		}
	}
	e.neverSaw("the-shared-proxy-key")
	e.neverSaw(adminKey)
}

// refusedAlone sends c, which must be refused with 400 in the provider's
// shape naming what, before it reaches the upstream.
func refusedAlone(t *testing.T, e *env, kind upstreamfake.Kind, c call, shape func(*testing.T, answer), what string) {
	t.Helper()
	up := e.fake(kind)
	before := up.Count()
	a := e.do(c)
	if a.status != http.StatusBadRequest {
		t.Fatalf("%s: status %d, want 400: %s", c.body, a.status, a.body)
	}
	shape(t, a)
	mustContain(t, "error", string(a.body), what)
	if up.Count() != before {
		t.Errorf("%s: the refused request reached the upstream", c.body)
	}
}

// A background response is answered at once with usage null while the
// upstream goes on generating: the proxy could charge only its estimate.
func TestResponsesBackgroundRefused(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	body := func(v string) string {
		return `{"model":"o3","background":` + v + `,"max_output_tokens":1000,"input":"Prove the Riemann hypothesis."}`
	}
	for _, v := range []string{"true", `"true"`, "1"} {
		refusedAlone(t, e, upstreamfake.OpenAI, call{path: "/proxy/openai/v1/responses", header: bearerH(tk), body: body(v)}, openAIShape, "background")
	}
	if u := e.get(tk); u.PromptCount != 0 {
		t.Errorf("refused requests charged: %d prompts", u.PromptCount)
	}
	for _, v := range []string{"false", "null"} {
		if a := e.do(call{path: "/proxy/openai/v1/responses", header: bearerH(tk), body: body(v)}); a.status != 200 {
			t.Errorf("background %s: status %d: %s", v, a.status, a.body)
		}
	}
}

// n, best_of and candidateCount multiply the output past the clamp (and
// the quota's reservation): only one answer is served per request, as the
// original proxy did.
func TestSeveralAnswersRefused(t *testing.T) {
	e := newEnv(t, map[string]string{"MAX_OUTPUT_TOKENS_OPENAI": "100"})
	tk := e.user(users.Patch{})
	google := func(tk string) map[string]string { return map[string]string{"x-goog-api-key": tk} }
	const chat = `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		kind      upstreamfake.Kind
		path      string
		auth      func(string) map[string]string
		shape     func(*testing.T, answer)
		what      string
		body      func(v string) string
		ok, wrong []string
	}{
		{upstreamfake.OpenAI, "/proxy/openai/v1/chat/completions", bearerH, openAIShape, "n:",
			func(v string) string { return `{"model":"gpt-4o","n":` + v + `,"max_tokens":100,` + chat + `}` },
			[]string{"1", "null", "1.0"}, []string{"128", "2", "0", `"2"`}},
		{upstreamfake.OpenAI, "/proxy/openai/v1/completions", bearerH, openAIShape, "n:",
			func(v string) string { return `{"model":"gpt-3.5-turbo-instruct","n":` + v + `,"prompt":"hi"}` },
			[]string{"1"}, []string{"5"}},
		{upstreamfake.OpenAI, "/proxy/openai/v1/completions", bearerH, openAIShape, "best_of:",
			func(v string) string { return `{"model":"gpt-3.5-turbo-instruct","best_of":` + v + `,"prompt":"hi"}` },
			[]string{"1", "null"}, []string{"20"}},
		{upstreamfake.Mistral, "/proxy/mistral-ai/v1/chat/completions", bearerH, openAIShape, "n:",
			func(v string) string { return `{"model":"mistral-small-latest","n":` + v + `,` + chat + `}` },
			[]string{"1"}, []string{"4"}},
		{upstreamfake.Google, "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent", google, googleShape, "candidateCount:",
			func(v string) string {
				return `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":100,"candidateCount":` + v + `}}`
			},
			[]string{"1", "null"}, []string{"8"}},
		{upstreamfake.Google, "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent", google, googleShape, "candidate_count:",
			func(v string) string {
				return `{"contents":[{"parts":[{"text":"hi"}]}],"generation_config":{"candidate_count":` + v + `}}`
			},
			[]string{"1"}, []string{"2"}},
		// The translated routes apply the same rule.
		{upstreamfake.Google, "/proxy/google-ai/v1/chat/completions", bearerH, openAIShape, "n:",
			func(v string) string { return `{"model":"gemini-2.5-flash","n":` + v + `,` + chat + `}` },
			[]string{"1"}, []string{"3"}},
	}
	for _, tc := range cases {
		for _, v := range tc.wrong {
			refusedAlone(t, e, tc.kind, call{path: tc.path, header: tc.auth(tk), body: tc.body(v)}, tc.shape, tc.what)
		}
	}
	if u := e.get(tk); u.PromptCount != 0 {
		t.Errorf("refused requests charged: %d prompts", u.PromptCount)
	}
	for _, tc := range cases {
		for _, v := range tc.ok {
			if a := e.do(call{path: tc.path, header: tc.auth(tk), body: tc.body(v)}); a.status != 200 {
				t.Errorf("%s: status %d: %s", tc.body(v), a.status, a.body)
			}
		}
	}
}

// A Gemini stream of several candidates would be charged at the first
// chunk with a finishReason, and the rest of the stream, with the final
// usage, relayed uncharged: such a request never reaches the upstream.
func TestGoogleStreamOfSeveralCandidatesRefused(t *testing.T) {
	var called atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called.Store(true)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"candidates":[{"index":0,"content":{"parts":[{"text":"short"}],"role":"model"},"finishReason":"STOP"},{"index":1,"content":{"parts":[{"text":"long "}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15}}`+"\r\n\r\n")
		io.WriteString(w, `data: {"candidates":[{"index":1,"content":{"parts":[{"text":"`+strings.Repeat("word ", 400)+`"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":405,"totalTokenCount":415}}`+"\r\n\r\n")
	}))
	defer up.Close()
	e := newEnv(t, map[string]string{"GOOGLE_AI_BASE_URL": up.URL})
	tk := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", header: map[string]string{"x-goog-api-key": tk},
		body: `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"candidateCount":2}}`})
	if a.status != http.StatusBadRequest || called.Load() {
		t.Fatalf("status %d (upstream called: %v): %s", a.status, called.Load(), a.body)
	}
	googleShape(t, a)
	mustContain(t, "error", string(a.body), "candidateCount")
	if u := e.get(tk); u.PromptCount != 0 {
		t.Errorf("refused request charged: %d prompts", u.PromptCount)
	}
}
