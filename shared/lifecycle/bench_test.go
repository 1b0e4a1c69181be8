package lifecycle

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkWrap is what counting a request (and making it cuttable)
// costs, over a handler that does nothing; the request is served by
// net/http's own server context, as on the platform.
func BenchmarkWrap(b *testing.B) {
	for _, bc := range []struct {
		name string
		h    func(http.Handler) http.Handler
	}{
		{"bare", func(h http.Handler) http.Handler { return h }},
		{"drain", NewDrain().Wrap},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := bc.h(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Context().Err() != nil {
					b.Fatal("canceled")
				}
			}))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			ctx, cancel := context.WithCancel(r.Context()) // as net/http gives each request
			defer cancel()
			r = r.WithContext(ctx)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
