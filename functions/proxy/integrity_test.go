package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// Google's HTTP mapping lets a body member override the path's: a body
// naming another model than the path (however its key is spelt) is
// refused before the upstream is called, or it would run that model
// counted in the path's family. The path's own model may be repeated.
func TestGoogleBodyModelMustBeThePaths(t *testing.T) {
	e := newEnv(t, nil)
	up := e.fake(upstreamfake.Google)
	gc := provCases[2]
	tk := e.user(users.Patch{})
	rest := strings.TrimPrefix(gc.body, "{")
	for _, member := range []string{`"model":"models/gemini-2.5-pro",`, `"model":"gemini-2.5-pro",`, `"mod\u0065l":"models/gemini-2.5-pro",`,
		`"model":"models/gemini-2.5-flash","model":"models/gemini-2.5-pro",`} {
		for _, path := range []string{gc.path, strings.Replace(gc.path, ":generateContent", ":streamGenerateContent", 1)} {
			a := e.do(call{path: path, body: "{" + member + rest, header: gc.auth(tk)})
			if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "gemini-2.5-pro") {
				t.Errorf("%s with %s: %d %s", path, member, a.status, a.body)
				continue
			}
			googleShape(t, a)
		}
	}
	if up.Count() != 0 {
		t.Fatalf("the upstream was called %d times", up.Count())
	}
	for _, member := range []string{`"model":"models/gemini-2.5-flash",`, `"model":"gemini-2.5-flash",`, `"model":null,`} {
		if a := e.do(call{path: gc.path, body: "{" + member + rest, header: gc.auth(tk)}); a.status != http.StatusOK {
			t.Errorf("%s: %d %s", member, a.status, a.body)
		}
	}
	if got := e.get(tk).TokenCounts; len(got) != 1 || got[gc.family] == 0 {
		t.Errorf("charged %v, want %s only", got, gc.family)
	}
}

// A body naming the model more than once is refused on a route whose path
// names it, whichever occurrence matches the path: the proxy reads the
// last, and a parser that keeps the first would run another model than
// the path's, counted in the path's family.
func TestGoogleBodyModelNamedTwiceRefused(t *testing.T) {
	e := newEnv(t, nil)
	up := e.fake(upstreamfake.Google)
	gc := provCases[2]
	tk := e.user(users.Patch{})
	rest := strings.TrimPrefix(gc.body, "{")
	for _, member := range []string{`"model":"models/gemini-2.5-pro","model":"models/gemini-2.5-flash",`,
		`"model":"gemini-2.5-pro","model":"gemini-2.5-flash",`, `"model":"gemini-2.5-pro","mod\u0065l":"gemini-2.5-flash",`} {
		a := e.do(call{path: gc.path, body: "{" + member + rest, header: gc.auth(tk)})
		if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "more than once") {
			t.Errorf("%s: %d %s", member, a.status, a.body)
			continue
		}
		googleShape(t, a)
	}
	if up.Count() != 0 {
		t.Fatalf("the upstream was called %d times", up.Count())
	}
	if u := e.get(tk); len(u.TokenCounts) != 0 {
		t.Errorf("charged %v", u.TokenCounts)
	}
}

// On every API a body naming its model twice, differently, is refused:
// the family counted is the last one's, and an upstream's parser that
// keeps the first would run a model of another family.
func TestBodyModelNamedTwiceRefused(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	for _, pc := range []provCase{provCases[0], provCases[1], provCases[3]} {
		body := strings.Replace(pc.body, `"model":`, `"model":"o1-pro","m\u006fdel":`, 1)
		before := e.fake(pc.kind).Count()
		a := e.do(call{path: pc.path, body: body, header: pc.auth(tk)})
		if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "more than once") {
			t.Errorf("%s: %d %s", pc.kind, a.status, a.body)
		}
		if n := e.fake(pc.kind).Count() - before; n != 0 {
			t.Errorf("%s: the upstream was called %d times", pc.kind, n)
		}
		// The same model named twice is what it names.
		same := strings.Replace(pc.body, `"model":`, `"model":`+gjson.Get(pc.body, "model").Raw+`,"model":`, 1)
		if a := e.do(call{path: pc.path, body: same, header: pc.auth(tk)}); a.status != http.StatusOK {
			t.Errorf("%s, the model named twice alike: %d %s", pc.kind, a.status, a.body)
		}
	}
	if u := e.get(tk); u.PromptCount != 3 {
		t.Errorf("%d prompts charged, want the 3 named alike", u.PromptCount)
	}
}

// The body the upstream gets is the JSON the proxy read and clamped, and
// the upstream is told so whatever Content-Type the client sent: Google
// parses a body by it (protobuf, JSPB), and would read other members
// than the ones checked.
func TestForwardedBodyIsDeclaredJSON(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	for _, pc := range provCases {
		for _, types := range [][]string{{"application/x-protobuf"}, {"application/json+protobuf"}, {"text/plain"},
			{"application/json", "application/x-protobuf"}} {
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+pc.path, strings.NewReader(pc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header["Content-Type"] = types
			req.Header.Set("Authorization", "Bearer "+tk)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s with %v: %d", pc.path, types, resp.StatusCode)
			}
			if got := e.fake(pc.kind).Last(t).Header["Content-Type"]; len(got) != 1 || got[0] != "application/json" {
				t.Errorf("%s: the client sent Content-Type %q, the upstream got %q", pc.path, types, got)
			}
		}
	}
}

// An answer format that hides usage (Google's alt=proto, alt=media) is
// refused in Google's shape before the upstream is called; parameters the
// route does not need (fields, prettyPrint) never reach it.
func TestQueryHidingUsageRefused(t *testing.T) {
	e := newEnv(t, nil)
	up := e.fake(upstreamfake.Google)
	gc := provCases[2]
	tk := e.user(users.Patch{})
	for _, q := range []string{"alt=proto", "alt=media", "$alt=proto", "alt=sse&alt=proto"} {
		a := e.do(call{path: gc.path + "?" + q, body: gc.body, header: gc.auth(tk)})
		if a.status != 400 {
			t.Fatalf("?%s: %d %s", q, a.status, a.body)
		}
		googleShape(t, a)
	}
	if up.Count() != 0 {
		t.Fatalf("the upstream was called %d times", up.Count())
	}
	a := e.do(call{path: gc.path + "?fields=candidates&prettyPrint=false&$alt=json", body: gc.body, header: gc.auth(tk)})
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if q := up.Last(t).RawQuery; q != "alt=json" {
		t.Errorf("upstream query %q, want alt=json only", q)
	}
	if u := e.get(tk); u.TokenCounts["gemini-flash"] != 18 {
		t.Errorf("charged %d, want the 18 tokens reported", u.TokenCounts["gemini-flash"])
	}
}

// alt given twice (alt=sse&alt=json, or with its alias $alt) is refused
// before the upstream is called: the proxy would frame the answer by one
// value while the upstream answers by the other.
func TestRepeatedAltRefused(t *testing.T) {
	e := newEnv(t, nil)
	up := e.fake(upstreamfake.Google)
	gc := provCases[2]
	tk := e.user(users.Patch{})
	for _, q := range []string{"alt=sse&alt=json", "alt=sse&$alt=json", "$alt=json&alt=sse", "alt=sse&alt=sse"} {
		a := e.do(call{path: strings.Replace(gc.path, ":generateContent", ":streamGenerateContent", 1) + "?" + q, body: gc.body, header: gc.auth(tk)})
		if a.status != 400 || !strings.Contains(string(a.body), "only once") {
			t.Fatalf("?%s: %d %s", q, a.status, a.body)
		}
		googleShape(t, a)
	}
	if up.Count() != 0 {
		t.Fatalf("the upstream was called %d times", up.Count())
	}
}

// A Google stream that comes as a JSON array although SSE was asked for
// is still read element by element, and its reported usage charged.
func TestGoogleStreamNotSSEIsReadAsArray(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		long := strings.Repeat("word ", 4000)
		io.WriteString(w, `[{"candidates":[{"content":{"parts":[{"text":"`+long+`"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":4000,"totalTokenCount":4010}}]`)
	}))
	defer up.Close()
	e := newEnv(t, map[string]string{"GOOGLE_AI_BASE_URL": up.URL})
	tk := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", header: map[string]string{"x-goog-api-key": tk},
		body: `{"contents":[{"parts":[{"text":"hi"}]}]}`})
	if a.status != 200 || !strings.Contains(string(a.body), "word word") {
		t.Fatalf("%d %.200s", a.status, a.body)
	}
	if got := e.get(tk).TokenCounts["gemini-flash"]; got != 4010 {
		t.Errorf("relayed %d bytes, charged %d tokens; the upstream reported 4010", len(a.body), got)
	}
}

// A Google array stream whose last element is over the copy kept for
// reading usage (an inline image) is charged that element's usage; when
// it has none, the earlier element's usage is not taken as final: the
// stream is charged as one cut short, its output at the limit.
func TestGoogleArrayLargeElementUsage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		usage string
		want  int64
	}{
		{"its own usage", `,"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2001,"totalTokenCount":2011}`, 2011},
		{"no usage", ``, 10 + 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `[{"candidates":[{"content":{"parts":[{"text":"Here"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1,"totalTokenCount":11}}`)
				img := strings.Repeat("QUFB", 5<<20/4) // 5 MiB of base64
				io.WriteString(w, `,{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":"`+img+`"}}],"role":"model"},"finishReason":"STOP"}]`+tc.usage+`}]`)
			}))
			defer up.Close()
			e := newEnv(t, map[string]string{"GOOGLE_AI_BASE_URL": up.URL, "ALLOWED_MODEL_FAMILIES": "gemini-image"})
			tk := e.user(users.Patch{})
			a := e.do(call{path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash-image:streamGenerateContent", header: map[string]string{"x-goog-api-key": tk},
				body: `{"contents":[{"parts":[{"text":"draw a fox"}]}],"generationConfig":{"maxOutputTokens":1000}}`})
			if a.status != 200 || len(a.body) < 5<<20 {
				t.Fatalf("%d (%d bytes)", a.status, len(a.body))
			}
			if got := e.get(tk).TokenCounts["gemini-image"]; got != tc.want {
				t.Errorf("charged %d tokens, want %d", got, tc.want)
			}
		})
	}
}

// Unreadable answers, as Google gives them a client asking for protobuf:
// proto for whole answers and arrays, events (SSE whose data is not JSON)
// for ?alt=sse streams, followed by a usage chunk when the request's
// X-Goog-Api-Client is "then-usage". The server is closed with the test.
const (
	unreadableProto = "\x0a\x2a\x0a\x28\x0a\x26\x12\x24"
	unreadableEvent = "data: CioKKAomEiRIZWxsbyB0aGVyZSwgYSBsb25nIGFuc3dlci4=\r\n\r\n"
	unreadableUsage = `data: {"candidates":[{"content":{"parts":[{"text":"."}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15}}` + "\r\n\r\n"
)

func unreadableUpstream(t *testing.T) (up *httptest.Server, proto, events string) {
	proto = unreadableProto + strings.Repeat("Hello there, a long answer. ", 40)
	events = strings.Repeat(unreadableEvent, 20)
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Query().Get("alt") == "sse" {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, events)
			if r.Header.Get("X-Goog-Api-Client") == "then-usage" {
				_, _ = io.WriteString(w, unreadableUsage)
			}
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = io.WriteString(w, proto)
	}))
	t.Cleanup(up.Close)
	return up, proto, events
}

// An answer in a format the proxy cannot read (Google answers protobuf
// to a client that asks for it in a header) is charged its output at the
// request's limit, whole or streamed, on every route: before, only the
// prompt's estimate was charged. So is a stream of server-sent events
// whose data is not JSON, unless a later event reports usage.
func TestUnreadableAnswerChargedAtTheLimit(t *testing.T) {
	up, proto, events := unreadableUpstream(t)
	e := newEnv(t, map[string]string{"GOOGLE_AI_BASE_URL": up.URL, "OPENAI_BASE_URL": up.URL})
	tk := e.user(users.Patch{})
	gc, oc := provCases[2], provCases[0]
	for _, tc := range []struct {
		name, family, answer string
		c                    call
	}{
		{"google whole", gc.family, proto, call{path: gc.path, body: gc.body}},
		{"google stream", gc.family, proto, call{path: strings.Replace(gc.path, ":generateContent", ":streamGenerateContent", 1), body: gc.body}},
		{"google stream of events", gc.family, events, call{path: gc.stream, body: gc.body}},
		{"openai stream", oc.family, proto, call{path: oc.path, body: oc.stream}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.header = map[string]string{"Authorization": "Bearer " + tk, "Accept": "application/x-protobuf"}
			before := e.get(tk).TokenCounts[tc.family]
			a := e.do(tc.c)
			if a.status != 200 || string(a.body) != tc.answer {
				t.Fatalf("%d %q", a.status, a.body)
			}
			// Every case asks for 100 output tokens; its prompt is a few.
			if got := e.get(tk).TokenCounts[tc.family] - before; got < 100 {
				t.Errorf("charged %d tokens, want the prompt's estimate + the 100 output tokens asked", got)
			}
		})
	}
	t.Run("usage reported after", func(t *testing.T) {
		before := e.get(tk).TokenCounts[gc.family]
		a := e.do(call{path: gc.stream, body: gc.body, header: map[string]string{"Authorization": "Bearer " + tk, "X-Goog-Api-Client": "then-usage"}})
		if a.status != 200 || !strings.HasPrefix(string(a.body), events) {
			t.Fatalf("%d %q", a.status, a.body)
		}
		if got := e.get(tk).TokenCounts[gc.family] - before; got != 15 {
			t.Errorf("charged %d tokens, want the 15 reported", got)
		}
	})
}

// A translated route whose upstream answered 2xx with something the
// translation cannot read (not the native API's JSON) answers the client
// 502, and the work the upstream did is charged at the request's output
// limit, as an answer that cannot be read is; before, nothing was charged.
func TestUntranslatableAnswerChargedAtTheLimit(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `["not", "a message"]`)
	}))
	defer up.Close()
	e := newEnv(t, map[string]string{"ANTHROPIC_BASE_URL": up.URL, "GOOGLE_AI_BASE_URL": up.URL})
	tk := e.user(users.Patch{})
	for _, tc := range []struct{ path, family string }{
		{"/proxy/anthropic/v1/chat/completions", "claude"},
		{"/proxy/google-ai/v1/chat/completions", "gemini-flash"},
	} {
		a := e.do(call{path: tc.path, header: bearerH(tk), body: `{"model":"` + map[string]string{"claude": "claude-sonnet-4-5", "gemini-flash": "gemini-2.5-flash"}[tc.family] +
			`","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`})
		if a.status != http.StatusBadGateway {
			t.Fatalf("%s: %d %s", tc.path, a.status, a.body)
		}
		if got := e.get(tk).TokenCounts[tc.family]; got < 100 || got > 110 {
			t.Errorf("%s: charged %d tokens, want the 100 output tokens asked and the prompt's few", tc.path, got)
		}
	}
}

// Output limits given as strings, fractions or out-of-range numbers are
// refused in the provider's shape; none reaches the upstream unclamped.
func TestOutputLimitTypesRefused(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	special := e.user(users.Patch{Type: users.Opt[users.Type]{Set: true, Value: users.Special}})
	for _, tc := range []struct {
		pc   provCase
		body string
	}{
		{provCases[0], `{"model":"gpt-4o","max_tokens":"999999","messages":[{"role":"user","content":"hi"}]}`},
		{provCases[0], `{"model":"gpt-4o","max_completion_tokens":99999.5,"messages":[]}`},
		{provCases[1], `{"model":"claude-sonnet-4-5","max_tokens":0.5,"messages":[]}`},
		{provCases[1], `{"model":"claude-sonnet-4-5","max_tokens":10,"max_tokens":"lots","messages":[]}`},
		{provCases[2], `{"contents":[],"generationConfig":{"maxOutputTokens":-5}}`},
		{provCases[3], `{"model":"mistral-small-latest","max_tokens":99999999999999,"messages":[]}`},
	} {
		for _, who := range []string{tk, special} {
			a := e.do(call{path: tc.pc.path, body: tc.body, header: tc.pc.auth(who)})
			if a.status != 400 || !strings.Contains(string(a.body), "whole number") {
				t.Fatalf("%s: %d %s", tc.body, a.status, a.body)
			}
			tc.pc.shape(t, a)
		}
	}
	for k, f := range e.fakes {
		if f.Count() != 0 {
			t.Errorf("%s upstream called %d times", k, f.Count())
		}
	}
}

// When the proxy, not the client, asked OpenAI for streamed usage, the
// client sees the chunks it would have seen directly: no usage chunk and
// no "usage":null in every chunk. A client that asked sees both.
func TestStreamUsageNullOnlyWhenAsked(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	pc := provCases[0]
	a := e.do(call{path: pc.path, body: pc.stream, header: pc.auth(tk)})
	if a.status != 200 || strings.Contains(string(a.body), `"usage"`) {
		t.Fatalf("%d: the client sees usage it did not ask for:\n%s", a.status, a.body)
	}
	mustContain(t, "stream", string(a.body), "data: [DONE]")
	e.logs.waitLines(t, `"httpRequest"`, 1)
	if got := e.get(tk).TokenCounts["gpt4o"]; got != 18 {
		t.Errorf("charged %d, want 18", got)
	}
	asked := strings.Replace(pc.stream, `"stream":true`, `"stream":true,"stream_options":{"include_usage":true}`, 1)
	a = e.do(call{path: pc.path, body: asked, header: pc.auth(tk)})
	mustContain(t, "stream", string(a.body), `"usage":null`)
	mustContain(t, "stream", string(a.body), `"prompt_tokens":11`)
}

// Quota and limit refusals tell the SDKs not to retry; the official
// OpenAI client, with its default retries, sends a quota refusal once.
func TestRefusalsSayDoNotRetry(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{"gpt4o": 10}), TokenCounts: setOpt(map[string]int64{"gpt4o": 10})})
	pc := provCases[0]
	a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	if a.status != 429 || a.header.Get("X-Should-Retry") != "false" || a.header.Get("Retry-After") != "" {
		t.Fatalf("quota refusal: %d, x-should-retry %q, retry-after %q", a.status, a.header.Get("X-Should-Retry"), a.header.Get("Retry-After"))
	}
	client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/openai/v1"), option.WithAPIKey(tk))
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err == nil {
		t.Fatal("the quota refusal reached the SDK as a success")
	}
	e.logs.waitLines(t, `"httpRequest"`, 2)
	if n := strings.Count(e.logs.String(), `"httpRequest"`); n != 2 {
		t.Errorf("%d requests logged: the SDK retried a quota refusal", n)
	}

	r := newEnv(t, map[string]string{"TEXT_MODEL_RATE_LIMIT": "1"})
	tk = r.user(users.Patch{})
	r.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	a = r.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	if a.status != 429 || a.header.Get("X-Should-Retry") != "false" || a.header.Get("Retry-After") == "" {
		t.Fatalf("rate limit: %d, x-should-retry %q, retry-after %q", a.status, a.header.Get("X-Should-Retry"), a.header.Get("Retry-After"))
	}
}

// A proxy credential in the path is never sent upstream, and "." or ".."
// segments are answered 404 before any routing.
func TestCredentialsAndDotSegmentsInPaths(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	gc := provCases[2]
	for _, path := range []string{
		"/proxy/google-ai/v1beta/models/" + tk + ":generateContent",
		"/proxy/google-ai/v1beta/models/x" + tk + ":generateContent",
		"/proxy/google-ai/v1beta/models/" + adminKey + ":generateContent",
		"/proxy/openai/v1/models/" + tk,
	} {
		method := "POST"
		if strings.HasPrefix(path, "/proxy/openai") {
			method = "GET"
		}
		a := e.do(call{method: method, path: path, body: map[bool]string{true: gc.body}[method == "POST"], header: gc.auth(tk)})
		if a.status != 404 {
			t.Errorf("%s: %d %s", path, a.status, a.body)
		}
		if strings.Contains(string(a.body), tk) {
			t.Errorf("%s: the answer shows the token: %s", path, a.body)
		}
	}
	for _, path := range []string{
		"/proxy/openai/v1/../v1/chat/completions",
		"/proxy/openai/v1/./chat/completions",
		"/proxy/google-ai/v1beta/models/../models/gemini-2.5-flash:generateContent",
		"/proxy/openai/v1/chat/completions/..",
	} {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(provCases[0].body))
		req.URL.Opaque = path // sent as is, not cleaned by the client
		req.Header.Set("Authorization", "Bearer "+tk)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	e.neverSaw(tk)
	e.neverSaw(adminKey)
	for k, f := range e.fakes {
		if f.Count() != 0 {
			t.Errorf("%s upstream called %d times", k, f.Count())
		}
	}
	e.logs.waitLines(t, `"httpRequest"`, 8)
	if logs := e.logs.String(); strings.Contains(logs, tk) || strings.Contains(logs, adminKey) {
		t.Error("a log line shows a whole credential")
	}
}

// A key the redaction of paths cannot tell from text (shorter than 16
// characters, or holding punctuation) is still never logged whole when
// it is in a path: PROXY_KEY on a proxied route, on an unknown route and
// with a wrong credential, and a user's own short token.
func TestKeysInPathsNeverLoggedWhole(t *testing.T) {
	for _, key := range []string{"correct.horse.battery.staple", "Tr0ub4dor&3xyz", "shortkey2024"} {
		cfg, err := config.FromMap(map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": key, "OPENAI_KEY": openAIKey})
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		h := New(Deps{Config: cfg, Store: memory.New(), Log: logging.New(&logs, "info"), Now: time.Now})
		esc := url.PathEscape(key)
		for _, c := range []struct{ path, auth string }{
			{"/openai/v1/models/" + esc, key},
			{"/no/such/route/" + esc, key},
			{"/openai/v1/models/" + esc, "wrong-key"},
		} {
			r := httptest.NewRequest(http.MethodGet, c.path, nil)
			r.Header.Set("Authorization", "Bearer "+c.auth)
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
		if n := strings.Count(logs.String(), `"httpRequest"`); n != 3 {
			t.Fatalf("%d request lines, want 3: %s", n, logs.String())
		}
		if strings.Contains(logs.String(), key) || strings.Contains(logs.String(), esc) {
			t.Errorf("PROXY_KEY %q in a path is logged whole: %s", key, logs.String())
		}
		if !strings.Contains(logs.String(), logging.TokenTail(key)) {
			t.Errorf("the path is not logged with the key's tail: %s", logs.String())
		}
	}
	e := newEnv(t, nil)
	tk := "my-tok-42"
	if _, _, err := (&users.Service{Store: e.d.Store, Now: e.d.Now}).Upsert(context.Background(), tk, users.Patch{}); err != nil {
		t.Fatal(err)
	}
	if a := e.do(call{method: "GET", path: "/proxy/openai/v1/models/x" + tk, header: provCases[0].auth(tk)}); a.status != 404 {
		t.Fatalf("token in the path: %d %s", a.status, a.body)
	}
	if a := e.do(call{method: "GET", path: "/proxy/no/such/" + tk, header: provCases[0].auth(tk)}); a.status != 404 {
		t.Fatalf("token on an unknown route: %d %s", a.status, a.body)
	}
	e.logs.waitLines(t, `"httpRequest"`, 2)
	if strings.Contains(e.logs.String(), tk) {
		t.Errorf("a user's 9-character token in the path is logged whole: %s", e.logs.String())
	}
}

// Characters whose lower case has another length (the Kelvin sign, 3
// bytes to 1; U+023A, 2 to 3; invalid bytes) before a key do not shift
// where it is cut: the key goes whole, and nothing panics.
func TestScrubKeepsOffsetsPastUnicodeCase(t *testing.T) {
	const key = "sk-operator-openai-key-0001"
	h := &handler{lowerSecrets: []string{string(asciiLower([]byte(key)))}}
	for _, prefix := range []string{strings.Repeat("\u212a", 6), strings.Repeat("\u023a", 6), "\xff\xfe"} {
		for _, k := range []string{key, strings.ToUpper(key)} {
			body := `{"error":{"message":"The model ` + prefix + ` does not exist (key ` + k + `)"}}`
			var out []byte
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Errorf("scrub panicked: %v", v)
					}
				}()
				out = h.scrub([]byte(body))
			}()
			if want := `{"error":{"message":"The model ` + prefix + ` does not exist (key ` + redacted + `)"}}`; string(out) != want {
				t.Errorf("scrubbed %q\nwant      %q", out, want)
			}
		}
	}
}

// Upstream text quoting an operator key is relayed with the key replaced
// in any casing and in \u-escaped form; headers echoing it are dropped.
func TestScrubCatchesCasingsAndEscapes(t *testing.T) {
	upper := strings.ToUpper(openAIKey)
	escaped := strings.ReplaceAll(openAIKey, "-", `\u002d`)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"message":"bad key `+upper+` or `+escaped+`","type":"invalid_request_error"}}`)
	}))
	defer upstream.Close()
	e := newEnv(t, map[string]string{"OPENAI_BASE_URL": upstream.URL})
	tk := e.user(users.Patch{})
	a := e.do(call{path: provCases[0].path, body: provCases[0].body, header: bearerH(tk)})
	if a.status != 400 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatal(err)
	}
	msg, _ := dig(m, "error", "message").(string)
	if strings.Contains(strings.ToLower(msg), strings.ToLower(openAIKey)) || strings.Count(msg, "[redacted]") != 2 {
		t.Errorf("relayed message %q", msg)
	}
	for name, v := range a.header {
		if strings.Contains(strings.ToLower(strings.Join(v, ",")), strings.ToLower(openAIKey)) {
			t.Errorf("header %s echoes the operator key", name)
		}
	}
}

// A client that leaves after the answer's last text but before its usage
// is charged what the upstream reports: the upstream is read on (bounded)
// rather than cancelled.
func TestLeavingBeforeUsageChargesTheReport(t *testing.T) {
	for _, pc := range provCases[:2] {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, nil)
			tk := e.user(users.Patch{})
			up := e.fake(pc.kind)
			hold := make(chan struct{})
			up.Set(upstreamfake.Behavior{HoldBeforeUsage: hold})
			finalMark := `"finish_reason":"stop"`
			if pc.kind == upstreamfake.Anthropic {
				finalMark = "content_block_stop"
			}
			e.streamUntil(t, pc.streamCall(tk), finalMark, "its last text")()
			time.Sleep(200 * time.Millisecond) // the proxy notices the client is gone
			close(hold)
			e.logs.waitLines(t, `"httpRequest"`, 1)
			if got := e.get(tk).TokenCounts[pc.family]; got != 18 {
				t.Errorf("charged %d, want the 18 tokens the upstream reported", got)
			}
			if up.Cancelled() != 0 {
				t.Error("the upstream was cancelled although only its usage was left")
			}
		})
	}
}

// A stream past its last text when the instance shuts down is not waited
// on for its usage (up to 30 s, past the drain's 1 s of grace, with the
// store closed after): it ends at the cut and is charged as a cut stream.
func TestShutdownCutAfterTheLastTextCharges(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	pc := provCases[0]
	hold := make(chan struct{})
	defer close(hold)
	e.fake(pc.kind).Set(upstreamfake.Behavior{HoldBeforeUsage: hold})
	c := pc.streamCall(tk)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+c.path, strings.NewReader(c.body))
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before its last text: %v", err)
		}
		if strings.Contains(line, `"finish_reason":"stop"`) {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	e.drain.Close(ctx) // the window ends at once: the stream is cut
	if n := e.drain.InFlight(); n != 0 {
		t.Fatalf("%d requests still in flight after the drain's grace", n)
	}
	if got := e.get(tk).TokenCounts[pc.family]; got <= 0 {
		t.Errorf("charged %d for a stream cut at shutdown, want its estimate", got)
	}
}

// A client leaving mid-stream from a reasoning model is charged at least
// the requested output limit: the thinking is billed though never relayed.
func TestCutShortReasoningCountsHiddenOutput(t *testing.T) {
	for _, tc := range []struct{ name, body, family string }{
		{"reasoning family", `{"model":"o3","max_completion_tokens":100,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`, "o3"},
		{"thinking asked", `{"model":"gpt-4o","max_tokens":100,"reasoning_effort":"high","stream":true,"messages":[{"role":"user","content":"Say hello."}]}`, "gpt4o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "gpt4o,o3"})
			tk := e.user(users.Patch{})
			up := e.fake(upstreamfake.OpenAI)
			hold := make(chan struct{})
			defer close(hold)
			up.Set(upstreamfake.Behavior{HoldAfterFirst: hold})
			e.streamUntil(t, call{path: provCases[0].path, body: tc.body, header: bearerH(tk)}, "Hello from", "its first chunk")()
			if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 }) {
				t.Fatal("the upstream was not cancelled")
			}
			e.logs.waitLines(t, `"httpRequest"`, 1)
			rq, _ := providers.OpenAIChat.Parse([]byte(tc.body), 0, false, false)
			if got, want := e.get(tk).TokenCounts[tc.family], rq.PromptTokens+100; got != want {
				t.Errorf("charged %d, want prompt estimate + the 100 output tokens asked (%d)", got, want)
			}
		})
	}
}

// X-Forwarded-Host and -Proto shape the URLs GET / gives only behind a
// trusted proxy: facing clients directly, a client cannot make the page
// point others' SDKs elsewhere.
func TestForwardedHostTrustedOnlyBehindAProxy(t *testing.T) {
	fwd := map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
	for _, tc := range []struct {
		trusted, want string
	}{{"0", "http://tollgate.example/proxy/openai/v1"}, {"1", "https://evil.example/proxy/openai/v1"}} {
		e := newEnv(t, map[string]string{"TRUSTED_PROXIES": tc.trusted})
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/proxy/", nil)
		req.Host = "tollgate.example"
		for k, v := range fwd {
			req.Header.Set(k, v)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mustContain(t, "TRUSTED_PROXIES="+tc.trusted, string(b), `"baseUrl":"`+tc.want+`"`)
	}
}

// The operator's OpenAI organisation id in an upstream error's text, and
// the account's own rate limits in its headers, never reach the user.
func TestOperatorAccountDetailsNotRelayed(t *testing.T) {
	const org, proj = "org-OperatorSecretOrg123", "proj_OperatorProject456"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Openai-Organization", org)
		h.Set("X-Ratelimit-Limit-Requests", "10000")
		h.Set("X-Ratelimit-Limit-Tokens", "30000000")
		h.Set("X-Ratelimit-Remaining-Tokens", "29999000")
		h.Set("Anthropic-Ratelimit-Tokens-Limit", "400000")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"message":"Rate limit reached for gpt-4o in organization ` + org + ` (project ` + proj + `)` +
			` on tokens per min (TPM): Limit 30000000, Used 29999000, Requested 2000.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`))
	}))
	defer up.Close()
	e := newEnv(t, map[string]string{"OPENAI_BASE_URL": up.URL})
	tk := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: provCases[0].body, header: bearerH(tk)})
	if a.status != 429 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if a.header.Get("Openai-Organization") != "" {
		t.Fatalf("header dropped as designed, yet: %v", a.header)
	}
	if strings.Contains(string(a.body), proj) {
		t.Errorf("the operator's project id is relayed in the error body: %s", a.body)
	}
	if strings.Contains(string(a.body), org) {
		t.Errorf("the operator's organisation id is relayed in the error body: %s", a.body)
	}
	for _, k := range []string{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "Anthropic-Ratelimit-Tokens-Limit"} {
		if v := a.header.Get(k); v != "" {
			t.Errorf("the operator's account limits are relayed: %s: %s", k, v)
		}
	}
}

// Anthropic's rate-limit errors name the operator's organisation (the id
// its anthropic-organization-id header carries, which is dropped), and
// any token holder can provoke one: the id is replaced in what is
// relayed, in both wordings Anthropic has used, as an error and as a
// completion (ERROR_FORMAT=completion).
func TestAnthropicOrganizationNotRelayed(t *testing.T) {
	const org = "7f54fbff-3504-477a-b4a2-08359988239d"
	for _, msg := range []string{
		"This request would exceed the rate limit for your organization (" + org + ") of 40,000 input tokens per minute.",
		"This request would exceed your organization's rate limit of 30,000 input tokens per minute (org: " + org + ", model: claude-sonnet-4-5).",
	} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"`+msg+`"}}`)
		}))
		for _, format := range []string{"", "completion"} {
			e := newEnv(t, map[string]string{"ANTHROPIC_BASE_URL": up.URL, "ERROR_FORMAT": format})
			tk := e.user(users.Patch{})
			ac := provCases[1]
			a := e.do(call{path: ac.path, body: ac.body, header: ac.auth(tk)})
			if !strings.Contains(string(a.body), "rate limit") {
				t.Fatalf("%q: %d %s", format, a.status, a.body)
			}
			if strings.Contains(strings.ToLower(string(a.body)), org) {
				t.Errorf("ERROR_FORMAT=%q: the operator's organisation is relayed: %s", format, a.body)
			}
		}
		up.Close()
	}
}

// Google reads generationConfig's members by either of their names: a
// stream that asks for thinking as thinking_config and is cut short is
// charged its output limit too.
func TestCutShortGoogleThinkingInEitherSpelling(t *testing.T) {
	pc := provCases[2]
	for _, gen := range []string{`"generationConfig":{"maxOutputTokens":100,"thinking_config":{"thinking_budget":1024}}`,
		`"generation_config":{"max_output_tokens":100,"thinkingConfig":{"thinkingBudget":1024}}`} {
		t.Run(gen, func(t *testing.T) {
			e := newEnv(t, nil)
			tk := e.user(users.Patch{})
			up := e.fake(pc.kind)
			hold := make(chan struct{})
			defer close(hold)
			up.Set(upstreamfake.Behavior{HoldAfterFirst: hold})
			body := `{"contents":[{"role":"user","parts":[{"text":"Say hello."}]}],` + gen + `}`
			e.streamUntil(t, call{path: pc.stream, body: body, header: pc.auth(tk)}, "Hello from", "its first chunk")()
			if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 }) {
				t.Fatal("the upstream was not cancelled")
			}
			e.logs.waitLines(t, `"httpRequest"`, 1)
			// The input Google reported, plus the output limit: at least
			// the limit (before, 14: the relayed text's estimate).
			if got := e.get(tk).TokenCounts[pc.family]; got < 100 {
				t.Errorf("charged %d, want the input reported + the 100 output tokens asked", got)
			}
		})
	}
}

// An upstream's answer is relayed from the proxy's origin, which behind
// Firebase Hosting is the admin UI's: an error page of HTML (a gateway's,
// a CDN's) with a script in it, opened in an operator's browser, would
// run as the admin UI and could read its pages. Every relayed answer
// tells the browser not to sniff it and to run it, if it is a page at
// all, in a sandbox of its own origin.
func TestRelayedAnswersCannotRunAsThisOrigin(t *testing.T) {
	page := `<!doctype html><title>Bad gateway</title><script>fetch("/admin/manage/users")</script>`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "chat") {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, page)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o","object":"model"}]}`)
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, map[string]string{"OPENAI_BASE_URL": up.URL})
	tk := e.user(users.Patch{})
	for _, c := range []call{
		{path: "/proxy/openai/v1/chat/completions", header: bearerH(tk), body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`},
		{method: http.MethodGet, path: "/proxy/openai/v1/models", header: bearerH(tk)},
	} {
		a := e.do(c)
		if a.header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(a.header.Get("Content-Security-Policy"), "sandbox;") {
			t.Errorf("%s: %d, X-Content-Type-Options %q, Content-Security-Policy %q", c.path, a.status,
				a.header.Get("X-Content-Type-Options"), a.header.Get("Content-Security-Policy"))
		}
		if strings.Contains(c.path, "chat") && (a.status != http.StatusBadGateway || !strings.Contains(string(a.body), "<script>")) {
			t.Fatalf("the upstream's error page is not what was relayed: %d %s", a.status, a.body)
		}
	}
}
