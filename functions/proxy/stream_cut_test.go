package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

// A native Gemini event over 4 MiB (an inline image) on the
// OpenAI-compatible route is charged as on the native route: its usage
// cannot be read, so unless a later chunk reports usage the stream is
// charged as one cut short, its output at the request's limit, never the
// count of the chunk before it.
func TestTranslatedOversizedNativeEventCharged(t *testing.T) {
	const first = `{"candidates":[{"content":{"parts":[{"text":"Here"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":1,"totalTokenCount":11}}`
	img := strings.Repeat("QUFB", 5<<20/4) // 5 MiB of base64
	image := `{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":"` + img + `"}}],"role":"model"}` +
		`,"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2001,"totalTokenCount":2011}}`
	imageOnly := `{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"image/png","data":"` + img + `"}}],"role":"model"}}]}`
	last := `{"candidates":[{"content":{"parts":[{"text":"."}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2002,"totalTokenCount":2012}}`
	for _, tc := range []struct {
		name   string
		events []string
		want   int64
	}{
		{"the last event", []string{first, image}, 10 + 1000},
		{"usage reported after it", []string{first, imageOnly, last}, 2012},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, ev := range tc.events {
					io.WriteString(w, "data: "+ev+"\r\n\r\n")
				}
			}))
			defer up.Close()
			e := newEnv(t, map[string]string{"GOOGLE_AI_BASE_URL": up.URL, "ALLOWED_MODEL_FAMILIES": "gemini-image"})
			tk := e.user(users.Patch{})
			a := e.do(call{path: "/proxy/google-ai/v1/chat/completions", header: bearerH(tk),
				body: `{"model":"gemini-2.5-flash-image","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"draw a fox"}]}`})
			if a.status != 200 {
				t.Fatalf("%d: %s", a.status, a.body)
			}
			e.logs.waitLines(t, `"httpRequest"`, 1)
			if got := e.get(tk).TokenCounts["gemini-image"]; got != tc.want {
				t.Errorf("charged %d tokens, want %d", got, tc.want)
			}
		})
	}
}

// A Gemini stream ends at the chunk whose candidate has a finishReason,
// not at any chunk holding the name: a function call's arguments are
// JSON the caller shapes (a parameter named finishReason), and taking
// them for the end would charge the running count of that chunk and
// relay the rest of the answer free.
func TestGoogleFinishReasonInCallArgumentsIsNotTheEnd(t *testing.T) {
	events := []string{
		`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"note","args":{"finishReason":"none","text":"a"}}}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":15}}`,
		`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"note","args":{"text":"` + strings.Repeat("b", 2000) + `"}}}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":505,"totalTokenCount":515}}`,
		`{"candidates":[{"content":{"parts":[{"text":"."}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":506,"totalTokenCount":516}}`,
	}
	native := `{"contents":[{"parts":[{"text":"take notes"}]}]}`
	for _, tc := range []struct{ name, path, body, ct, sep, open, close string }{
		{"sse", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", native, "text/event-stream", "\r\n\r\ndata: ", "data: ", "\r\n\r\n"},
		{"array", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", native, "application/json", ",\r\n", "[", "]"},
		{"translated", "/v1/chat/completions", `{"model":"gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"take notes"}]}`,
			"text/event-stream", "\r\n\r\ndata: ", "data: ", "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				io.WriteString(w, tc.open+strings.Join(events, tc.sep)+tc.close)
			}))
			defer up.Close()
			e := newEnv(t, map[string]string{"GOOGLE_AI_BASE_URL": up.URL})
			tk := e.user(users.Patch{})
			a := e.do(call{path: "/proxy/google-ai" + tc.path, header: map[string]string{"x-goog-api-key": tk}, body: tc.body})
			if a.status != 200 {
				t.Fatalf("%d: %s", a.status, a.body)
			}
			e.logs.waitLines(t, `"httpRequest"`, 1)
			if got := e.get(tk).TokenCounts["gemini-flash"]; got != 516 {
				t.Errorf("charged %d tokens, want the 516 of the finishing chunk", got)
			}
		})
	}
}
