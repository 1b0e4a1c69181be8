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
