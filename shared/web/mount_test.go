package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"tollgate.dev/tollgate/shared/web"
)

// Under its prefix, Mount's copy of the request keeps the request's
// context (values, cancellation) beside the base path, and costs two
// allocations: the request's copy, and its URL and context together.
func TestMountKeepsTheRequestContext(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	var ctx context.Context
	h := web.Mount("proxy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ctx = r.Context() }))
	r := httptest.NewRequest(http.MethodPost, "/proxy/openai/v1/chat/completions", nil).WithContext(parent)
	h.ServeHTTP(nil, r)
	if web.BasePath(ctx) != "/proxy" || ctx.Value(key{}) != "v" || web.BasePath(context.WithValue(ctx, key{}, "w")) != "/proxy" {
		t.Fatalf("base %q, value %v", web.BasePath(ctx), ctx.Value(key{}))
	}
	cancel()
	if ctx.Err() == nil {
		t.Fatal("the mounted request outlived its client")
	}
	if n := testing.AllocsPerRun(100, func() { h.ServeHTTP(nil, r) }); n > 2 {
		t.Errorf("Mount under its prefix: %.0f allocations, want 2", n)
	}
}
