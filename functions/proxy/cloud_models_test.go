package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// /aws/mistral lists Bedrock's Mistral models, uncharged, by IDs its chat
// route takes; the list is asked of the control plane, signed.
func TestBedrockMistralModelList(t *testing.T) {
	e, up := newBedrockEnv(t, awsCred("AKIDLISTM", "us-west-2"), nil)
	token := e.user(users.Patch{})
	client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/aws/mistral/v1"), option.WithAPIKey(token), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := up.Last(t)
	if last.Method != http.MethodGet || last.Path != "/us-west-2/foundation-models" || last.Query.Get("byProvider") != "Mistral AI" {
		t.Errorf("upstream %s %s?%s", last.Method, last.Path, last.RawQuery)
	}
	if len(page.Data) != 4 {
		t.Fatalf("models %s", page.RawJSON())
	}
	if u := e.get(token); u.PromptCount != 0 || len(u.TokenCounts) != 0 {
		t.Errorf("the list was charged: %+v", u)
	}
	for _, m := range page.Data {
		if !strings.HasPrefix(m.ID, "mistral.") || m.OwnedBy != "mistral" {
			t.Errorf("model %s", m.RawJSON())
		}
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: m.ID, MaxTokens: openai.Int(50),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}})
		if err != nil {
			t.Errorf("model %s listed, then: %v", m.ID, err)
		}
	}
	e.neverSaw(token)
}

// A Vertex list that fails is relayed with its status, in the mount's
// shape.
func TestVertexModelListErrors(t *testing.T) {
	e, _ := vertexEnv(t, nil, nil)
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.Vertex)
	up.Set(upstreamfake.Behavior{Status: http.StatusServiceUnavailable})
	defer up.Set(upstreamfake.Behavior{})
	a := e.do(call{method: http.MethodGet, path: "/proxy/gcp/claude/v1/models", header: bearerH(token)})
	if a.status != http.StatusServiceUnavailable || dig(a.json(t), "error", "message") != "The fake upstream was told to fail." || dig(a.json(t), "type") != "error" {
		t.Errorf("gcp/claude list: %d %s", a.status, a.body)
	}
	a = e.do(call{method: http.MethodGet, path: "/proxy/gcp/gemini/v1/models", header: bearerH(token)})
	if a.status != http.StatusServiceUnavailable || dig(a.json(t), "error", "status") != "UNAVAILABLE" {
		t.Errorf("gcp/gemini list: %d %s", a.status, a.body)
	}
	if last := up.Last(t); last.Path != "/v1beta1/publishers/google/models" {
		t.Errorf("upstream path %s", last.Path)
	}
}
