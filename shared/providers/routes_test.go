package providers

import (
	"net/url"
	"testing"
)

func TestRoutes(t *testing.T) {
	provs := map[string]*Provider{}
	for _, p := range All() {
		provs[string(p.ID)] = p
	}
	cases := []struct {
		prov, method, path string
		route              string // "" when unknown
		model              string
		stream             bool
	}{
		{"openai", "POST", "/v1/chat/completions", "POST /openai/v1/chat/completions", "", false},
		{"openai", "POST", "/v1/responses", "POST /openai/v1/responses", "", false},
		{"openai", "GET", "/v1/models", "GET /openai/v1/models", "", false},
		{"openai", "GET", "/v1/models/gpt-5", "GET /openai/v1/models/{model}", "", false},
		{"openai", "GET", "/v1/models/a/b", "", "", false},
		{"openai", "GET", "/v1/chat/completions", "", "", false},
		{"openai", "POST", "/v1/audio/speech", "", "", false},
		{"anthropic", "POST", "/v1/messages", "POST /anthropic/v1/messages", "", false},
		{"anthropic", "POST", "/v1/messages/count_tokens", "POST /anthropic/v1/messages/count_tokens", "", false},
		{"anthropic", "POST", "/v1/chat/completions", "POST /anthropic/v1/chat/completions", "", false},
		{"anthropic", "POST", "/v1/complete", "POST /anthropic/v1/complete", "", false},
		{"google-ai", "POST", "/v1/chat/completions", "POST /google-ai/v1/chat/completions", "", false},
		{"google-ai", "POST", "/v1beta/models/gemini-2.5-flash:generateContent", "POST /google-ai/v1beta/models/{model}:generateContent", "gemini-2.5-flash", false},
		{"google-ai", "POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "POST /google-ai/v1beta/models/{model}:streamGenerateContent", "gemini-2.5-pro", true},
		{"google-ai", "POST", "/v1/models/gemini-2.0-flash:generateContent", "POST /google-ai/v1/models/{model}:generateContent", "gemini-2.0-flash", false},
		{"google-ai", "POST", "/v1beta/models/gemini-2.5-flash:countTokens", "POST /google-ai/v1beta/models/{model}:countTokens", "gemini-2.5-flash", false},
		{"google-ai", "GET", "/v1beta/models", "GET /google-ai/v1beta/models", "", false},
		{"google-ai", "GET", "/v1beta/models/gemini-2.5-flash", "GET /google-ai/v1beta/models/{model}", "", false},
		{"google-ai", "POST", "/v1beta/models/gemini-2.5-flash:embedContent", "", "", false},
		{"google-ai", "POST", "/v1beta/models/:generateContent", "", "", false},
		{"google-ai", "POST", "/v1beta/tunedModels/x:generateContent", "", "", false},
		{"google-ai", "POST", "/v2/models/x:generateContent", "", "", false},
		{"google-ai", "GET", "/v1beta", "", "", false},
		{"mistral-ai", "POST", "/v1/chat/completions", "POST /mistral-ai/v1/chat/completions", "", false},
		{"mistral-ai", "POST", "/v1/embeddings", "", "", false},
	}
	for _, tc := range cases {
		ep, ok := provs[tc.prov].Match(tc.method, tc.path)
		if ok != (tc.route != "") || ep.Route != tc.route || ep.Model != tc.model || ep.Stream != tc.stream {
			t.Errorf("%s %s %s: got %+v, %v; want route %q model %q stream %v", tc.prov, tc.method, tc.path, ep, ok, tc.route, tc.model, tc.stream)
		}
	}
}

// Every route is also served without its /v1, as in the original.
func TestResolveAddsV1(t *testing.T) {
	cases := []struct {
		prov         *Provider
		path, method string
		want, route  string // want "": unknown
	}{
		{openAI, "/chat/completions", "POST", "/v1/chat/completions", "POST /openai/v1/chat/completions"},
		{openAI, "/v1/chat/completions", "POST", "/v1/chat/completions", "POST /openai/v1/chat/completions"},
		{openAI, "/models", "GET", "/v1/models", "GET /openai/v1/models"},
		{anthropic, "/messages", "POST", "/v1/messages", "POST /anthropic/v1/messages"},
		{anthropic, "/chat/completions", "POST", "/v1/chat/completions", "POST /anthropic/v1/chat/completions"},
		{googleAI, "/chat/completions", "POST", "/v1/chat/completions", "POST /google-ai/v1/chat/completions"},
		{openAI, "/v1/v1/chat/completions", "POST", "", ""},
		{openAI, "/", "GET", "", ""},
		{openAI, "/audio/speech", "POST", "", ""},
	}
	for _, tc := range cases {
		ep, path, ok := tc.prov.Resolve(tc.method, tc.path)
		if ok != (tc.want != "") || path != tc.want || ep.Route != tc.route {
			t.Errorf("%s %s: %q %q %v; want %q %q", tc.method, tc.path, path, ep.Route, ok, tc.want, tc.route)
		}
	}
}

// Only the parameters a route needs reach the upstream; an answer format
// that would hide the usage is refused.
func TestEndpointQuery(t *testing.T) {
	gen, _ := googleAI.Match("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent")
	list, _ := googleAI.Match("GET", "/v1beta/models")
	chat, _ := openAI.Match("POST", "/v1/chat/completions")
	cases := []struct {
		ep      Endpoint
		in      string
		want    string
		refused bool
	}{
		{gen, "", "", false},
		{gen, "alt=sse", "alt=sse", false},
		{gen, "alt=sse&key=abc", "alt=sse", false},
		{gen, "k%65y=abc&alt=sse", "alt=sse", false},
		{gen, "$alt=sse", "alt=sse", false},
		{gen, "alt=sse&fields=candidates&prettyPrint=false", "alt=sse", false},
		{gen, "alt=proto", "", true},
		{gen, "alt=media", "", true},
		{gen, "$alt=proto", "", true},
		{gen, "alt=sse&alt=proto", "", true},
		{gen, "alt=sse&alt=json", "", true},
		{gen, "alt=sse&$alt=json", "", true},
		{gen, "alt=sse&alt=sse", "", true},
		{list, "pageSize=5&key=a&key=", "pageSize=5", false},
		{chat, "KEY=abc&monkey=1", "", false},
	}
	for _, tc := range cases {
		q, _ := url.ParseQuery(tc.in)
		got, err := tc.ep.Query(q)
		if (err != nil) != tc.refused || got != tc.want {
			t.Errorf("%s ?%s: %q, %v; want %q refused %v", tc.ep.Route, tc.in, got, err, tc.want, tc.refused)
		}
	}
}
