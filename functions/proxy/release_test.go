package proxy

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// With one request in flight allowed per user, a client that sends its
// next request as soon as it has read a stream's end (as the SDKs do)
// must not be refused because the proxy was still closing the first
// stream's upstream connection.
func TestConcurrencySlotFreedAtStreamEnd(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		first := calls.Add(1) == 1
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"choices":[{"delta":{"content":"Hi"}}]}`+"\n\n"+
			`data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`+"\n\n"+"data: [DONE]\n\n")
		w.(http.Flusher).Flush()
		if first {
			// The upstream keeps the first connection open after its end.
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer up.Close()
	defer close(release)
	cfg, err := config.FromMap(map[string]string{
		"GATEKEEPER": "user_token", "ADMIN_KEY": adminKey, "GATEKEEPER_STORE": "memory",
		"USER_CONCURRENCY_LIMIT": "1", "OPENAI_KEY": openAIKey, "OPENAI_BASE_URL": up.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := Deps{Config: cfg, Store: memory.New(), Log: logging.New(io.Discard, "info"), Now: time.Now}
	u, err := (&users.Service{Store: d.Store, Defaults: cfg.TokenQuota, Now: d.Now}).Create(context.Background(), users.Patch{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(d))
	defer srv.Close()

	post := func() *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/openai/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+u.Token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := post()
	defer first.Body.Close()
	br := bufio.NewReader(first.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the first stream ended before [DONE]: %v", err)
		}
		if line == "data: [DONE]\n" {
			break
		}
	}
	second := post()
	body, _ := io.ReadAll(second.Body)
	second.Body.Close()
	if second.StatusCode != http.StatusOK {
		t.Fatalf("the next request after the stream's end: %d %s", second.StatusCode, body)
	}
}
