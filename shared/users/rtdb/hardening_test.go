package rtdb_test

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/api/option"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// A count the database cannot hold exactly (a double: above 2^53) is
// refused with a 400 naming the field, and nothing is written. Before,
// it was stored rounded, and math.MaxInt64 came back as a negative
// number (found by FuzzCodecRoundTrip). 2^53 itself is kept exactly.
func TestCountsBeyondDoublePrecision(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	cases := []struct {
		name string
		edit func(u *users.User)
		path string
	}{
		{"quota", func(u *users.User) { u.TokenLimits["gpt4o"] = math.MaxInt64 }, "tokenLimits.gpt4o"},
		{"prompt count", func(u *users.User) { u.PromptCount = 1<<53 + 1 }, "promptCount"},
		{"refresh", func(u *users.User) { u.TokenRefresh = map[string]int64{"claude": 1 << 60} }, "tokenRefresh.claude"},
		{"max ips", func(u *users.User) { n := int64(math.MaxInt64); u.MaxIPs = &n }, "maxIps"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Modify(ctx(t), "tok-big", true, func(u *users.User, _ bool) error {
				*u = *users.New("tok-big", users.Normal, t0, nil)
				tc.edit(u)
				return nil
			})
			e := users.AsError(err)
			if e.Code != users.CodeInvalid || len(e.Issues) == 0 || e.Issues[0].Path != tc.path {
				t.Fatalf("got %v (issues %v), want a 400 at %s", err, e.Issues, tc.path)
			}
			if v := srv.Data("users/tok-big"); v != nil {
				t.Fatalf("refused user was written: %v", v)
			}
		})
	}
	u := create(t, s, "tok-edge", func(u *users.User) {
		u.PromptCount = 1 << 53
		u.TokenLimits["gpt4o"] = 1<<53 - 1
	})
	got := mustGet(t, s, "tok-edge")
	if got.PromptCount != 1<<53 || got.TokenLimits["gpt4o"] != 1<<53-1 || u.PromptCount != 1<<53 {
		t.Fatalf("2^53 not kept exactly: %d %v", got.PromptCount, got.TokenLimits)
	}
}

// slowAnswers delivers each PUT to the database at once but its answer
// only after hold, unless the caller gives up first: a write the database
// applied whose answer the caller never saw.
type slowAnswers struct {
	hold time.Duration
	held atomic.Int32
}

func (s *slowAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPut {
		return http.DefaultTransport.RoundTrip(r)
	}
	resp, err := http.DefaultTransport.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	s.held.Add(1)
	select {
	case <-time.After(s.hold):
		return resp, nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
}

// Close while the background flush is writing: the flush under way is let
// finish, not canceled. Before, Close canceled it; a write the database had
// already applied was then kept as unwritten and applied again by Close's
// own flush (found by the two-instance load test: users charged 12-15
// prompts for 10).
func TestCloseDuringAFlushCountsOnce(t *testing.T) {
	srv := rtdbfake.Start(t)
	slow := &slowAnswers{hold: 300 * time.Millisecond}
	o := fakeOptions(t, srv)
	o.FlushEvery = 20 * time.Millisecond
	o.ClientOptions = []option.ClientOption{option.WithHTTPClient(&http.Client{Transport: slow})}
	s := open(t, o)
	create(t, s, "tok-close", nil)
	before := slow.held.Load()
	for range 3 {
		if err := s.RecordUsage(ctx(t), "tok-close", users.Usage{Family: "gpt4o", Tokens: 10, At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for slow.held.Load() == before { // the background flush's write is on its way back
		if time.Now().After(deadline) {
			t.Fatal("the background flush did not write")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(ctx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	o.ClientOptions = nil
	if u := mustGet(t, open(t, o), "tok-close"); u.PromptCount != 3 || u.TokenCounts["gpt4o"] != 30 {
		t.Fatalf("after Close during a flush: %d prompts, %v; want 3, 30 tokens", u.PromptCount, u.TokenCounts)
	}
}

// Close keeps to its deadline while a request's flush holds the store (a
// slow database at SIGTERM): the instance must exit within its shutdown
// window, and the flush under way goes on regardless. Before, Close
// waited for that flush whatever its deadline, past Cloud Run's 10 s.
func TestCloseKeepsItsDeadlineWhileARequestFlushes(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv)) // CallTimeout 5 s
	create(t, s, "tok-slowflush", nil)
	if err := s.RecordUsage(ctx(t), "tok-slowflush", users.Usage{Family: "gpt4o", Tokens: 10, At: t0}); err != nil {
		t.Fatal(err)
	}
	srv.SetDelay(2 * time.Second)
	defer srv.SetDelay(0)
	before := srv.Requests()
	flushed := make(chan error, 1)
	go func() { flushed <- s.Flush(context.Background()) }() // a request's charge
	for deadline := time.Now().Add(5 * time.Second); srv.Requests() == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request's flush never reached the database")
		}
	}
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Close(c)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Close with a 200ms deadline took %s while a flush held the store", took)
	}
	if err == nil {
		t.Error("Close reported success though it flushed nothing")
	}
	if err := <-flushed; err != nil {
		t.Errorf("the request's flush: %v", err)
	}
}
