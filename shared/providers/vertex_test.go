package providers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// The original's project:email:region:privateKey form: the key stored
// with \n escapes, the region from the entry, a token from the token
// endpoint, kept for the next request.
func TestVertexColonCredential(t *testing.T) {
	f := upstreamfake.Start(t, upstreamfake.Vertex)
	a := newVertexAuth()
	a.tokenURL = f.URL + upstreamfake.VertexTokenPath
	key := strings.ReplaceAll(string(upstreamfake.VertexPrivateKeyPEM()), "\n", `\n`)
	cred := "colon-proj:" + upstreamfake.ServiceAccountEmail("tg", "colon-proj") + ":europe-west4:" + key
	out := a.outbound("google", vertexGeminiTarget)
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1beta/models/gemini-2.5-pro:generateContent", nil)
		c := &Call{Upstream: Upstream{Base: f.URL, Settings: map[string]string{vertexRegionVar: "us-east5"}}, Cred: cred,
			Path: "/v1beta/models/gemini-2.5-pro:generateContent", Model: "gemini-2.5-pro", Body: []byte(body)}
		b, err := out(context.Background(), req, c)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(string(b))), int64(len(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !gjson.GetBytes(answer, "usageMetadata").Exists() {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, answer)
		}
	}
	last := f.Last(t)
	if want := "/v1/projects/colon-proj/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent"; last.Path != want {
		t.Errorf("path %s, want %s", last.Path, want)
	}
	if n := f.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for two calls, want 1", n)
	}
}

func TestVertexCredentialErrors(t *testing.T) {
	f := upstreamfake.Start(t, upstreamfake.Vertex)
	email := upstreamfake.ServiceAccountEmail("tg", "p")
	key := string(upstreamfake.VertexPrivateKeyPEM())
	block, _ := pem.Decode([]byte(key))
	b64Key := base64.StdEncoding.EncodeToString(block.Bytes)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	sa := func(edit func(m map[string]any)) string {
		var m map[string]any
		_ = json.Unmarshal(f.ServiceAccountJSON("tg", "p"), &m)
		edit(m)
		raw, _ := json.Marshal(m)
		return base64.StdEncoding.EncodeToString(raw)
	}
	cases := []struct{ cred, want string }{
		{"not-a-credential", "neither adc, project:email:region:privateKey nor a base64 service-account JSON"},
		{"not a credential!", "neither adc, project:email:region:privateKey nor a base64 service-account JSON"},
		{base64.StdEncoding.EncodeToString([]byte(`{"type":"authorized_user"}`)), "not a service-account JSON key"},
		{sa(func(m map[string]any) { delete(m, "project_id") }), "has no project_id"},
		{sa(func(m map[string]any) { m["private_key"] = ecPEM }), "not an RSA key"},
		{"p::us-east5:" + key, "is not project:email:region:privateKey"},
		{"p:" + email + ":evil.example/x:" + key, "third part is not a region"},
		// Key and region swapped: the key is in the region's place.
		{"p:" + email + ":" + b64Key + ":us-east5", "third part is not a region"},
		{"p:" + email + ":us-east5:not base64!", "not base64"},
		{"p:" + email + ":us-east5:" + base64.StdEncoding.EncodeToString([]byte("junk")), "not a PKCS#8 key"},
		{"p:" + email + ":us-east5:" + ecPEM, "not an RSA key"},
	}
	for _, tc := range cases {
		_, err := newVertexAuth().credential(tc.cred)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("credential %.40q: error %v, want one saying %q", tc.cred, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), "GCP_CREDENTIALS") || strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), b64Key[:40]) {
			t.Errorf("error %q must name the variable and never show the key", err)
		}
	}
}

// A request Vertex cannot take is the client's error, not the operator's.
func TestVertexNoModel(t *testing.T) {
	f := upstreamfake.Start(t, upstreamfake.Vertex)
	req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/messages", nil)
	c := &Call{Upstream: Upstream{Base: f.URL, Settings: map[string]string{vertexRegionVar: "us-east5"}},
		Cred: base64.StdEncoding.EncodeToString(f.ServiceAccountJSON("tg", "p")), Path: "/v1/messages", Body: []byte(`{"max_tokens":5}`)}
	_, err := newVertexAuth().outbound("anthropic", vertexClaudeTarget)(context.Background(), req, c)
	if users.AsError(err).Code != users.CodeInvalid {
		t.Errorf("a request without a model: %v, want an invalid-request error", err)
	}
}

func TestVertexClaudeTarget(t *testing.T) {
	model, method, body, err := vertexClaudeTarget(&Call{Path: "/v1/messages", Model: "claude-sonnet-4-5@20250929", Stream: true,
		Body: []byte(`{"model":"claude-sonnet-4-5@20250929","max_tokens":5,"stream":true,"messages":[]}`)})
	if err != nil || model != "claude-sonnet-4-5@20250929" || method != "streamRawPredict" {
		t.Fatalf("%s %s %v", model, method, err)
	}
	if gjson.GetBytes(body, "model").Exists() || gjson.GetBytes(body, "anthropic_version").String() != "vertex-2023-10-16" || gjson.GetBytes(body, "max_tokens").Int() != 5 {
		t.Errorf("body %s: want no model, the Vertex version, the rest kept", body)
	}
	model, method, body, _ = vertexClaudeTarget(&Call{Path: "/v1/messages/count_tokens", Model: "claude-opus-4-1-20250805", Body: []byte(`{"model":"claude-opus-4-1-20250805","messages":[]}`)})
	if model != "count-tokens" || method != "rawPredict" || gjson.GetBytes(body, "model").String() != "claude-opus-4-1@20250805" ||
		gjson.GetBytes(body, "anthropic_version").String() != "vertex-2023-10-16" {
		t.Errorf("count tokens: %s %s %s", model, method, body)
	}
	if _, _, _, err := vertexGeminiTarget(&Call{Path: "/v1beta/models/gemini-2.5-pro:embedContent", Model: "gemini-2.5-pro"}); err == nil {
		t.Error("an unserved Gemini method was mapped")
	}
}

func TestVertexClaudeModel(t *testing.T) {
	for in, want := range map[string]string{
		"claude-sonnet-4-5-20250929":    "claude-sonnet-4-5@20250929",
		"claude-3-5-sonnet-v2-20241022": "claude-3-5-sonnet-v2@20241022",
		"claude-sonnet-4-5@20250929":    "claude-sonnet-4-5@20250929",
		"claude-sonnet-4-5":             "claude-sonnet-4-5",
		"claude-opus-4-1-2025":          "claude-opus-4-1-2025",
		"x-claude-opus-4-1-20250805":    "x-claude-opus-4-1-20250805",
	} {
		if got := vertexClaudeModel(in); got != want {
			t.Errorf("vertexClaudeModel(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestVertexBase(t *testing.T) {
	cases := []struct{ base, region, want string }{
		{"https://{region}-aiplatform.googleapis.com", "us-east5", "https://us-east5-aiplatform.googleapis.com"},
		{"https://{region}-aiplatform.googleapis.com", "global", "https://aiplatform.googleapis.com"},
		{"http://127.0.0.1:9999", "europe-west1", "http://127.0.0.1:9999"},
	}
	for _, tc := range cases {
		if got := vertexBase(tc.base, tc.region); got != tc.want {
			t.Errorf("vertexBase(%s, %s) = %s, want %s", tc.base, tc.region, got, tc.want)
		}
	}
	for region, ok := range map[string]bool{"us-east5": true, "europe-west1": true, "global": true, "us": true,
		"": false, "US-EAST5": false, "us-east5.evil.example": false, "us-east5/x": false} {
		if got := checkVertexRegion(region) == nil; got != ok {
			t.Errorf("region %q accepted %v, want %v", region, got, ok)
		}
	}
}

func TestVertexKeyDead(t *testing.T) {
	cases := []struct {
		status int
		body   string
		dead   bool
	}{
		{401, `{"error":{"code":401,"status":"UNAUTHENTICATED"}}`, true},
		{403, `{"error":{"code":403,"status":"PERMISSION_DENIED","details":[{"reason":"IAM_PERMISSION_DENIED"}]}}`, true},
		{403, `{"error":{"code":403,"status":"PERMISSION_DENIED","details":[{"reason":"BILLING_DISABLED"}]}}`, true},
		{403, `{"error":{"code":403,"message":"Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro' (or it may not exist).","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IAM_PERMISSION_DENIED","domain":"aiplatform.googleapis.com","metadata":{"permission":"aiplatform.endpoints.predict","resource":"projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro"}}]}}`, true},
		// Another permission is about a resource the request named (a
		// user's cachedContent of another project): the request's.
		{403, `{"error":{"code":403,"message":"Permission 'aiplatform.cachedContents.get' denied on resource '//aiplatform.googleapis.com/projects/other/locations/us-central1/cachedContents/1' (or it may not exist).","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IAM_PERMISSION_DENIED","domain":"aiplatform.googleapis.com","metadata":{"permission":"aiplatform.cachedContents.get","resource":"projects/other/locations/us-central1/cachedContents/1"}}]}}`, false},
		{403, `{"error":{"code":403,"status":"PERMISSION_DENIED","message":"Anthropic models are not enabled for this organisation"}}`, false},
		{403, `{"error":{"code":403,"status":"PERMISSION_DENIED","details":[{"reason":"ACCESS_DENIED","metadata":{"resource":"BILLING_DISABLED"}}]}}`, false},
		{404, `{"error":{"code":404,"status":"NOT_FOUND","message":"Publisher Model was not found or your project does not have access to it."}}`, false},
		{429, `{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}`, false},
		{400, `{"type":"error","error":{"type":"invalid_request_error"}}`, false},
	}
	for _, tc := range cases {
		for _, p := range []*Provider{gcpClaude, gcpGemini} {
			if got := p.KeyDead(tc.status, []byte(tc.body)); got != tc.dead {
				t.Errorf("%s %d %s: dead %v, want %v", p.Name, tc.status, tc.body, got, tc.dead)
			}
		}
	}
}

// staticVertex is a vertexAuth whose one credential, "k", has a token
// already: Outbound without a token endpoint.
func staticVertex() *vertexAuth {
	a := newVertexAuth()
	a.creds["k"] = &vertexCred{name: "test", project: "p", tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "ya29.t", TokenType: "Bearer"})}
	return a
}

// Whatever model a client names, the request stays on the Vertex host,
// under the publisher's models, in one path segment: a model is never a
// way to another resource of the operator's project.
func FuzzVertexModel(f *testing.F) {
	for _, s := range []string{"claude-sonnet-4-5@20250929", "..", "../../endpoints/x", "a%2F..%2Fb", "x:predict", "a?b#c", "a b", "ü"} {
		f.Add(s)
	}
	out := staticVertex().outbound("anthropic", vertexClaudeTarget)
	const prefix = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/"
	f.Fuzz(func(t *testing.T, model string) {
		body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 5, "messages": []any{}})
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/messages", nil)
		c := &Call{Upstream: Upstream{Base: "https://{region}-aiplatform.googleapis.com", Settings: map[string]string{vertexRegionVar: "us-east5"}},
			Cred: "k", Path: "/v1/messages", Model: model, Body: body}
		sent, err := out(context.Background(), req, c)
		if model == "" {
			if err == nil {
				t.Fatal("no model, no error")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(req.URL.String())
		if err != nil || u.Host != "us-east5-aiplatform.googleapis.com" || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("model %q: URL %s (%v)", model, req.URL, err)
		}
		rest, ok := strings.CutPrefix(u.EscapedPath(), prefix)
		if !ok || strings.Contains(rest, "/") || !strings.HasSuffix(rest, ":rawPredict") {
			t.Fatalf("model %q: path %s", model, u.EscapedPath())
		}
		if gjson.GetBytes(sent, "model").Exists() || !gjson.ValidBytes(sent) {
			t.Fatalf("model %q: body %s", model, sent)
		}
	})
}

// The per-request work of a Vertex call once its token is cached: the
// body's two edits and the URL.
func BenchmarkVertexOutbound(b *testing.B) {
	out := staticVertex().outbound("anthropic", vertexClaudeTarget)
	body := []byte(`{"model":"claude-sonnet-4-5-20250929","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("lorem ipsum ", 400) + `"}]}`)
	c := &Call{Upstream: Upstream{Base: "https://{region}-aiplatform.googleapis.com", Settings: map[string]string{vertexRegionVar: "us-east5"}},
		Cred: "k", Path: "/v1/messages", Model: "claude-sonnet-4-5-20250929", Stream: true, Body: body}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/messages", nil)
		if _, err := out(context.Background(), req, c); err != nil {
			b.Fatal(err)
		}
	}
}

type countingSource struct {
	calls    int
	lifetime time.Duration
}

func (s *countingSource) Token() (*oauth2.Token, error) {
	s.calls++
	return &oauth2.Token{AccessToken: fmt.Sprintf("ya29.%d", s.calls), TokenType: "Bearer", Expiry: time.Now().Add(s.lifetime)}, nil
}

// A token is reused until two minutes before it expires, never later; ADC
// not found is said so and looked for again at the next request.
func TestVertexTokenReuse(t *testing.T) {
	call := func(a *vertexAuth) (string, error) {
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1beta/models/gemini-2.5-flash:generateContent", nil)
		_, err := a.outbound("google", vertexGeminiTarget)(context.Background(), req, &Call{
			Upstream: Upstream{Base: "https://{region}-aiplatform.googleapis.com", Settings: map[string]string{vertexRegionVar: "global"}},
			Cred:     "adc", Path: "/v1beta/models/gemini-2.5-flash:generateContent", Model: "gemini-2.5-flash", Body: []byte(`{}`)})
		if err != nil {
			return "", err
		}
		if req.URL.String() != "https://aiplatform.googleapis.com/v1/projects/adc-proj/locations/global/publishers/google/models/gemini-2.5-flash:generateContent" {
			t.Errorf("URL %s", req.URL)
		}
		return req.Header.Get("Authorization"), nil
	}
	for _, tc := range []struct {
		lifetime time.Duration
		fetches  int
	}{{time.Hour, 1}, {tokenEarly + 5*time.Second, 1}, {tokenEarly - 5*time.Second, 3}} {
		src := &countingSource{lifetime: tc.lifetime}
		found := 0
		a := newVertexAuth()
		a.findDefault = func(context.Context, ...string) (*google.Credentials, error) {
			if found++; found == 1 {
				return nil, errors.New("could not find default credentials")
			}
			return &google.Credentials{ProjectID: "adc-proj", TokenSource: src}, nil
		}
		if _, err := call(a); err == nil || !strings.Contains(err.Error(), "GCP_CREDENTIALS=adc: no Application Default Credentials") {
			t.Errorf("ADC missing: %v", err)
		}
		var auth string
		for range 3 {
			h, err := call(a)
			if err != nil {
				t.Fatal(err)
			}
			auth = h
		}
		if src.calls != tc.fetches || auth != fmt.Sprintf("Bearer ya29.%d", tc.fetches) {
			t.Errorf("tokens living %v: %d fetched for 3 calls (last sent %q), want %d", tc.lifetime, src.calls, auth, tc.fetches)
		}
	}
}
