// Package ctxval is context.WithValue held in a struct of the caller's:
// a request's record or exchange rides in its context without an
// allocation of its own on the hot path (the log record, the exchange,
// a mount's base path).
package ctxval

import "context"

// Ctx is its Context with Val under every key of type K (a key type of
// one value, such as an empty struct), as context.WithValue(Context,
// K{}, Val) would answer. Use it by pointer, once its fields are set.
type Ctx[K comparable, V any] struct {
	context.Context
	Val V
}

// Value answers Val for a key of type K, else asks the parent.
func (c *Ctx[K, V]) Value(key any) any {
	if _, ok := key.(K); ok {
		return c.Val
	}
	return c.Context.Value(key)
}
