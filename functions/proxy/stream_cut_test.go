package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// A Gemini stream whose finishing chunk does not report its output as
// final (an answer that ended in its thinking: no candidatesTokenCount)
// is charged only when the body ends: that chunk is held until then, so
// that a client that has read it finds its usage recorded.
func TestGoogleFinishingChunkWithoutCandidatesChargedFirst(t *testing.T) {
	hold := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: "+`{"candidates":[{"content":{"parts":[{"text":"Hmm"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"totalTokenCount":10}}`+"\r\n\r\n")
		io.WriteString(w, "data: "+`{"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"promptTokenCount":10,"thoughtsTokenCount":990,"totalTokenCount":1000}}`+"\r\n\r\n")
		w.(http.Flusher).Flush()
		select {
		case <-hold: // the body ends
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	e := newEnv(t, map[string]string{"GOOGLE_AI_BASE_URL": up.URL})
	tk := e.user(users.Patch{})
	// The client notes what the store holds as soon as it has the
	// finishing chunk; the upstream ends its body a moment later.
	seen := make(chan *users.User, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
			strings.NewReader(`{"contents":[{"parts":[{"text":"think"}]}]}`))
		req.Header.Set("x-goog-api-key", tk)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			seen <- nil
			return
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if strings.Contains(line, "MAX_TOKENS") {
				seen <- e.get(tk)
				return
			}
			if err != nil {
				seen <- nil
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	close(hold)
	select {
	case u := <-seen:
		if u == nil {
			t.Fatal("the stream ended without its finishing chunk")
		}
		if u.PromptCount != 1 || u.TokenCounts["gemini-flash"] != 1000 {
			t.Errorf("the client has the finishing chunk, the store has %d prompts, %v; want 1 prompt and the 1000 tokens reported", u.PromptCount, u.TokenCounts)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the finishing chunk never reached the client")
	}
}
