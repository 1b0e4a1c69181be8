package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"google.golang.org/genai"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

const vertexProject = "tollgate-test"

// vertexEnv serves both Vertex mounts from a Vertex fake with the given
// credentials (nil: one service-account JSON of the fake's project).
func vertexEnv(t *testing.T, creds func(f *upstreamfake.Fake) string, vars map[string]string) (*env, *upstreamfake.Fake) {
	t.Helper()
	f := upstreamfake.Start(t, upstreamfake.Vertex)
	if creds == nil {
		creds = func(f *upstreamfake.Fake) string { return saCred(f, "tollgate") }
	}
	all := map[string]string{"GCP_CREDENTIALS": creds(f), "GCP_VERTEX_BASE_URL": f.URL}
	for k, v := range vars {
		all[k] = v
	}
	e := newEnv(t, all)
	e.fakes[upstreamfake.Vertex] = f
	return e, f
}

// saCred is a base64 service-account JSON for account name.
func saCred(f *upstreamfake.Fake, name string) string {
	return base64.StdEncoding.EncodeToString(f.ServiceAccountJSON(name, vertexProject))
}

// generations are the fake's requests other than token requests.
func generations(f *upstreamfake.Fake) []upstreamfake.Request {
	var out []upstreamfake.Request
	for _, r := range f.Requests() {
		if r.Path != upstreamfake.VertexTokenPath {
			out = append(out, r)
		}
	}
	return out
}

func TestVertexClaudeSDK(t *testing.T) {
	e, up := vertexEnv(t, nil, map[string]string{"GCP_REGION": "europe-west1"})
	token := e.user(users.Patch{})
	client := anthropic.NewClient(
		aoption.WithBaseURL(e.srv.URL+"/proxy/gcp/claude"),
		aoption.WithAPIKey(token),
		aoption.WithMaxRetries(0),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	const model = "claude-sonnet-4-5@20250929"
	params := anthropic.MessageNewParams{
		Model:     model,
		MaxTokens: 200,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))},
	}
	base := "/v1/projects/" + vertexProject + "/locations/europe-west1/publishers/anthropic/models/"

	t.Run("non-streamed", func(t *testing.T) {
		msg, err := client.Messages.New(ctx, params, aoption.WithHeader("anthropic-beta", "interleaved-thinking-2025-05-14"))
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake upstream!" || msg.Model != model {
			t.Errorf("message %+v", msg)
		}
		last := up.Last(t)
		if last.Path != base+model+":rawPredict" {
			t.Errorf("upstream path %s", last.Path)
		}
		sent := last.JSON()
		if _, has := sent["model"]; has || sent["anthropic_version"] != "vertex-2023-10-16" || sent["max_tokens"] != float64(200) {
			t.Errorf("upstream body %s", last.Body)
		}
		if last.Header.Get("Anthropic-Beta") != "interleaved-thinking-2025-05-14" || last.Header.Get("Anthropic-Version") != "" {
			t.Errorf("upstream saw anthropic-beta %q, anthropic-version %q; want the beta only", last.Header.Get("Anthropic-Beta"), last.Header.Get("Anthropic-Version"))
		}
		if !strings.HasPrefix(last.Header.Get("Authorization"), "Bearer ya29.fake-") || last.Header.Get("X-Api-Key") != "" {
			t.Errorf("upstream headers %v", last.Header)
		}
		if u := e.get(token); u.PromptCount != 1 || u.TokenCounts["gcp-claude"] != 18 {
			t.Errorf("charged: promptCount %d, counts %v; want 1 and gcp-claude=18", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		hold := make(chan struct{})
		up.Set(upstreamfake.Behavior{HoldAfterFirst: hold, InputTokens: 30, OutputTokens: 12})
		defer up.Set(upstreamfake.Behavior{})
		stream := client.Messages.NewStreaming(ctx, params)
		var msg anthropic.Message
		var text strings.Builder
		released := false
		for stream.Next() {
			ev := stream.Current()
			if err := msg.Accumulate(ev); err != nil {
				t.Fatal(err)
			}
			if d, ok := ev.AsAny().(anthropic.ContentBlockDeltaEvent); ok {
				text.WriteString(d.Delta.Text)
				if !released {
					// The first words arrived while Vertex holds the rest.
					if up.InFlight() != 1 {
						t.Errorf("upstream in flight %d while the first chunk was read", up.InFlight())
					}
					close(hold)
					released = true
				}
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != "Hello from the fake upstream!" || msg.Usage.InputTokens != 30 || msg.Usage.OutputTokens != 12 {
			t.Errorf("streamed %q, usage %+v", text.String(), msg.Usage)
		}
		if p := up.Last(t).Path; p != base+model+":streamRawPredict" {
			t.Errorf("upstream path %s", p)
		}
		if u := e.get(token); u.PromptCount != 2 || u.TokenCounts["gcp-claude"] != 18+42 {
			t.Errorf("charged: promptCount %d, counts %v; want 2 and gcp-claude=60", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("opus family, named as Anthropic names it", func(t *testing.T) {
		p := params
		p.Model = "claude-opus-4-1-20250805"
		if _, err := client.Messages.New(ctx, p); err != nil {
			t.Fatal(err)
		}
		if path := up.Last(t).Path; path != base+"claude-opus-4-1@20250805:rawPredict" {
			t.Errorf("upstream path %s", path)
		}
		if u := e.get(token); u.TokenCounts["gcp-claude-opus"] != 18 || u.TokenCounts["gcp-claude"] != 60 {
			t.Errorf("counts %v; want gcp-claude-opus=18", u.TokenCounts)
		}
	})

	t.Run("count tokens", func(t *testing.T) {
		n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: model, Messages: params.Messages})
		if err != nil {
			t.Fatal(err)
		}
		last := up.Last(t)
		if n.InputTokens != 11 || last.Path != base+"count-tokens:rawPredict" || last.JSON()["model"] != model {
			t.Errorf("count %d; upstream %s %s", n.InputTokens, last.Path, last.Body)
		}
		if u := e.get(token); u.PromptCount != 3 {
			t.Errorf("counting tokens was charged: promptCount %d", u.PromptCount)
		}
	})

	// One access token served every call.
	if n := up.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for %d calls, want 1", n, len(generations(up)))
	}
	e.neverSaw(token)
}

func TestVertexGeminiSDK(t *testing.T) {
	e, up := vertexEnv(t, nil, nil)
	token := e.user(users.Patch{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	client, err := genai.NewClient(ctx, &genai.ClientConfig{
		APIKey:      token,
		Backend:     genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: e.srv.URL + "/proxy/gcp/gemini"},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := "/v1/projects/" + vertexProject + "/locations/us-east5/publishers/google/models/"

	t.Run("non-streamed", func(t *testing.T) {
		resp, err := client.Models.GenerateContent(ctx, "gemini-2.5-flash", genai.Text("Say hello."), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Text() != "Hello from the fake upstream!" || resp.UsageMetadata.TotalTokenCount != 18 {
			t.Errorf("answer %q, usage %+v", resp.Text(), resp.UsageMetadata)
		}
		last := up.Last(t)
		if last.Path != base+"gemini-2.5-flash:generateContent" || !strings.HasPrefix(last.Header.Get("Authorization"), "Bearer ya29.fake-") {
			t.Errorf("upstream saw %s with Authorization %q", last.Path, last.Header.Get("Authorization"))
		}
		if last.Header.Get("X-Goog-Api-Key") != "" || last.Header.Get("Content-Type") != "application/json" {
			t.Errorf("upstream saw x-goog-api-key %q, content-type %q", last.Header.Get("X-Goog-Api-Key"), last.Header.Get("Content-Type"))
		}
		if u := e.get(token); u.PromptCount != 1 || u.TokenCounts["gcp-gemini-flash"] != 18 {
			t.Errorf("charged: promptCount %d, counts %v; want 1 and gcp-gemini-flash=18", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		hold := make(chan struct{})
		up.Set(upstreamfake.Behavior{HoldAfterFirst: hold, InputTokens: 20, OutputTokens: 9, ReasoningTokens: 4})
		defer up.Set(upstreamfake.Behavior{})
		var text strings.Builder
		released := false
		for resp, err := range client.Models.GenerateContentStream(ctx, "gemini-2.5-pro", genai.Text("Say hello."), nil) {
			if err != nil {
				t.Fatal(err)
			}
			text.WriteString(resp.Text())
			if !released {
				if up.InFlight() != 1 {
					t.Errorf("upstream in flight %d while the first chunk was read", up.InFlight())
				}
				close(hold)
				released = true
			}
		}
		if text.String() != "Hello from the fake upstream!" {
			t.Errorf("streamed %q", text.String())
		}
		last := up.Last(t)
		if last.Path != base+"gemini-2.5-pro:streamGenerateContent" || last.RawQuery != "alt=sse" {
			t.Errorf("upstream saw %s?%s", last.Path, last.RawQuery)
		}
		if u := e.get(token); u.PromptCount != 2 || u.TokenCounts["gcp-gemini-pro"] != 20+9+4 {
			t.Errorf("charged: promptCount %d, counts %v; want 2 and gcp-gemini-pro=33", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("count tokens", func(t *testing.T) {
		n, err := client.Models.CountTokens(ctx, "gemini-2.5-flash", genai.Text("Say hello."), nil)
		if err != nil {
			t.Fatal(err)
		}
		if n.TotalTokens != 11 || up.Last(t).Path != base+"gemini-2.5-flash:countTokens" {
			t.Errorf("count %d, upstream %s", n.TotalTokens, up.Last(t).Path)
		}
		if u := e.get(token); u.PromptCount != 2 {
			t.Errorf("counting tokens was charged: promptCount %d", u.PromptCount)
		}
	})

	if n := up.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	e.neverSaw(token)
}

// The token endpoint down: the client hears that the operator's
// credentials could not be used (the reason goes to the log), nothing is
// charged, nothing reaches Vertex.
func TestVertexTokenEndpointDown(t *testing.T) {
	dead := closedURL(t)
	e, up := vertexEnv(t, func(f *upstreamfake.Fake) string {
		var m map[string]any
		_ = json.Unmarshal(f.ServiceAccountJSON("tollgate", vertexProject), &m)
		m["token_uri"] = dead + "/token"
		raw, _ := json.Marshal(m)
		return base64.StdEncoding.EncodeToString(raw)
	}, nil)
	token := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/gcp/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
		body: `{"model":"claude-sonnet-4-5@20250929","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`})
	if a.status != http.StatusBadGateway {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	m := a.json(t)
	if dig(m, "type") != "error" || !strings.Contains(dig(m, "error", "message").(string), "could not be authorised") {
		t.Errorf("answer %s", a.body)
	}
	if strings.Contains(string(a.body), dead) {
		t.Error("the answer names the token endpoint")
	}
	logs := e.logs.String()
	mustContain(t, "log", logs, "GCP_CREDENTIALS ("+upstreamfake.ServiceAccountEmail("tollgate", vertexProject)+")")
	if strings.Contains(logs, "PRIVATE KEY") || strings.Contains(logs, "MII") {
		t.Error("the log shows the private key")
	}
	if up.Count() != 0 {
		t.Errorf("Vertex saw %d requests", up.Count())
	}
	if u := e.get(token); u.PromptCount != 0 || len(u.TokenCounts) != 0 {
		t.Errorf("charged %d %v", u.PromptCount, u.TokenCounts)
	}
}

// A credential Vertex refuses (IAM) is set aside and the next one answers;
// a refusal of the request (a quota) is relayed in the client's shape and
// the credential stays.
func TestVertexKeyRotation(t *testing.T) {
	e, up := vertexEnv(t, func(f *upstreamfake.Fake) string { return saCred(f, "denied") + "," + saCred(f, "tollgate") }, nil)
	denied := upstreamfake.ServiceAccountEmail("denied", vertexProject)
	up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{denied: http.StatusForbidden}})
	token := e.user(users.Patch{})
	body := `{"model":"claude-sonnet-4-5@20250929","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	for i := range 3 {
		a := e.do(call{path: "/proxy/gcp/claude/v1/messages", header: map[string]string{"X-Api-Key": token}, body: body})
		if a.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, a.status, a.body)
		}
	}
	// The denied account was tried once, then set aside.
	if n := len(generations(up)); n != 4 {
		t.Errorf("%d generation requests for 3 calls, want 4 (one refused)", n)
	}
	mustContain(t, "log", e.logs.String(), "set aside")

	// Rechecked a few minutes later with a GET of the project's endpoint
	// list, the account works again and is back in service.
	up.Set(upstreamfake.Behavior{})
	e.clock.Advance(6 * time.Minute)
	if a := e.do(call{path: "/proxy/gcp/claude/v1/messages", header: map[string]string{"X-Api-Key": token}, body: body}); a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.body)
	}
	e.logs.waitLines(t, "back in service", 1)
	check := up.Last(t)
	for _, r := range generations(up) {
		if r.Method == http.MethodGet {
			check = r
		}
	}
	if check.Method != http.MethodGet || check.Path != "/v1/projects/"+vertexProject+"/locations/us-east5/endpoints" {
		t.Errorf("the recheck asked %s %s", check.Method, check.Path)
	}

	up.Set(upstreamfake.Behavior{Status: http.StatusTooManyRequests})
	a := e.do(call{path: "/proxy/gcp/claude/v1/messages", header: map[string]string{"X-Api-Key": token}, body: body})
	m := a.json(t)
	if a.status != http.StatusTooManyRequests || dig(m, "type") != "error" || dig(m, "error", "type") != "rate_limit_error" ||
		dig(m, "error", "message") != "The fake upstream was told to fail." {
		t.Errorf("a Vertex quota error reached the client as %d %s; want Anthropic's shape", a.status, a.body)
	}
	if u := e.get(token); u.TokenCounts["gcp-claude"] != 4*18 {
		t.Errorf("counts %v", u.TokenCounts)
	}
}

// A malformed entry is the operator's to fix: the client hears so, the
// log says what is wrong.
func TestVertexMalformedCredential(t *testing.T) {
	e, up := vertexEnv(t, func(*upstreamfake.Fake) string { return "my-proj:not-an-email:us-east5:key" }, nil)
	token := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:generateContent", header: map[string]string{"X-Goog-Api-Key": token},
		body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`})
	if a.status != http.StatusBadGateway || dig(a.json(t), "error", "status") != "UNAVAILABLE" {
		t.Errorf("%d %s", a.status, a.body)
	}
	mustContain(t, "log", e.logs.String(), "GCP_CREDENTIALS: an entry is not project:email:region:privateKey")
	if up.Count() != 0 {
		t.Errorf("Vertex saw %d requests", up.Count())
	}
}

func TestVertexBadRequests(t *testing.T) {
	e, up := vertexEnv(t, nil, nil)
	token := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/gcp/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
		body: `{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`})
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "names no model") {
		t.Errorf("a request without a model: %d %s", a.status, a.body)
	}
	// A body naming another model than the path would run it (Vertex
	// maps the body over the path), counted in the path's family.
	a = e.do(call{path: "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:generateContent", header: map[string]string{"X-Goog-Api-Key": token},
		body: `{"model":"projects/p/locations/us-east5/publishers/google/models/gemini-2.5-pro","contents":[{"parts":[{"text":"hi"}]}]}`})
	if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "name it in the path only") {
		t.Errorf("a body naming another model: %d %s", a.status, a.body)
	}
	// Vertex lists no Gemini models in Google AI's shape: not served.
	a = e.do(call{method: http.MethodGet, path: "/proxy/gcp/gemini/v1beta/models", header: map[string]string{"X-Goog-Api-Key": token}})
	if a.status != http.StatusNotFound {
		t.Errorf("GET models: %d %s", a.status, a.body)
	}
	if len(generations(up)) != 0 {
		t.Errorf("Vertex saw %d requests", len(generations(up)))
	}
}

// Vertex names a model the project cannot call by its full resource name,
// the operator's project in it; any token holder can provoke it. The
// 404 is relayed with the status and the model, the project hidden, on
// every route and in every shape, as an AWS account is.
func TestVertexErrorsHideTheProject(t *testing.T) {
	e, up := vertexEnv(t, nil, map[string]string{"ALLOWED_MODEL_FAMILIES": "gcp-claude,gcp-gemini-flash"})
	token := e.user(users.Patch{})
	up.Set(upstreamfake.Behavior{Status: http.StatusNotFound})
	for _, c := range []call{
		{path: "/proxy/gcp/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
			body: `{"model":"claude-none-1","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`},
		{path: "/proxy/gcp/gemini/v1beta/models/gemini-none-1:generateContent", header: map[string]string{"X-Goog-Api-Key": token},
			body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`},
		{path: "/proxy/gcp/gemini/v1beta/models/gemini-none-1:streamGenerateContent?alt=sse", header: map[string]string{"X-Goog-Api-Key": token},
			body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`},
		{path: "/proxy/gcp/claude/v1/chat/completions", header: bearerH(token),
			body: `{"model":"claude-none-1","messages":[{"role":"user","content":"hi"}]}`},
		{path: "/proxy/gcp/gemini/v1/chat/completions", header: bearerH(token),
			body: `{"model":"gemini-none-1","messages":[{"role":"user","content":"hi"}]}`},
	} {
		a := e.do(c)
		if a.status != http.StatusNotFound || !strings.Contains(string(a.body), "none-1") {
			t.Errorf("%s: %d %s", c.path, a.status, a.body)
		}
		if strings.Contains(string(a.body), vertexProject) {
			t.Errorf("%s: the answer names the project: %s", c.path, a.body)
		}
	}
}

// GCP_CREDENTIALS=adc: the function's own identity, found by Application
// Default Credentials (here a key file named by GOOGLE_APPLICATION_CREDENTIALS,
// on Cloud Functions the metadata server); no key in the configuration.
func TestVertexADC(t *testing.T) {
	e, up := vertexEnv(t, func(f *upstreamfake.Fake) string {
		path := filepath.Join(t.TempDir(), "adc.json")
		if err := os.WriteFile(path, f.ServiceAccountJSON("runtime", vertexProject), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
		return "adc"
	}, nil)
	token := e.user(users.Patch{})
	for range 2 {
		// A client that names no JSON type still reaches Vertex as JSON.
		a := e.do(call{path: "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:generateContent", header: map[string]string{"X-Goog-Api-Key": token, "Content-Type": "text/plain"},
			body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`})
		if a.status != http.StatusOK {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if ct := up.Last(t).Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("upstream content-type %q", ct)
		}
	}
	if n := up.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
	if u := e.get(token); u.TokenCounts["gcp-gemini-flash"] != 36 {
		t.Errorf("counts %v", u.TokenCounts)
	}
}

// The service info lists both mounts with the base URL each SDK takes;
// ERROR_FORMAT=completion turns a Vertex refusal into an answer in the
// client's format; Gemini's JSON-array stream (no alt=sse) is charged.
func TestVertexInfoErrorsAndArrayStream(t *testing.T) {
	e, up := vertexEnv(t, nil, map[string]string{"ERROR_FORMAT": "completion"})
	token := e.user(users.Patch{})
	a := e.do(call{method: http.MethodGet, path: "/proxy/"})
	var info struct {
		Providers []struct {
			Provider string   `json:"provider"`
			BaseURL  string   `json:"baseUrl"`
			Families []string `json:"families"`
		} `json:"providers"`
	}
	if err := json.Unmarshal(a.body, &info); err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, p := range info.Providers {
		found[p.Provider] = p.BaseURL + " " + strings.Join(p.Families, ",")
	}
	for mount, families := range map[string]string{"gcp/claude": "gcp-claude,gcp-claude-opus", "gcp/gemini": "gcp-gemini-flash,gcp-gemini-pro"} {
		if !strings.HasSuffix(found[mount], "/proxy/"+mount+" "+families) {
			t.Errorf("info for %s: %q", mount, found[mount])
		}
	}

	up.Set(upstreamfake.Behavior{Status: http.StatusTooManyRequests})
	a = e.do(call{path: "/proxy/gcp/claude/v1/messages", header: map[string]string{"X-Api-Key": token},
		body: `{"model":"claude-sonnet-4-5@20250929","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`})
	m := a.json(t)
	if a.status != http.StatusOK || dig(m, "type") != "message" || !strings.Contains(string(a.body), "429 from Vertex AI (Claude)") {
		t.Errorf("ERROR_FORMAT=completion: %d %s", a.status, a.body)
	}

	up.Set(upstreamfake.Behavior{InputTokens: 5, OutputTokens: 3})
	a = e.do(call{path: "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", header: map[string]string{"X-Goog-Api-Key": token},
		body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`})
	var chunks []map[string]any
	if err := json.Unmarshal(a.body, &chunks); a.status != http.StatusOK || err != nil || len(chunks) != 3 {
		t.Fatalf("array stream: %d %v %s", a.status, err, a.body)
	}
	if up.Last(t).RawQuery != "" {
		t.Errorf("upstream query %q", up.Last(t).RawQuery)
	}
	if u := e.get(token); u.TokenCounts["gcp-gemini-flash"] != 8 || u.TokenCounts["gcp-claude"] != 0 {
		t.Errorf("counts %v; want gcp-gemini-flash=8 and nothing for the refusal", u.TokenCounts)
	}
}
