package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/api/option"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users/rtdb"
)

// freezer stands for Cloud Functions taking an instance's CPU away: once
// frozen, nothing the instance sends reaches the database.
type freezer struct {
	frozen atomic.Bool
	base   http.RoundTripper
}

func (f *freezer) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.frozen.Load() {
		<-r.Context().Done()
		return nil, fmt.Errorf("instance frozen: %w", r.Context().Err())
	}
	return f.base.RoundTrip(r)
}

func frozenRTDBStore(t *testing.T, srv *rtdbfake.Server, f *freezer) *rtdb.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := rtdb.Open(ctx, rtdb.Options{
		URL: srv.URL(), CacheTTL: 5 * time.Second, FlushEvery: time.Hour, CallTimeout: 2 * time.Second,
		ClientOptions: []option.ClientOption{option.WithHTTPClient(&http.Client{Transport: f})},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s // not closed: a frozen instance never flushes again
}

// A charge is in the database before the answer completes: instance A
// answers, is frozen the moment the client has the whole answer (a whole
// body, or a stream's final event), and instance B, reading the database,
// sees the charge.
func TestChargeDurableBeforeTheAnswerEnds(t *testing.T) {
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := startFakes(t)
	for _, pc := range provCases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", pc.kind, stream), func(t *testing.T) {
				fz := &freezer{base: http.DefaultTransport}
				a := newStack(t, stackOptions{fakes: fakes, store: frozenRTDBStore(t, srv, fz)})
				b := newStack(t, stackOptions{fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
				tok := a.createUser("")
				path, body := pc.path, pc.body
				if stream {
					path, body = pc.streamPathBody()
				}
				req, _ := http.NewRequest(http.MethodPost, a.proxy.URL+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range pc.auth(tok) {
					req.Header.Set(k, v)
				}
				resp, err := a.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				br := bufio.NewReader(resp.Body)
				var seen strings.Builder
				for {
					line, err := br.ReadString('\n')
					seen.WriteString(line)
					if err != nil || stream && isFinalEvent(pc, line) {
						break
					}
				}
				fz.frozen.Store(true) // the client has the whole answer: A gets no more CPU
				resp.Body.Close()
				if !strings.Contains(seen.String(), "Hello") {
					t.Fatalf("answer: %s", seen.String())
				}
				u := b.user(tok)
				if u.PromptCount != 1 || u.TokenCounts[pc.family] != 18 {
					t.Errorf("instance B sees %d prompts, %v; want 1 and %s=18", u.PromptCount, u.TokenCounts, pc.family)
				}
			})
		}
	}
}

// isFinalEvent reports the line that ends a stream in pc's format.
func isFinalEvent(pc provCase, line string) bool {
	switch {
	case strings.Contains(line, "[DONE]"), strings.Contains(line, "message_stop"):
		return true
	case strings.Contains(line, `"finishReason"`) && strings.Contains(line, `"candidatesTokenCount"`):
		return true // Google's last chunk
	}
	return false
}

// With LIMITS_SCOPE=cluster a request's place in flight is given back
// before its answer ends, as its charge is: instance A is frozen the
// moment the client has the whole answer (a whole body, a stream's final
// event, an upstream's error relayed), and the user's next request,
// limited to one in flight, is admitted by instance B at once. Nothing a
// limit depends on is left for A to do without CPU.
func TestPlaceGivenBackBeforeTheAnswerEnds(t *testing.T) {
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := startFakes(t)
	pc := provCases[0]
	vars := map[string]string{"LIMITS_SCOPE": "cluster", "USER_CONCURRENCY_LIMIT": "1"}
	for _, tc := range []struct {
		name   string
		stream bool
		status int
	}{{"whole", false, 200}, {"stream", true, 200}, {"upstream error", false, 500}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.status != http.StatusOK {
				fakes[pc.kind].Set(upstreamfake.Behavior{Status: tc.status})
				defer fakes[pc.kind].Set(upstreamfake.Behavior{})
			}
			fz := &freezer{base: http.DefaultTransport}
			a := newStack(t, stackOptions{vars: vars, fakes: fakes, store: frozenRTDBStore(t, srv, fz)})
			b := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
			tok := a.createUser("")
			path, body := pc.path, pc.body
			if tc.stream {
				path, body = pc.streamPathBody()
			}
			// Each database call takes a while: a leave begun after the
			// answer's end would still be on its way when A is frozen.
			srv.SetDelay(150 * time.Millisecond)
			defer srv.SetDelay(0)
			resp, err := a.client.Do(mustRequest(t, a.proxy.URL+path, body, pc.auth(tok)))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			br := bufio.NewReader(resp.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil || tc.stream && isFinalEvent(pc, line) {
					break
				}
			}
			fz.frozen.Store(true) // the client has the whole answer: A gets no more CPU
			resp.Body.Close()
			fakes[pc.kind].Set(upstreamfake.Behavior{})
			if r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != 200 {
				t.Errorf("the user's next request, on instance B: %d %s", r.status, r.body)
			}
		})
	}
}
