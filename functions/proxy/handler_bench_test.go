package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// cannedTransport answers every request at once from memory, reading its
// body as a server would: the handler benchmarks measure the proxy's own
// work without sockets, goroutine hand-offs or the client.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(benchAnswer))}}
	return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(benchAnswer)), ContentLength: int64(len(benchAnswer)), Request: r}, nil
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

func serveHandler(b *testing.B, h http.Handler, path, token string) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(benchChatBody))
		r.Header.Set("Authorization", "Bearer "+token)
		r.Header.Set("Content-Type", "application/json")
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, r)
		if w.code != 0 && w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkHandlerBare is BenchmarkHandler's floor: a bare
// httputil.ReverseProxy over the same in-memory upstream.
func BenchmarkHandlerBare(b *testing.B) {
	target, _ := url.Parse("http://upstream.test")
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = cannedTransport{}
	rp.BufferPool = newBufferPool()
	serveHandler(b, rp, "/v1/chat/completions", openAIKey)
}

// BenchmarkHandler is one whole chat completion through the proxy's
// handler, every limit on, over an in-memory upstream: the proxy's own
// work per request, without the network.
func BenchmarkHandler(b *testing.B) {
	d, token := benchDeps(b, map[string]string{"OPENAI_BASE_URL": "http://upstream.test",
		"TEXT_MODEL_RATE_LIMIT": "1000000", "TOKEN_QUOTA_TURBO": "1000000000000"})
	serveHandler(b, NewWithOptions(d, Options{Transport: cannedTransport{}}), "/openai/v1/chat/completions", token)
}
