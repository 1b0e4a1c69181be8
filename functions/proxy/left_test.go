package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// leave sends c and goes away once the upstream holds the request, before
// its answer; it returns when the proxy has logged the request.
func (e *env) leave(t *testing.T, kind upstreamfake.Kind, c call, token string) {
	t.Helper()
	up := e.fake(kind)
	up.Set(upstreamfake.Behavior{FirstByteDelay: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+c.path, strings.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := e.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.InFlight() == 1 }) {
		t.Fatal("the request did not reach the upstream")
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the client was meant to leave before the answer")
	}
	e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
	if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool { return f.Cancelled() == 1 }) {
		t.Error("the upstream request was not cancelled")
	}
	up.Set(upstreamfake.Behavior{})
}

// A client that leaves before its answer, once its request has gone to
// the upstream, is charged: the upstream bills what it was sent. A whole
// answer's request is charged all it reserved (its prompt and its output
// limit), since its upstream may work on and bill an answer no one reads;
// a stream's, cancelled with its client, its prompt. Before, neither was
// charged: leaving before each answer had the operator billed for
// answers no quota counted.
func TestClientLeavingBeforeTheAnswerIsCharged(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		min, max int64
	}{
		{"whole", `{"model":"gpt-4o","max_tokens":300,"messages":[{"role":"user","content":"Say hello."}]}`, 300, 320},
		{"stream", `{"model":"gpt-4o","max_tokens":300,"stream":true,"messages":[{"role":"user","content":"Say hello."}]}`, 1, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			token := e.user(users.Patch{})
			e.leave(t, upstreamfake.OpenAI, call{path: "/proxy/openai/v1/chat/completions", body: tc.body, header: bearerH(token)}, token)
			u := e.get(token)
			if got := u.TokenCounts["gpt4o"]; got < tc.min || got > tc.max {
				t.Errorf("charged %d tokens, want %d to %d", got, tc.min, tc.max)
			}
			if u.PromptCount != 1 {
				t.Errorf("prompt count %d, want 1", u.PromptCount)
			}
		})
	}
}

// A Responses request with an image generation tool whose client leaves
// before the answer: a whole answer's is charged the images it reserved
// (one, of the tool's size and quality), as the rest of its reservation;
// a stream, cancelled before anything of it came, made no image the proxy
// saw, and is charged none.
func TestClientLeavingBeforeTheAnswerChargesTheImageTool(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		images int64
	}{{"whole", "", 272}, {"stream", `"stream":true,`, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true", "ALLOWED_MODEL_FAMILIES": "gpt4o,gpt-image"})
			token := e.user(users.Patch{})
			e.leave(t, upstreamfake.OpenAI, call{path: "/proxy/openai/v1/responses", header: bearerH(token),
				body: `{"model":"gpt-4o",` + tc.stream + `"max_output_tokens":20,"input":"draw a fox","tools":[{"type":"image_generation","size":"1024x1024","quality":"low"}]}`}, token)
			if got := e.get(token).TokenCounts["gpt-image"]; got != tc.images {
				t.Errorf("image family charged %d, want %d", got, tc.images)
			}
		})
	}
}
