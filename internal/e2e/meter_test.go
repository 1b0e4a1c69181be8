package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// Many parallel requests of one user never charge more than the quota
// when the upstream reports no more than each asked for: each admitted
// request reserves what the quota check counted until it is charged.
func TestParallelRequestsStayWithinQuota(t *testing.T) {
	const quota = 1000
	s := newStack(t, stackOptions{vars: map[string]string{"TOKEN_QUOTA_GPT4O": strconv.Itoa(quota)}})
	// 1 + 99 tokens billed for a request of max_tokens 99 and a prompt of
	// at least one token; the delay keeps them all in flight at once.
	s.fakes[upstreamfake.OpenAI].Set(upstreamfake.Behavior{InputTokens: 1, OutputTokens: 99, FirstByteDelay: 300 * time.Millisecond})
	tok := s.createUser("")
	body := `{"model":"gpt-4o","max_tokens":99,"messages":[{"role":"user","content":"Say hello."}]}`
	const n = 30
	var wg sync.WaitGroup
	var served, refused atomic.Int64
	for range n {
		wg.Go(func() {
			r := s.do(http.MethodPost, s.proxy.URL+"/proxy/openai/v1/chat/completions", body, bearer(tok))
			switch r.status {
			case http.StatusOK:
				served.Add(1)
			case http.StatusTooManyRequests:
				if !strings.Contains(string(r.body), "quota") {
					t.Errorf("429 that is not a quota refusal: %s", r.body)
				}
				refused.Add(1)
			default:
				t.Errorf("status %d: %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	u := s.user(tok)
	charged := u.TokenCounts["gpt4o"]
	t.Logf("%d parallel requests: %d served, %d refused, %d of %d tokens charged", n, served.Load(), refused.Load(), charged, quota)
	if charged > quota {
		t.Fatalf("charged %d tokens over a quota of %d (%d requests served)", charged, quota, served.Load())
	}
	if charged != served.Load()*100 || u.PromptCount != served.Load() {
		t.Errorf("charged %d tokens for %d prompts, %d served at 100 each", charged, u.PromptCount, served.Load())
	}
	if served.Load() == 0 || refused.Load() == 0 {
		t.Errorf("%d served, %d refused: the quota should let some through and refuse others", served.Load(), refused.Load())
	}
}

// watchedBody is a request body that records whether it was read.
type watchedBody struct {
	r     io.Reader
	reads atomic.Int64
	first chan struct{}
	once  sync.Once
}

func newWatchedBody(r io.Reader) *watchedBody { return &watchedBody{r: r, first: make(chan struct{})} }

func (b *watchedBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	b.once.Do(func() { close(b.first) })
	return b.r.Read(p)
}

func (b *watchedBody) Close() error { return nil }

// serveDirect runs the stack's proxy handler on one request whose body is
// watched, with the client at ip.
func (s *stack) serveDirect(pc provCase, ip string, header map[string]string, body *watchedBody) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, pc.path, nil)
	req.Body = body
	req.ContentLength = -1
	req.RemoteAddr = ip + ":40000"
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.proxy.Config.Handler.ServeHTTP(rec, req)
	return rec
}

// No body is read for a request the checks that need none refuse:
// unauthenticated, blacklisted, disabled, out of quota, over the rate or
// concurrency limit. Not even to shape a fake completion.
func TestRefusedRequestsLeaveTheBodyUnread(t *testing.T) {
	const blocked = "192.0.2.66"
	for _, format := range []string{"native", "completion"} {
		t.Run(format, func(t *testing.T) {
			s := newStack(t, stackOptions{vars: map[string]string{
				"ERROR_FORMAT":           format,
				"IP_BLACKLIST":           blocked,
				"TEXT_MODEL_RATE_LIMIT":  "1",
				"USER_CONCURRENCY_LIMIT": "1",
				"ALLOWED_MODEL_FAMILIES": "gpt4o,claude,gemini-flash,mistral-small",
			}})
			spent := s.createUser("")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.d.Store.Modify(ctx, spent, false, func(u *users.User, _ bool) error {
				u.TokenLimits = map[string]int64{"gpt4o": 10, "claude": 10, "gemini-flash": 10, "mistral-small": 10}
				u.TokenCounts = map[string]int64{"gpt4o": 10, "claude": 12, "gemini-flash": 10, "mistral-small": 10}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			disabled := s.createUser("")
			if r := s.do(http.MethodDelete, s.admin.URL+"/admin/users/"+disabled+"?disabledReason=abuse", "", bearer(adminKey)); r.status != http.StatusOK {
				t.Fatalf("disable: %d %s", r.status, r.body)
			}
			for _, pc := range provCases {
				limited := s.createUser("")
				// One request through, which reads its body; the next
				// one is over the rate limit.
				first := newWatchedBody(strings.NewReader(pc.body))
				if rec := s.serveDirect(pc, "203.0.113.5", pc.auth(limited), first); rec.Code != http.StatusOK || first.reads.Load() == 0 {
					t.Fatalf("%s: an admitted request: %d, %d reads: %s", pc.kind, rec.Code, first.reads.Load(), rec.Body)
				}
				cases := []struct {
					name   string
					ip     string
					header map[string]string
					status int
				}{
					{"no token", "203.0.113.5", nil, http.StatusUnauthorized},
					{"unknown token", "203.0.113.5", pc.auth("44444444-4444-4444-8444-444444444444"), http.StatusUnauthorized},
					{"blacklisted address", blocked, pc.auth(limited), http.StatusForbidden},
					{"disabled token", "203.0.113.5", pc.auth(disabled), http.StatusForbidden},
					{"quota used up", "203.0.113.5", pc.auth(spent), http.StatusTooManyRequests},
					{"rate limit", "203.0.113.5", pc.auth(limited), http.StatusTooManyRequests},
				}
				before := s.fakes[pc.kind].Count()
				for _, c := range cases {
					body := newWatchedBody(strings.NewReader(pc.body))
					rec := s.serveDirect(pc, c.ip, c.header, body)
					checkRefusal(t, format, string(pc.kind)+", "+c.name, rec, c.status)
					if n := body.reads.Load(); n != 0 {
						t.Errorf("%s, %s: the body was read (%d reads)", pc.kind, c.name, n)
					}
				}
				if after := s.fakes[pc.kind].Count(); after != before {
					t.Errorf("%s: %d refused requests reached the upstream", pc.kind, after-before)
				}
			}

			// A model the path names (Google) in a family not allowed.
			notAllowed := provCases[2]
			notAllowed.path = "/proxy/google-ai/v1beta/models/gemini-2.5-pro:generateContent"
			body := newWatchedBody(strings.NewReader(notAllowed.body))
			rec := s.serveDirect(notAllowed, "203.0.113.5", notAllowed.auth(s.createUser("")), body)
			checkRefusal(t, format, "family not allowed", rec, http.StatusForbidden)
			if n := body.reads.Load(); n != 0 {
				t.Errorf("family not allowed: the body was read (%d reads)", n)
			}

			// Concurrency: a request still sending its body holds the
			// user's slot; a second one is refused unread.
			pc := provCases[0]
			tok := s.createUser("")
			pr, pw := io.Pipe()
			slow := newWatchedBody(pr)
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.serveDirect(pc, "203.0.113.5", pc.auth(tok), slow)
			}()
			select {
			case <-slow.first:
			case <-time.After(10 * time.Second):
				t.Fatal("the first request's body was never read")
			}
			second := newWatchedBody(strings.NewReader(pc.body))
			rec = s.serveDirect(pc, "203.0.113.5", pc.auth(tok), second)
			checkRefusal(t, format, "concurrency", rec, http.StatusTooManyRequests)
			if n := second.reads.Load(); n != 0 {
				t.Errorf("concurrency: the body was read (%d reads)", n)
			}
			pw.CloseWithError(errors.New("client gone"))
			<-done
		})
	}
}

// checkRefusal checks a proxy-made refusal of status in either error format.
func checkRefusal(t *testing.T, format, what string, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if got := rec.Header().Get("X-Oai-Proxy-Error-Status"); got != strconv.Itoa(status) {
		t.Errorf("%s: proxy error status %q, want %d: %d %s", what, got, status, rec.Code, rec.Body)
	}
	want := status
	if format == "completion" {
		want = http.StatusOK
	}
	if rec.Code != want {
		t.Errorf("%s: status %d, want %d: %s", what, rec.Code, want, rec.Body)
	}
}

// On the image route a model the table does not know counts in the image
// family: it gets the image quota and rate limit, never a text family's.
func TestUnknownImageModelCountsAsImage(t *testing.T) {
	s := newStack(t, stackOptions{vars: map[string]string{
		"ALLOWED_MODEL_FAMILIES": "gpt4o,dall-e",
		"TEXT_MODEL_RATE_LIMIT":  "100",
		"IMAGE_MODEL_RATE_LIMIT": "1",
	}})
	tok := s.createUser("")
	url := s.proxy.URL + "/proxy/openai/v1/images/generations"
	body := func(model string) string { return `{"model":"` + model + `","prompt":"a lighthouse","n":1}` }
	if r := s.do(http.MethodPost, url, body("brand-new-image-model"), bearer(tok)); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	// A text model's name does not move an image request to the text
	// limit: the second image request of the minute is over the image one.
	r := s.do(http.MethodPost, url, body("gpt-4o"), bearer(tok))
	if r.status != http.StatusTooManyRequests || r.header.Get("X-Ratelimit-Limit") != "1" {
		t.Fatalf("second image request: %d, limit %q: %s", r.status, r.header.Get("X-Ratelimit-Limit"), r.body)
	}
	u := s.user(tok)
	if u.TokenCounts["dall-e"] == 0 || u.TokenCounts["gpt4o"] != 0 || u.PromptCount != 1 {
		t.Errorf("counts %v over %d prompts, want one prompt charged to dall-e", u.TokenCounts, u.PromptCount)
	}
}

// A request that fails gives its reservation back: after many upstream
// errors the whole quota is still there. A client that left before its
// answer, once its request had gone upstream, is charged what the
// request reserved (the upstream may bill an answer no one reads), once,
// and its reservation is given back as it is charged.
func TestFailedRequestsReleaseTheirReservation(t *testing.T) {
	s := newStack(t, stackOptions{vars: map[string]string{"TOKEN_QUOTA_GPT4O": "300"}})
	tok := s.createUser("")
	url := s.proxy.URL + "/proxy/openai/v1/chat/completions"
	// Each request reserves about 210 of the 300: two at once do not fit,
	// so one leaked reservation would refuse the last request.
	body := `{"model":"gpt-4o","max_tokens":200,"messages":[{"role":"user","content":"Say hello."}]}`
	fake := s.fakes[upstreamfake.OpenAI]
	fake.Set(upstreamfake.Behavior{Status: http.StatusInternalServerError})
	for range 5 {
		if r := s.do(http.MethodPost, url, body, bearer(tok)); r.status != http.StatusInternalServerError {
			t.Fatalf("upstream error relayed as %d: %s", r.status, r.body)
		}
	}
	fake.Set(upstreamfake.Behavior{})
	if r := s.do(http.MethodPost, url, body, bearer(tok)); r.status != http.StatusOK {
		t.Fatalf("after failed requests: %d %s", r.status, r.body)
	}
	if u := s.user(tok); u.PromptCount != 1 || u.TokenCounts["gpt4o"] != fullCharge {
		t.Errorf("charged %d prompts, %v; want only the last request", u.PromptCount, u.TokenCounts)
	}

	fake.Set(upstreamfake.Behavior{FirstByteDelay: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	done := make(chan error, 1)
	go func() {
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the request to reach the upstream", func() bool { return fake.InFlight() == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the client was meant to leave before the answer")
	}
	waitFor(t, "the abandoned request to end", func() bool { return fake.Cancelled() == 1 && fake.InFlight() == 0 })
	waitFor(t, "the abandoned request's charge", func() bool { return s.user(tok).PromptCount == 2 })
	left := s.user(tok).TokenCounts["gpt4o"] - fullCharge
	if left < 200 || left > 215 {
		t.Errorf("the abandoned request was charged %d, want its prompt and its 200 output tokens", left)
	}
	// 18 + ~205 used: a request of ~55 fits only if the abandoned one's
	// reservation was given back when it was charged.
	fake.Set(upstreamfake.Behavior{})
	small := strings.Replace(body, `"max_tokens":200`, `"max_tokens":50`, 1)
	if r := s.do(http.MethodPost, url, small, bearer(tok)); r.status != http.StatusOK {
		t.Fatalf("after the abandoned request: %d %s", r.status, r.body)
	}
}
