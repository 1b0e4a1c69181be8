package proxy

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestExchangeCtx: the upstream request's context is its parent's, with
// the exchange under exchangeKey, as context.WithValue made it: values,
// deadline and cancellation (with its cause) all pass through.
func TestExchangeCtx(t *testing.T) {
	type otherKey struct{}
	deadline := time.Now().Add(time.Hour)
	parent, cancel := context.WithDeadline(context.WithValue(context.Background(), otherKey{}, "v"), deadline)
	parent, cancelCause := context.WithCancelCause(parent)
	defer cancel()
	x := &exchange{}
	x.ctx = exchangeCtx{Context: parent, Val: x}
	ctx := context.Context(&x.ctx)

	if exchangeFrom(ctx) != x {
		t.Fatal("exchangeFrom does not find the exchange")
	}
	if exchangeFrom(context.WithValue(ctx, otherKey{}, "w")) != x {
		t.Fatal("exchangeFrom does not find the exchange under a child context")
	}
	if v := ctx.Value(otherKey{}); v != "v" {
		t.Fatalf("parent's value = %v, want v", v)
	}
	if d, ok := ctx.Deadline(); !ok || !d.Equal(deadline) {
		t.Fatalf("deadline = %v, %v; want %v", d, ok, deadline)
	}
	child, stop := context.WithCancel(ctx)
	defer stop()
	if ctx.Err() != nil || child.Err() != nil {
		t.Fatal("cancelled before its parent")
	}
	why := errors.New("client left")
	cancelCause(why)
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a child of the upstream context outlived its parent's cancellation")
	}
	if !errors.Is(ctx.Err(), context.Canceled) || context.Cause(ctx) != why || context.Cause(child) != why {
		t.Fatalf("err %v, cause %v, child's cause %v", ctx.Err(), context.Cause(ctx), context.Cause(child))
	}
}
