package logging_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/logging"
)

// The handler's context is the request's, with its log record: values,
// deadline and cancellation (with its cause) pass through, and the record
// is found from contexts made from it.
func TestMiddlewareContextIsTheRequests(t *testing.T) {
	type key struct{}
	deadline := time.Now().Add(time.Hour)
	parent, cancel := context.WithDeadline(context.WithValue(context.Background(), key{}, "v"), deadline)
	defer cancel()
	parent, cancelCause := context.WithCancelCause(parent)
	why := errors.New("client left")
	ran := false
	h := logging.Middleware(zerolog.Nop(), "p", func(*http.Request) string { return "192.0.2.1" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		ctx := r.Context()
		rec := logging.FromContext(ctx)
		if logging.FromContext(context.WithValue(ctx, key{}, "w")) != rec {
			t.Error("the record is not found from a child context")
		}
		rec.SetRoute("r") // the record is the line's, not a throwaway
		if ctx.Value(key{}) != "v" {
			t.Errorf("parent's value = %v", ctx.Value(key{}))
		}
		if d, ok := ctx.Deadline(); !ok || !d.Equal(deadline) {
			t.Errorf("deadline = %v, %v", d, ok)
		}
		child, stop := context.WithCancel(ctx)
		defer stop()
		cancelCause(why)
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a child context outlived the request's cancellation")
		}
		if context.Cause(child) != why {
			t.Errorf("cause = %v", context.Cause(child))
		}
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(parent)
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !ran {
		t.Fatal("the handler did not run")
	}
}
