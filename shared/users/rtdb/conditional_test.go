package rtdb_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// TestConditionalWriteGivesUp: a user whose node changes before every one
// of our conditional writes is retried a bounded number of times, then the
// caller gets "unavailable" and nothing of ours is written.
func TestConditionalWriteGivesUp(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	if _, err := s.Modify(ctx(t), "tok-busy", true, func(u *users.User, _ bool) error {
		*u = *users.New(u.Token, users.Normal, t0, nil)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var puts, other atomic.Int64
	srv.OnWrite(func(method, path string, conditional bool) {
		if method == "PUT" && conditional && strings.HasSuffix(path, "/tok-busy") {
			// Another writer gets there first, every time.
			srv.SetData(path+"/promptCount", puts.Add(1))
			return
		}
		other.Add(1)
	})
	_, err := s.Modify(ctx(t), "tok-busy", false, func(u *users.User, _ bool) error {
		u.Nickname = "never"
		return nil
	})
	var e *users.Error
	if !errors.As(err, &e) || e.Code != users.CodeUnavailable {
		t.Fatalf("Modify under endless contention = %v, want unavailable", err)
	}
	if n := puts.Load(); n != 25 {
		t.Fatalf("%d conditional writes, want 25", n)
	}
	if other.Load() != 0 {
		t.Fatalf("%d unconditional writes", other.Load())
	}
	srv.OnWrite(nil)
	if u := mustGet(t, s, "tok-busy"); u.Nickname != "" || u.PromptCount != 25 {
		t.Fatalf("after giving up: %+v", u)
	}
}
