package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

const benchAnswer = `{"id":"chatcmpl-b","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}`

// staticUpstream answers at once, so the benchmarks measure the proxy.
func staticUpstream(chunks int) http.Handler {
	chunk := "data: " + `{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}` + "\n\n"
	usage := "data: " + `{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}` + "\n\n"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, benchAnswer)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for range chunks {
			io.WriteString(w, chunk)
			fl.Flush()
		}
		io.WriteString(w, usage+"data: [DONE]\n\n")
	})
}

func benchProxy(b *testing.B) (*httptest.Server, string) {
	up := httptest.NewServer(staticUpstream(20))
	b.Cleanup(up.Close)
	cfg, err := config.FromMap(map[string]string{
		"GATEKEEPER": "user_token", "ADMIN_KEY": adminKey, "GATEKEEPER_STORE": "memory",
		"TEXT_MODEL_RATE_LIMIT": "0", "USER_CONCURRENCY_LIMIT": "0",
		"OPENAI_KEY": openAIKey, "OPENAI_BASE_URL": up.URL,
	})
	if err != nil {
		b.Fatal(err)
	}
	d := &app.Deps{Config: cfg, Store: memory.New(), Log: logging.New(io.Discard, "info"), Now: time.Now, Drain: app.NewDrain()}
	u, err := d.Service().Create(context.Background(), users.Patch{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(New(d))
	b.Cleanup(srv.Close)
	return srv, u.Token
}

func benchRequests(b *testing.B, body string) {
	srv, token := benchProxy(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/openai/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkChat is a whole chat completion through the proxy.
func BenchmarkChat(b *testing.B) {
	benchRequests(b, `{"model":"gpt-4o","max_tokens":16,"messages":[{"role":"user","content":"Say hello in one word."}]}`)
}

// BenchmarkStream is a 20-chunk streamed chat completion through the proxy.
func BenchmarkStream(b *testing.B) {
	benchRequests(b, `{"model":"gpt-4o","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`)
}

// BenchmarkParseRequest reads and clamps a long conversation (~200 KB).
func BenchmarkParseRequest(b *testing.B) {
	msg := `{"role":"user","content":"` + strings.Repeat("Lorem ipsum dolor sit amet, consectetur. ", 50) + `"},`
	body := []byte(`{"model":"gpt-4o","stream":true,"messages":[` + strings.Repeat(msg, 100) + `{"role":"user","content":"end"}],"max_tokens":4096}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseRequest(fmtChat, body, 1024, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamReader relays a 100-event stream, reading usage.
func BenchmarkStreamReader(b *testing.B) {
	ev := "data: " + `{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}` + "\n\n"
	stream := strings.Repeat(ev, 100) + "data: [DONE]\n\n"
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	buf := make([]byte, 32<<10)
	for b.Loop() {
		r := newStreamReader(context.Background(), io.NopCloser(strings.NewReader(stream)), &sseSplitter{}, &streamState{}, chatEvent)
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
}
