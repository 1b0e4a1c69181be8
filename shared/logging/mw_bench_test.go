package logging_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"tollgate.dev/tollgate/shared/logging"
)

func BenchmarkMiddlewareLine(b *testing.B) {
	h := logging.Middleware(logging.New(io.Discard, "info"), "proj", func(*http.Request) string { return "203.0.113.9" },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := logging.FromContext(r.Context())
			rec.SetRoute("POST /openai/v1/chat/completions")
			rec.SetToken("abcdefghijklmnopqrstuvwxyz012345")
			rec.SetFamily("gpt4o")
			rec.SetTokens(13)
		}))
	r := httptest.NewRequest(http.MethodPost, "/openai/v1/chat/completions", nil)
	r.Header.Set("User-Agent", "OpenAI/Go 3.0")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
