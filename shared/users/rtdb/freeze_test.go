package rtdb_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// thaw runs hook once, on the first request of method whose path holds
// match, after the database has answered it and before the store sees
// the answer: an instance frozen while the answer was on its way (Cloud
// Functions took its CPU), thawed minutes later.
type thaw struct {
	mu     sync.Mutex
	method string
	match  string
	hook   func()
}

func (f *thaw) arm(method, match string, hook func()) {
	f.mu.Lock()
	f.method, f.match, f.hook = method, match, hook
	f.mu.Unlock()
}

func (f *thaw) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	hook := f.hook
	if hook == nil || r.Method != f.method || !strings.Contains(r.URL.Path, f.match) {
		hook = nil
	} else {
		f.hook = nil
	}
	f.mu.Unlock()
	if hook != nil {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		hook()
	}
	return resp, nil
}

// A copy of a user is trusted for USER_CACHE_TTL from when it was asked
// for, not from when its answer was taken in: an answer that waited
// through a freeze is already old. An admin's disable made meanwhile is
// seen by the next Lookup. Before, the copy was stamped on arrival and
// trusted for another USER_CACHE_TTL after the thaw: minutes past its
// age, and past the disable.
func TestCopyAnsweredBeforeAFreezeIsNotTrustedAfterIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		// how the copy is taken in: method and what of the user's path
		// the answer that waits through the freeze is to
		method string
		take   func(t *testing.T, s users.Store, token string)
	}{
		{"read", http.MethodGet, func(t *testing.T, s users.Store, token string) {
			if _, err := users.LookupCopy(ctx(t), s, token); err != nil {
				t.Fatal(err)
			}
		}},
		{"flush", http.MethodPut, func(t *testing.T, s users.Store, token string) {
			if err := s.RecordUsage(ctx(t), token, users.Usage{Family: "gpt4o", Tokens: 10, At: t0}); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(context.Background()); err != nil { // the background flusher's
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := rtdbfake.Start(t)
			clk := &clock{now: t0}
			fz := &thaw{}
			o := fakeOptions(t, srv) // CacheTTL 5 s
			o.Now = clk.Now
			o.ClientOptions = []option.ClientOption{option.WithHTTPClient(&http.Client{Transport: fz})}
			s := open(t, o)
			token := "tok-thaw-" + tc.name
			create(t, s, token, nil)
			clk.Advance(time.Minute) // the copy create left is old
			fz.arm(tc.method, token, func() {
				clk.Advance(5 * time.Minute) // frozen
				srv.SetData("users/"+token+"/disabledAt", t0.Add(3*time.Minute).UnixMilli())
				srv.SetData("users/"+token+"/disabledReason", "disabled while the instance was frozen")
			})
			tc.take(t, s, token)
			u, err := users.LookupCopy(ctx(t), s, token)
			if err != nil {
				t.Fatal(err)
			}
			if !u.Disabled() {
				t.Error("after the thaw, the user is answered from a copy taken before the freeze, and the disable made meanwhile is not seen")
			}
		})
	}
}
