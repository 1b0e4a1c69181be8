package ctxval

import (
	"context"
	"testing"
)

type key struct{}
type other struct{}

func TestCtxAnswersAsWithValue(t *testing.T) {
	parent := context.WithValue(context.Background(), other{}, "parent's")
	c := &Ctx[key, *int]{Context: parent, Val: new(int)}
	want := context.WithValue(parent, key{}, c.Val)
	for _, k := range []any{key{}, other{}, "missing"} {
		if got, w := c.Value(k), want.Value(k); got != w {
			t.Errorf("Value(%T) = %v, want %v as context.WithValue gives", k, got, w)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = c.Value(key{}) }); allocs != 0 {
		t.Errorf("Value allocates %v times", allocs)
	}
}
