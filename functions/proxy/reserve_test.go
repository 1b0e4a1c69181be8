package proxy

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// reserveRoute is one route whose quota reservation a test drives: body
// formats the request with a fragment of members (an output limit, the
// content) appended.
type reserveRoute struct {
	name   string
	env    func(t *testing.T, vars map[string]string) *env
	fake   upstreamfake.Kind
	path   string
	header func(token string) map[string]string
	family string
	body   string // with %s where members are appended
}

func googleH(token string) map[string]string { return map[string]string{"X-Goog-Api-Key": token} }
func anthropicH(token string) map[string]string {
	return map[string]string{"X-Api-Key": token, "Anthropic-Version": "2023-06-01"}
}

func directEnv(t *testing.T, vars map[string]string) *env { return newEnv(t, vars) }

func bedrockEnvOf(t *testing.T, vars map[string]string) *env {
	e, _ := newBedrockEnv(t, awsCred("AKIDRESERVE", "us-east-1"), vars)
	return e
}

func vertexEnvOf(t *testing.T, vars map[string]string) *env {
	e, _ := vertexEnv(t, nil, vars)
	return e
}

func azureEnvOf(t *testing.T, vars map[string]string) *env {
	e, _ := newAzureEnv(t, vars)
	return e
}

const chatMessages = `"messages":[{"role":"user","content":"Say hello."}]`

// The routes that take no output limit, or one of 0, as the model's
// maximum: every one but Anthropic's, whose API requires a limit.
func unlimitedRoutes() []struct {
	reserveRoute
	limit, zero string // members naming a limit of 100, and of 0
} {
	chat := func(name string, env func(*testing.T, map[string]string) *env, fake upstreamfake.Kind, path, model, family string) reserveRoute {
		return reserveRoute{name: name, env: env, fake: fake, path: path, header: bearerH, family: family,
			body: `{"model":"` + model + `",` + chatMessages + `%s}`}
	}
	gemini := func(name string, env func(*testing.T, map[string]string) *env, fake upstreamfake.Kind, path, family string) reserveRoute {
		return reserveRoute{name: name, env: env, fake: fake, path: path, header: googleH, family: family,
			body: `{"contents":[{"role":"user","parts":[{"text":"Say hello."}]}]%s}`}
	}
	type row = struct {
		reserveRoute
		limit, zero string
	}
	const maxTokens, maxCompletion = `,"max_tokens":%d`, `,"max_completion_tokens":%d`
	const geminiLimit = `,"generationConfig":{"maxOutputTokens":%d}`
	return []row{
		{chat("openai chat", directEnv, upstreamfake.OpenAI, "/proxy/openai/v1/chat/completions", "gpt-4o", "gpt4o"), maxCompletion, maxTokens},
		{reserveRoute{name: "openai responses", env: directEnv, fake: upstreamfake.OpenAI, path: "/proxy/openai/v1/responses", header: bearerH,
			family: "gpt4o", body: `{"model":"gpt-4o","input":"Say hello."%s}`}, `,"max_output_tokens":%d`, `,"max_output_tokens":%d`},
		{reserveRoute{name: "openai completions", env: directEnv, fake: upstreamfake.OpenAI, path: "/proxy/openai/v1/completions", header: bearerH,
			family: "turbo", body: `{"model":"gpt-3.5-turbo-instruct","prompt":"Say hello."%s}`}, maxTokens, maxTokens},
		{gemini("google generateContent", directEnv, upstreamfake.Google, "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent", "gemini-flash"), geminiLimit, geminiLimit},
		{gemini("google in the other spelling", directEnv, upstreamfake.Google, "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent", "gemini-flash"),
			`,"generation_config":{"max_output_tokens":%d}`, `,"generationConfig":{"maxOutputTokens":100,"max_output_tokens":%d}`},
		{chat("google chat (translated)", directEnv, upstreamfake.Google, "/proxy/google-ai/v1/chat/completions", "gemini-2.5-flash", "gemini-flash"), maxTokens, maxTokens},
		{chat("mistral chat", directEnv, upstreamfake.Mistral, "/proxy/mistral-ai/v1/chat/completions", "mistral-small-latest", "mistral-small"), maxTokens, maxTokens},
		{chat("azure chat", azureEnvOf, upstreamfake.Azure, "/proxy/azure/openai/v1/chat/completions", "gpt-4o", "azure-gpt4o"), maxCompletion, maxCompletion},
		{chat("bedrock mistral", bedrockEnvOf, upstreamfake.Bedrock, "/proxy/aws/mistral/v1/chat/completions", "mistral-large-latest", "aws-mistral-large"), maxTokens, maxTokens},
		{gemini("vertex generateContent", vertexEnvOf, upstreamfake.Vertex, "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:generateContent", "gcp-gemini-flash"), geminiLimit, geminiLimit},
		{chat("vertex gemini chat (translated)", vertexEnvOf, upstreamfake.Vertex, "/proxy/gcp/gemini/v1/chat/completions", "gemini-2.5-flash", "gcp-gemini-flash"), maxTokens, maxTokens},
	}
}

// unclamped turns every output clamp off (MAX_OUTPUT_TOKENS_…=0).
var unclamped = map[string]string{
	"MAX_OUTPUT_TOKENS_OPENAI": "0", "MAX_OUTPUT_TOKENS_ANTHROPIC": "0", "MAX_OUTPUT_TOKENS_GOOGLE_AI": "0",
	"MAX_OUTPUT_TOKENS_MISTRAL_AI": "0", "MAX_OUTPUT_TOKENS_AWS": "0", "MAX_OUTPUT_TOKENS_GCP": "0", "MAX_OUTPUT_TOKENS_AZURE": "0",
}

// With no clamp, a request that names no output limit (or 0, which
// Gemini reads as none) may be given its model's maximum: the quota
// reserves the most the provider's models write, so that a user with a
// nearly spent quota cannot pass it with one unbounded answer. A limit
// named is reserved as before, and a user with room for the maximum is
// served without naming one.
func TestUnclampedRequestWithoutLimitReservesTheMaximum(t *testing.T) {
	for _, rt := range unlimitedRoutes() {
		t.Run(rt.name, func(t *testing.T) {
			e := rt.env(t, unclamped)
			up := e.fake(rt.fake)
			// 1,000 tokens left of 100,000.
			tight := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{rt.family: 100_000}), TokenCounts: setOpt(map[string]int64{rt.family: 99_000})})
			for _, members := range []string{"", fmt.Sprintf(rt.zero, 0)} {
				before := up.Count()
				a := e.do(call{path: rt.path, header: rt.header(tight), body: fmt.Sprintf(rt.body, members)})
				if a.status != http.StatusTooManyRequests || !strings.Contains(string(a.body), "token quota") || up.Count() != before {
					t.Errorf("no limit (%q) with 1,000 tokens left: %d %.300s, upstream asked %d times; want a 429 quota refusal before the upstream",
						members, a.status, a.body, up.Count()-before)
				}
			}
			if a := e.do(call{path: rt.path, header: rt.header(tight), body: fmt.Sprintf(rt.body, fmt.Sprintf(rt.limit, 100))}); a.status != http.StatusOK {
				t.Errorf("a limit of 100 with 1,000 tokens left: %d %.300s; want 200", a.status, a.body)
			}
			roomy := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{rt.family: 1_000_000})})
			if a := e.do(call{path: rt.path, header: rt.header(roomy), body: fmt.Sprintf(rt.body, "")}); a.status != http.StatusOK {
				t.Errorf("no limit with 1,000,000 tokens left: %d %.300s; want 200", a.status, a.body)
			}
		})
	}
}

// Image inputs are part of the prompt the quota reserves, a stated figure
// each by provider, though their data is left out of the text estimate: a
// user with a nearly spent quota cannot send many images for a few
// tokens' reservation. A user with room is served.
func TestImagesCountInTheReservation(t *testing.T) {
	const png = "iVBORw0KGgo="
	openAIPart := `{"type":"image_url","image_url":{"url":"data:image/png;base64,` + png + `"}}`
	claudeBlock := `{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + png + `"}}`
	geminiPart := `{"inline_data":{"mime_type":"image/png","data":"` + png + `"}}`
	four := func(part string) string { return strings.TrimSuffix(strings.Repeat(part+",", 4), ",") }
	chatBody := func(model, part string) string {
		return `{"model":"` + model + `","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},` + four(part) + `]}]}`
	}
	geminiBody := `{"contents":[{"role":"user","parts":[{"text":"What is this?"},` + four(geminiPart) + `]}],"generationConfig":{"maxOutputTokens":10}}`
	claudeBody := func(model string) string {
		return `{"model":"` + model + `","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},` + four(claudeBlock) + `]}]}`
	}
	routes := []reserveRoute{
		{name: "openai chat", env: directEnv, fake: upstreamfake.OpenAI, path: "/proxy/openai/v1/chat/completions", header: bearerH, family: "gpt4o", body: chatBody("gpt-4o", openAIPart)},
		{name: "openai responses", env: directEnv, fake: upstreamfake.OpenAI, path: "/proxy/openai/v1/responses", header: bearerH, family: "gpt4o",
			body: `{"model":"gpt-4o","max_output_tokens":16,"input":[{"role":"user","content":[{"type":"input_text","text":"What is this?"},` +
				four(`{"type":"input_image","image_url":"data:image/png;base64,`+png+`"}`) + `]}]}`},
		{name: "anthropic messages", env: directEnv, fake: upstreamfake.Anthropic, path: "/proxy/anthropic/v1/messages", header: anthropicH, family: "claude", body: claudeBody("claude-sonnet-4-5")},
		{name: "anthropic chat (translated)", env: directEnv, fake: upstreamfake.Anthropic, path: "/proxy/anthropic/v1/chat/completions", header: bearerH, family: "claude", body: chatBody("claude-sonnet-4-5", openAIPart)},
		{name: "google generateContent", env: directEnv, fake: upstreamfake.Google, path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent", header: googleH, family: "gemini-flash", body: geminiBody},
		{name: "google chat (translated)", env: directEnv, fake: upstreamfake.Google, path: "/proxy/google-ai/v1/chat/completions", header: bearerH, family: "gemini-flash", body: chatBody("gemini-2.5-flash", openAIPart)},
		{name: "mistral chat", env: directEnv, fake: upstreamfake.Mistral, path: "/proxy/mistral-ai/v1/chat/completions", header: bearerH, family: "mistral-small",
			body: chatBody("pixtral-12b-2409", `{"type":"image_url","image_url":"data:image/png;base64,`+png+`"}`)},
		{name: "azure chat", env: azureEnvOf, fake: upstreamfake.Azure, path: "/proxy/azure/openai/v1/chat/completions", header: bearerH, family: "azure-gpt4o", body: chatBody("gpt-4o", openAIPart)},
		{name: "bedrock claude", env: bedrockEnvOf, fake: upstreamfake.Bedrock, path: "/proxy/aws/claude/v1/messages", header: anthropicH, family: "aws-claude", body: claudeBody("claude-sonnet-4-5")},
		{name: "vertex claude", env: vertexEnvOf, fake: upstreamfake.Vertex, path: "/proxy/gcp/claude/v1/messages", header: anthropicH, family: "gcp-claude", body: claudeBody("claude-sonnet-4-5@20250929")},
		{name: "vertex generateContent", env: vertexEnvOf, fake: upstreamfake.Vertex, path: "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:generateContent", header: googleH, family: "gcp-gemini-flash", body: geminiBody},
	}
	vision := map[string]string{"ALLOWED_VISION_SERVICES": "openai,anthropic,google-ai,mistral-ai,aws,gcp,azure"}
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			e := rt.env(t, vision)
			up := e.fake(rt.fake)
			// 2,000 tokens left: four images are more than that anywhere.
			tight := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{rt.family: 100_000}), TokenCounts: setOpt(map[string]int64{rt.family: 98_000})})
			a := e.do(call{path: rt.path, header: rt.header(tight), body: rt.body})
			if a.status != http.StatusTooManyRequests || !strings.Contains(string(a.body), "token quota") || up.Count() != 0 {
				t.Errorf("four images with 2,000 tokens left: %d %.300s, upstream asked %d times; want a 429 quota refusal before the upstream",
					a.status, a.body, up.Count())
			}
			roomy := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{rt.family: 100_000})})
			if a := e.do(call{path: rt.path, header: rt.header(roomy), body: rt.body}); a.status != http.StatusOK {
				t.Errorf("four images with 100,000 tokens left: %d %.300s; want 200", a.status, a.body)
			}
		})
	}
}

// The most an unbounded request may be given is reserved, not charged: a
// reasoning model's stream cut short under no clamp, naming no limit, is
// charged what it relayed, its prompt's estimate and the limit asked
// (none), as before, not the provider's maximum.
func TestUnclampedCutStreamNotChargedTheMaximum(t *testing.T) {
	e := newEnv(t, unclamped)
	token := e.user(users.Patch{})
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{CloseAfter: 1})
	e.do(call{path: "/proxy/openai/v1/chat/completions", header: bearerH(token),
		body: `{"model":"o3","stream":true,` + chatMessages + `}`})
	e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
	if got := e.get(token).TokenCounts["o3"]; got <= 0 || got > 100 {
		t.Errorf("a cut stream charged %d, want its estimate (a few tokens)", got)
	}
}

// A stream cut short before the upstream reported its input is charged
// the prompt's estimate, its images' figure included (four on OpenAI:
// 4 × 1,445).
func TestCutStreamChargesTheImagesEstimate(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_VISION_SERVICES": "openai"})
	token := e.user(users.Patch{})
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{CloseAfter: 1})
	part := `{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}`
	e.do(call{path: "/proxy/openai/v1/chat/completions", header: bearerH(token),
		body: `{"model":"gpt-4o","stream":true,"max_tokens":10,"messages":[{"role":"user","content":[` + strings.TrimSuffix(strings.Repeat(part+",", 4), ",") + `]}]}`})
	e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
	if got := e.get(token).TokenCounts["gpt4o"]; got < 4*1445 || got > 4*1445+100 {
		t.Errorf("a cut stream of four images charged %d, want the images' 5,780 and a few tokens", got)
	}
}

// An unbounded request counts its own model's maximum where the model
// table lists its family (gpt-4o's 16,384, GPT-5 pro's 272,000, Mistral
// 7B's 32,768), and its provider's largest for a model the table does not
// know, which may be newer, and on Azure, whose deployment, not the body,
// decides the model.
func TestUnclampedReservationIsTheModelsMaximum(t *testing.T) {
	type tc struct {
		name, path, model, family string
		room                      int64
		served                    bool
	}
	body := func(c tc) string {
		if strings.HasSuffix(c.path, "/responses") {
			return `{"model":"` + c.model + `","input":"Say hello."}`
		}
		return `{"model":"` + c.model + `",` + chatMessages + `}`
	}
	const chat, responses, mistral, azure = "/proxy/openai/v1/chat/completions", "/proxy/openai/v1/responses",
		"/proxy/mistral-ai/v1/chat/completions", "/proxy/azure/openai/v1/chat/completions"
	cases := []tc{
		{"gpt-4o with room for 16,384", chat, "gpt-4o", "gpt4o", 20_000, true},
		{"gpt-4o without", chat, "gpt-4o", "gpt4o", 10_000, false},
		{"a model the table does not know", chat, "gpt-7-preview", "gpt4o", 20_000, false},
		{"gpt-5 pro without room for 272,000", responses, "gpt-5-pro", "gpt5-pro", 200_000, false},
		{"gpt-5 pro with", responses, "gpt-5-pro", "gpt5-pro", 300_000, true},
		{"mistral 7b with room for 32,768", mistral, "open-mistral-7b", "mistral-tiny", 40_000, true},
		{"mistral small without room for 262,144", mistral, "mistral-small-latest", "mistral-small", 40_000, false},
		{"azure gpt-4o: the deployment decides", azure, "gpt-4o", "azure-gpt4o", 20_000, false},
		{"azure with room for 272,000", azure, "gpt-4o", "azure-gpt4o", 300_000, true},
	}
	e := azureEnvOf(t, unclamped)
	for _, c := range cases {
		token := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{c.family: c.room})})
		a := e.do(call{path: c.path, header: bearerH(token), body: body(c)})
		if served := a.status == http.StatusOK; served != c.served || !served && a.status != http.StatusTooManyRequests {
			t.Errorf("%s: %d %.300s; want served %v (else 429)", c.name, a.status, a.body, c.served)
		}
	}
}

// A whole answer nothing of which can be read (protobuf, which Google
// answers a client that asks for it), or a stream whose events cannot be, is charged all the request
// reserved: under no clamp, for a request naming no limit, its model's
// maximum. Charged at the limit asked alone, it cost its prompt: asking
// for such answers drew without end.
func TestUnclampedUnreadableAnswerChargedItsReservation(t *testing.T) {
	up, proto, events := unreadableUpstream(t)
	vars := maps.Clone(unclamped)
	vars["GOOGLE_AI_BASE_URL"] = up.URL
	e := newEnv(t, vars)
	token := e.user(users.Patch{})
	for _, path := range []string{"generateContent", "streamGenerateContent", "streamGenerateContent?alt=sse"} {
		before := e.get(token).TokenCounts["gemini-flash"]
		a := e.do(call{path: "/proxy/google-ai/v1beta/models/gemini-2.5-flash:" + path,
			header: map[string]string{"X-Goog-Api-Key": token, "Accept": "application/x-protobuf"},
			body:   `{"contents":[{"role":"user","parts":[{"text":"Say hello."}]}]}`})
		if want := map[bool]string{false: proto, true: events}[strings.HasSuffix(path, "sse")]; a.status != http.StatusOK || string(a.body) != want {
			t.Fatalf("%s: %d %q", path, a.status, a.body)
		}
		if got := e.get(token).TokenCounts["gemini-flash"] - before; got < 65_536 {
			t.Errorf("%s: charged %d tokens, want what it reserved (Gemini 2.5 Flash's 65,536 and the prompt)", path, got)
		}
	}
}
