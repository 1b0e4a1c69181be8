package providers

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
)

// listAnswer is a native 2xx model list as the transport hands it over,
// req being the request it answers.
func listAnswer(req *http.Request, status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {ContentJSON}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}
}

// openAIIDs reads an OpenAI list's ids, checking every entry's shape.
func openAIIDs(t *testing.T, resp *http.Response) []string {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentLength != int64(len(body)) || gjson.GetBytes(body, "object").String() != "list" {
		t.Fatalf("list %s (length %d)", body, resp.ContentLength)
	}
	ids := []string{}
	for _, m := range gjson.GetBytes(body, "data").Array() {
		if m.Get("object").String() != "model" || !m.Get("created").Exists() || m.Get("owned_by").String() == "" {
			t.Errorf("entry %s", m.Raw)
		}
		ids = append(ids, m.Get("id").String())
	}
	return ids
}

const foundationModels = `{"modelSummaries":[
	{"modelId":"anthropic.claude-3-haiku-20240307-v1:0","providerName":"Anthropic","inferenceTypesSupported":["ON_DEMAND"]},
	{"modelId":"anthropic.claude-3-haiku-20240307-v1:0:200k","providerName":"Anthropic","inferenceTypesSupported":["PROVISIONED"]},
	{"modelId":"anthropic.claude-sonnet-4-5-20250929-v1:0","providerName":"Anthropic","inferenceTypesSupported":["INFERENCE_PROFILE"]},
	{"modelId":"anthropic.claude-v2","providerName":"Anthropic"},
	{"modelId":"anthropic.claude-v2","providerName":"Anthropic","inferenceTypesSupported":["ON_DEMAND"]},
	{"modelId":"mistral.mistral-large-2407-v1:0","providerName":"Mistral AI","inferenceTypesSupported":["ON_DEMAND","PROVISIONED"]},
	{"modelId":"meta.llama3-8b-instruct-v1:0","providerName":"Meta","inferenceTypesSupported":["ON_DEMAND"]},
	{"providerName":"Anthropic"}
]}`

// Bedrock's list becomes OpenAI's: the mount's vendor's models only, by
// the IDs the mount takes (the credential region's profile where Bedrock
// serves a model through profiles only), provisioned-only ones left out;
// the native list stays beside.
func TestBedrockModels(t *testing.T) {
	signed := func(region string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, "https://bedrock.example/foundation-models", nil)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261202/"+region+"/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
		return req
	}
	for region, want := range map[string]string{
		"us-east-1":  "anthropic.claude-3-haiku-20240307-v1:0 us.anthropic.claude-sonnet-4-5-20250929-v1:0 anthropic.claude-v2",
		"eu-west-3":  "anthropic.claude-3-haiku-20240307-v1:0 eu.anthropic.claude-sonnet-4-5-20250929-v1:0 anthropic.claude-v2",
		"ap-south-1": "anthropic.claude-3-haiku-20240307-v1:0 apac.anthropic.claude-sonnet-4-5-20250929-v1:0 anthropic.claude-v2",
	} {
		resp := listAnswer(signed(region), http.StatusOK, foundationModels)
		if err := awsClaude.Routes[len(awsClaude.Routes)-1].Translate.Response(resp, nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(openAIIDs(t, resp), " "); got != want {
			t.Errorf("%s: ids %s, want %s", region, got, want)
		}
	}
	ep, _ := awsMistral.Match(http.MethodGet, "/v1/models")
	resp := listAnswer(signed("us-west-2"), http.StatusOK, foundationModels)
	if err := ep.Translate.Response(resp, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(openAIIDs(t, resp), " "); got != "mistral.mistral-large-2407-v1:0" {
		t.Errorf("Mistral ids %s", got)
	}

	// Errors pass as they are; a 2xx that is no JSON object is an error.
	ep, _ = awsClaude.Match(http.MethodGet, "/v1/models")
	const refused = `{"type":"error","error":{"type":"permission_error","message":"no"}}`
	resp = listAnswer(signed("us-east-1"), http.StatusForbidden, refused)
	if err := ep.Translate.Response(resp, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != refused {
		t.Errorf("an error became %s", b)
	}
	if err := ep.Translate.Response(listAnswer(signed("us-east-1"), http.StatusOK, `[1]`), nil); err == nil {
		t.Error("a list that is not an object was translated")
	}
}

func TestSignedRegion(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	for auth, want := range map[string]string{
		"AWS4-HMAC-SHA256 Credential=AKID/20261202/eu-central-1/bedrock/aws4_request, SignedHeaders=host, Signature=00": "eu-central-1",
		"Bearer x": "",
		"AWS4-HMAC-SHA256 Credential=AKID/eu-central-1, Signature=00": "",
	} {
		req.Header.Set("Authorization", auth)
		if got := signedRegion(req); got != want {
			t.Errorf("%q: %q, want %q", auth, got, want)
		}
	}
	if signedRegion(nil) != "" {
		t.Error("a region without a request")
	}
}

// The model list goes to ListFoundationModels on the control plane's
// host, for the mount's vendor, signed for the credential's region.
func TestBedrockModelsOutbound(t *testing.T) {
	for p, want := range map[*Provider]string{
		awsClaude:  "https://bedrock.ap-northeast-1.amazonaws.com/foundation-models?byProvider=Anthropic",
		awsMistral: "https://bedrock.ap-northeast-1.amazonaws.com/foundation-models?byProvider=Mistral%20AI",
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://upstream.invalid/v1/models", nil)
		req.Header.Set("Authorization", "Bearer the-client's-token")
		body, err := p.Outbound(context.Background(), req, &Call{Upstream: Upstream{Base: bedrockEnv.DefaultBaseURL}, Cred: "AKID:secret:ap-northeast-1", Path: "/v1/models"})
		if err != nil {
			t.Fatal(err)
		}
		auth := req.Header.Get("Authorization")
		if got := req.URL.String(); got != want || body != nil || req.Method != http.MethodGet ||
			!strings.Contains(auth, "Credential=AKID/") || !strings.Contains(auth, "/ap-northeast-1/bedrock/aws4_request") {
			t.Errorf("%s: %s %s, body %q, Authorization %q", p.ID, req.Method, got, body, auth)
		}
	}
}

// The fake checks the signature, query included, and lists by provider.
func TestBedrockModelsSigned(t *testing.T) {
	f := upstreamfake.Start(t, upstreamfake.Bedrock)
	cred := "AKIDLIST:" + upstreamfake.BedrockSecret("AKIDLIST") + ":eu-west-1"
	vendors := map[*Provider]string{awsClaude: "anthropic", awsMistral: "mistral"}
	profiles := map[*Provider]int{awsClaude: 3} // the fake's profile-only models
	for p, want := range map[*Provider]int{awsClaude: 6, awsMistral: 4} {
		req, _ := http.NewRequest(http.MethodGet, "http://upstream.invalid/v1/models", nil)
		if err := p.Authorize(context.Background(), req, &Call{Upstream: Upstream{Base: f.URL + "/{region}"}, Cred: cred, Path: "/v1/models"}); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Inbound(resp, &Call{Cred: cred, Path: "/v1/models"}); err != nil {
			t.Fatal(err)
		}
		ep, _ := p.Match(http.MethodGet, "/v1/models")
		if err := ep.Translate.Response(resp, nil); err != nil {
			t.Fatal(err)
		}
		ids := openAIIDs(t, resp)
		if resp.StatusCode != http.StatusOK || len(ids) != want {
			t.Errorf("%s: %d, ids %v; want %d", p.ID, resp.StatusCode, ids, want)
		}
		eu := 0
		for _, id := range ids {
			if !servesVendor(id, vendors[p]) {
				t.Errorf("%s lists %s", p.ID, id)
			}
			if strings.HasPrefix(id, "eu.") {
				eu++
			}
		}
		if eu != profiles[p] {
			t.Errorf("%s: %d ids through eu. profiles in %v, want %d", p.ID, eu, ids, profiles[p])
		}
	}
}

// Vertex's publisher list becomes OpenAI's, by the names the mount takes:
// Claude's with its version date, Gemini's as they are.
func TestVertexModels(t *testing.T) {
	const list = `{"publisherModels":[
		{"name":"publishers/anthropic/models/claude-sonnet-4-5","versionId":"20250929"},
		{"name":"publishers/anthropic/models/claude-3-haiku@20240307","versionId":"20240307"},
		{"name":"publishers/anthropic/models/claude-next","versionId":"001"},
		{"name":"publishers/google/models/gemini-2.5-flash","versionId":"001"},
		{"name":"publishers/google/models/gemini-2.5-pro"},
		{"name":"publishers/anthropic/models/","versionId":"20250929"}
	],"nextPageToken":"more"}`
	for p, want := range map[*Provider]string{
		gcpClaude: "claude-sonnet-4-5@20250929 claude-3-haiku@20240307 claude-next",
		gcpGemini: "gemini-2.5-flash gemini-2.5-pro",
	} {
		ep, ok := p.Match(http.MethodGet, "/v1/models")
		if !ok || ep.Format != List {
			t.Fatalf("%s serves no model list", p.ID)
		}
		resp := listAnswer(nil, http.StatusOK, list)
		if err := ep.Translate.Response(resp, nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(openAIIDs(t, resp), " "); got != want {
			t.Errorf("%s: ids %s, want %s", p.ID, got, want)
		}
	}
}

// The list is the publisher's, at the credential's region, with a token;
// the page parameters pass, no other.
func TestVertexModelsOutbound(t *testing.T) {
	f := upstreamfake.Start(t, upstreamfake.Vertex)
	cred := base64.StdEncoding.EncodeToString(f.ServiceAccountJSON("tg", "p"))
	a := newVertexAuth()
	for publisher, p := range map[string]*Provider{"anthropic": gcpClaude, "google": gcpGemini} {
		ep, _ := p.Match(http.MethodGet, "/v1/models")
		q, err := ep.Query(map[string][]string{"pageSize": {"5"}, "filter": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://upstream.invalid/v1/models", nil)
		c := &Call{Upstream: Upstream{Base: "https://{region}-aiplatform.googleapis.com", Settings: map[string]string{vertexRegionVar: "europe-west4"}},
			Cred: cred, Path: "/v1/models", Query: q}
		target := vertexGeminiTarget
		if publisher == "anthropic" {
			target = vertexClaudeTarget
		}
		body, err := a.outbound(publisher, target)(context.Background(), req, c)
		if err != nil {
			t.Fatal(err)
		}
		want := "https://europe-west4-aiplatform.googleapis.com/v1beta1/publishers/" + publisher + "/models?pageSize=5"
		if got := req.URL.String(); got != want || body != nil || !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
			t.Errorf("%s: %s, body %q, Authorization %q", publisher, got, body, req.Header.Get("Authorization"))
		}
	}
}

// Whatever the services answer, a translated list is a JSON list or an
// error, never a panic.
func FuzzCloudModels(f *testing.F) {
	f.Add(foundationModels)
	f.Add(`{"publisherModels":[{"name":"publishers/anthropic/models/claude-sonnet-4-5","versionId":"20250929"}]}`)
	f.Add(`{"modelSummaries":[{"modelId":7,"inferenceTypesSupported":"ON_DEMAND"}],"data":3}`)
	f.Add(`{"publisherModels":{"name":null}}`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range []*Provider{awsClaude, awsMistral, gcpClaude, gcpGemini} {
			ep, _ := p.Match(http.MethodGet, "/v1/models")
			resp := listAnswer(nil, http.StatusOK, body)
			if err := ep.Translate.Response(resp, nil); err != nil {
				continue
			}
			out, _ := io.ReadAll(resp.Body)
			if !gjson.ValidBytes(out) || gjson.GetBytes(out, "object").String() != "list" || !gjson.GetBytes(out, "data").IsArray() {
				t.Fatalf("%s: %q became %s", p.ID, body, out)
			}
		}
	})
}
