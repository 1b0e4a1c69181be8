package providers

import "testing"

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
		{"anthropic", "POST", "/v1/complete", "", "", false},
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
