package proxy

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/providers"
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
	d, token := benchDeps(b, map[string]string{"TEXT_MODEL_RATE_LIMIT": "0", "USER_CONCURRENCY_LIMIT": "0", "OPENAI_BASE_URL": up.URL})
	srv := httptest.NewServer(New(d))
	b.Cleanup(srv.Close)
	return srv, token
}

// benchDeps builds the proxy's dependencies for a benchmark (user_token
// mode, memory store, info logs discarded; vars add to or override that)
// and creates one user, whose token it returns.
func benchDeps(b *testing.B, vars map[string]string) (Deps, string) {
	env := map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": adminKey, "GATEKEEPER_STORE": "memory", "OPENAI_KEY": openAIKey}
	maps.Copy(env, vars)
	cfg, err := config.FromMap(env)
	if err != nil {
		b.Fatal(err)
	}
	d := Deps{Config: cfg, Store: memory.New(), Log: logging.New(io.Discard, "info"), Now: time.Now}
	u, err := (&users.Service{Store: d.Store, Defaults: cfg.TokenQuota, Now: d.Now}).Create(context.Background(), users.Patch{})
	if err != nil {
		b.Fatal(err)
	}
	return d, u.Token
}

func benchRequests(b *testing.B, body string) {
	srv, token := benchProxy(b)
	benchPost(b, srv.URL+"/openai/v1/chat/completions", token, body)
}

// cpuTime is the CPU time this process has used (user and system): on a
// shared machine it varies much less with other load than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPost sends body to url from as many goroutines as there are CPUs,
// reporting the process's CPU time per request besides wall time. Client
// and upstream run in this process too: compare with BenchmarkDirect.
func benchPost(b *testing.B, url, token, body string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
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

const benchChatBody = `{"model":"gpt-4o","max_tokens":16,"messages":[{"role":"user","content":"Say hello in one word."}]}`

// BenchmarkDirect is BenchmarkChat's baseline: the same client and
// upstream with no proxy between them.
func BenchmarkDirect(b *testing.B) {
	up := httptest.NewServer(staticUpstream(20))
	b.Cleanup(up.Close)
	benchPost(b, up.URL+"/v1/chat/completions", openAIKey, benchChatBody)
}

// BenchmarkBareReverseProxy is the floor under BenchmarkChat: the same
// hop through a bare httputil.ReverseProxy (tollgate's transport and
// buffer pool) with no gatekeeper, parsing, usage or logging.
func BenchmarkBareReverseProxy(b *testing.B) {
	up := httptest.NewServer(staticUpstream(20))
	b.Cleanup(up.Close)
	target, _ := url.Parse(up.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = newTransport(0)
	rp.BufferPool = newBufferPool()
	srv := httptest.NewServer(rp)
	b.Cleanup(srv.Close)
	benchPost(b, srv.URL+"/v1/chat/completions", openAIKey, benchChatBody)
}

// BenchmarkChat is a whole chat completion through the proxy.
func BenchmarkChat(b *testing.B) {
	benchRequests(b, benchChatBody)
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
		if _, err := providers.OpenAIChat.Parse(body, 1024, true, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRequestInPlace is BenchmarkParseRequest as the exchange
// runs it: on its own copy of the body, with room for the edits.
func BenchmarkParseRequestInPlace(b *testing.B) {
	msg := `{"role":"user","content":"` + strings.Repeat("Lorem ipsum dolor sit amet, consectetur. ", 50) + `"},`
	body := []byte(`{"model":"gpt-4o","stream":true,"messages":[` + strings.Repeat(msg, 100) + `{"role":"user","content":"end"}],"max_tokens":4096}`)
	own := make([]byte, len(body), len(body)+editRoom)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		own = own[:len(body)]
		copy(own, body) // as if read from the client again
		if _, err := providers.OpenAIChat.Parse(own, 1024, true, true); err != nil {
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
		r := newStreamReader(context.Background(), io.NopCloser(strings.NewReader(stream)), &framing.SSE{}, &providers.StreamState{}, providers.OpenAIChat.Event)
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
}

// BenchmarkAnswerUsage reads the usage of whole answers, one per format.
func BenchmarkAnswerUsage(b *testing.B) {
	for _, c := range []struct {
		name string
		read func([]byte) (providers.Usage, bool)
		body string
	}{
		{"openai", providers.OpenAIChat.Usage, benchAnswer},
		{"anthropic", providers.AnthropicMessages.Usage, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}`},
		{"google", providers.GoogleGenerate.Usage, `{"candidates":[{"content":{"parts":[{"text":"Hello"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":1,"totalTokenCount":13},"modelVersion":"gemini-2.5-flash"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.body)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := c.read(body); !ok {
					b.Fatal("no usage")
				}
			}
		})
	}
}

// BenchmarkStreamUsage relays a 50-event stream of each format through
// the stream reader, reading its usage as the proxy does.
func BenchmarkStreamUsage(b *testing.B) {
	text := func(s string) string { return strings.Repeat(s, 50) }
	for _, c := range []struct {
		name   string
		f      *providers.Format
		stream string
	}{
		{"openai-chat", providers.OpenAIChat, text(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}`+"\n\n") +
			`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":50,"total_tokens":62}}` + "\n\ndata: [DONE]\n\n"},
		{"anthropic", providers.AnthropicMessages, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n" +
			text("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word \"}}\n\n") +
			"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":50}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
		{"google", providers.GoogleGenerate, text(`data: {"candidates":[{"content":{"parts":[{"text":"word "}],"role":"model"}}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":1,"totalTokenCount":13}}` + "\n\n")},
	} {
		b.Run(c.name, func(b *testing.B) {
			pool := newChunkPool()
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(c.stream)))
			b.ReportAllocs()
			for b.Loop() {
				st := &providers.StreamState{}
				r := newStreamReader(context.Background(), io.NopCloser(strings.NewReader(c.stream)), &framing.SSE{}, st, c.f.Event)
				r.pool = pool
				r.endsAtEOF = c.f == providers.GoogleGenerate
				for {
					if _, err := r.Read(buf); err != nil {
						break
					}
				}
				if st.Tokens(0) == 0 {
					b.Fatal("no usage read")
				}
			}
		})
	}
}
