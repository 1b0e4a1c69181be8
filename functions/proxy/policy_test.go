package proxy

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// withText is pc's request with the user's message replaced by text.
func withText(pc provCase, text string) string {
	return strings.Replace(pc.body, "Say hello.", text, 1)
}

// refusedUnsent checks a policy refusal: status, the provider's error
// shape with msg, the error headers, nothing sent upstream or charged.
func refusedUnsent(t *testing.T, e *env, pc provCase, tk string, a answer, status int, msg string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	pc.shape(t, a)
	got, _ := dig(a.json(t), "error", "message").(string)
	mustContain(t, "error message", got, msg)
	if a.header.Get(headerErrorStatus) != strconv.Itoa(status) || a.header.Get(headerError) == "" {
		t.Errorf("error headers missing: %v", a.header)
	}
	if n := e.fake(pc.kind).Count(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
	if tk != "" {
		if u := e.get(tk); u.PromptCount != 0 {
			t.Errorf("a refused request was charged: %+v", u)
		}
	}
}

func TestRejectPhrases(t *testing.T) {
	for _, pc := range provCases {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, map[string]string{"REJECT_PHRASES": `forbidden\s+topic,"one, two"`, "REJECT_MESSAGE": "Not here."})
			// Special users are not exempt, as in the original.
			tk := e.user(users.Patch{Type: setOpt(users.Special)})
			a := e.do(call{path: pc.path, body: withText(pc, "Tell me about the FORBIDDEN   topic."), header: pc.auth(tk)})
			refusedUnsent(t, e, pc, tk, a, 400, "Not here.")
			a = e.do(call{path: pc.path, body: withText(pc, "say one, two"), header: pc.auth(tk)})
			refusedUnsent(t, e, pc, tk, a, 400, "Not here.")
			// JavaScript's \s, which the phrases are written for, is every
			// Unicode space.
			a = e.do(call{path: pc.path, body: withText(pc, "Tell me about the forbidden\u00a0topic."), header: pc.auth(tk)})
			refusedUnsent(t, e, pc, tk, a, 400, "Not here.")
			if a := e.do(call{path: pc.path, body: withText(pc, "A topic that is forbidden? No."), header: pc.auth(tk)}); a.status != 200 {
				t.Errorf("an innocent prompt: %d %s", a.status, a.body)
			}
		})
	}
	t.Run("a phrase in the system prompt or a part", func(t *testing.T) {
		e := newEnv(t, map[string]string{"REJECT_PHRASES": "secret plan"})
		tk := e.user(users.Patch{})
		for _, c := range []call{
			{path: "/proxy/anthropic/v1/messages", header: map[string]string{"x-api-key": tk},
				body: `{"model":"claude-sonnet-4-5","max_tokens":10,"system":[{"type":"text","text":"the Secret Plan"}],"messages":[{"role":"user","content":"hi"}]}`},
			{path: "/proxy/openai/v1/chat/completions", header: bearerH(tk),
				body: `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"my secret plan"}]}]}`},
			{path: "/proxy/openai/v1/responses", header: bearerH(tk), body: `{"model":"gpt-4o","input":"a secret plan"}`},
		} {
			if a := e.do(c); a.status != 400 || !strings.Contains(string(a.body), "acceptable use policy") {
				t.Errorf("%s: %d %s", c.path, a.status, a.body)
			}
		}
	})
}

// A phrase split over two text parts of one message is read as the model
// reads the parts, one after the other; parts of different messages are
// not joined.
func TestRejectPhrasesSplitAcrossParts(t *testing.T) {
	pol := policiesOf(t, map[string]string{"REJECT_PHRASES": `forbidden\s+topic,secret plan`})
	for _, tc := range []struct {
		name, body string
		refused    bool
	}{
		{"openai chat parts", `{"model":"gpt-4o","messages":[{"role":"user","content":[` +
			`{"type":"text","text":"Tell me about the forb"},{"type":"text","text":"idden topic."}]}]}`, true},
		{"anthropic blocks around an image", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[` +
			`{"type":"text","text":"the sec"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},` +
			`{"type":"text","text":"ret plan"}]}]}`, true},
		{"anthropic system blocks", `{"model":"claude-sonnet-4-5","max_tokens":10,"system":[{"type":"text","text":"the secret"},` +
			`{"type":"text","text":" plan"}],"messages":[{"role":"user","content":"hi"}]}`, true},
		{"gemini parts", `{"contents":[{"role":"user","parts":[{"text":"the s"},{"text":"ecret "},{"text":"plan"}]}]}`, true},
		{"gemini system parts", `{"systemInstruction":{"parts":[{"text":"the secret"},{"text":" plan"}]},"contents":[{"parts":[{"text":"hi"}]}]}`, true},
		{"responses input parts", `{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"secret"},` +
			`{"type":"input_text","text":" plan"}]}]}`, true},
		{"\\u-escaped part", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"secret"},{"type":"text","text":"\u0020plan"}]}]}`, true},
		{"parts of two messages", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"secret"}]},` +
			`{"role":"user","content":[{"type":"text","text":" plan"}]}]}`, false},
		{"innocent parts", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"a forbidden"},{"type":"text","text":"? No, a topic."}]}]}`, false},
	} {
		// Exempt from the image ban: phrases apply to everyone.
		_, err := checkBody(pol, models.OpenAI, true, []byte(tc.body), true, true, false, 10, 20, 0)
		if (err != nil) != tc.refused {
			t.Errorf("%s: refused %v (%v), want %v", tc.name, err != nil, err, tc.refused)
		}
	}
}

// policiesOf is the policies a configuration gives.
func policiesOf(t *testing.T, env map[string]string) *config.Policies {
	t.Helper()
	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatal(err)
	}
	return &cfg.Policies
}

// A data member the model reads as text (an Anthropic text document,
// Google inline text/* data, base64) is looked at for phrases; binary
// data (an image whose base64 happens to spell the phrase) is not.
func TestRejectPhrasesInTextData(t *testing.T) {
	pol := policiesOf(t, map[string]string{"REJECT_PHRASES": "secret plan,SecretPlan", "ALLOWED_VISION_SERVICES": "anthropic", "ALLOW_PAID_FEATURES": "true"})
	for _, tc := range []struct {
		name, body string
		refused    bool
	}{
		{"anthropic text document", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[` +
			`{"type":"document","source":{"type":"text","media_type":"text/plain","data":"Here is the secret plan."}},` +
			`{"type":"text","text":"Summarise the document."}]}]}`, true},
		{"google inline text", `{"contents":[{"parts":[{"inlineData":{"data":"SGVyZSBpcyB0aGUgc2VjcmV0IHBsYW4u","mimeType":"text/plain"}}]}]}`, true},
		{"image", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[` +
			`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"SecretPlanAAAA"}}]}]}`, false},
		{"untyped", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"SecretPlanAAAA","format":"wav"}}]}]}`, false},
	} {
		_, err := checkBody(pol, models.Anthropic, false, []byte(tc.body), true, true, false, 10, 20, 0)
		if (err != nil) != tc.refused {
			t.Errorf("%s: refused %v, want %v", tc.name, err != nil, tc.refused)
		}
	}
}

// JSON the model reads as JSON (an Anthropic tool_use input, a Gemini
// functionCall's args or functionResponse's response, a tool's or an
// answer's schema) is text in all of it: its member names, and members
// that elsewhere are the format's own (type, id, url, model, role).
func TestRejectPhrasesInJSONTheModelReads(t *testing.T) {
	pol := policiesOf(t, map[string]string{"REJECT_PHRASES": "secret plan"})
	anthropicInput := func(input string) string {
		return `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":` + input + `}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}]}`
	}
	for _, tc := range []struct {
		name, body string
		refused    bool
	}{
		{"tool_use input type", anthropicInput(`{"type":"the secret plan"}`), true},
		{"tool_use input url", anthropicInput(`{"url":"the secret plan"}`), true},
		{"tool_use input member name", anthropicInput(`{"the secret plan":1}`), true},
		{"functionResponse id", `{"contents":[{"role":"user","parts":[{"text":"hi"},{"functionResponse":{"name":"f","response":{"id":"the secret plan"}}}]}]}`, true},
		{"functionCall args role", `{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":{"role":"the secret plan"}}}]}]}`, true},
		{"tool parameters property", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f",` +
			`"parameters":{"type":"object","properties":{"the secret plan":{"type":"string"}}}}}]}`, true},
		{"innocent tool_use", anthropicInput(`{"type":"a plan","id":"x1"}`), false},
		{"innocent structure", `{"model":"secret plan","messages":[{"role":"user","content":"hi"}]}`, false},
	} {
		_, err := checkBody(pol, models.Anthropic, false, []byte(tc.body), true, true, false, 10, 20, 0)
		if (err != nil) != tc.refused {
			t.Errorf("%s: refused %v, want %v", tc.name, err != nil, tc.refused)
		}
	}
}

// What lies deeper than the policy walks read (Anthropic takes any JSON as
// a tool_use input, Gemini as a functionResponse, and the model reads it)
// is refused while the policy that walks is on, in the provider's shape.
func TestPoliciesRefuseBodiesNestedTooDeep(t *testing.T) {
	nest := func(v string) string { return strings.Repeat(`{"a":`, 40) + v + strings.Repeat(`}`, 40) }
	phrase := `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"},` +
		`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":` + nest(`"the secret plan"`) + `}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}]}`
	image := `{"contents":[{"role":"user","parts":[{"text":"hi"},{"functionResponse":{"name":"f","response":` +
		nest(`{"inlineData":{"mimeType":"image/png","data":"AAAA"}}`) + `}}]}]}`
	plain := `{"contents":[{"role":"user","parts":[{"text":"hi"},{"functionResponse":{"name":"f","response":` + nest(`"ok"`) + `}}]}]}`
	t.Run("phrases", func(t *testing.T) {
		e := newEnv(t, map[string]string{"REJECT_PHRASES": "secret plan"})
		tk := e.user(users.Patch{})
		a := e.do(call{path: provCases[1].path, body: phrase, header: provCases[1].auth(tk)})
		refusedUnsent(t, e, provCases[1], tk, a, 400, "nested more than 32 levels deep")
	})
	t.Run("images", func(t *testing.T) {
		e := newEnv(t, nil)
		tk := e.user(users.Patch{})
		a := e.do(call{path: provCases[2].path, body: image, header: provCases[2].auth(tk)})
		refusedUnsent(t, e, provCases[2], tk, a, 400, "nested more than 32 levels deep")
		// Without an image marker there is no image to look for.
		if a := e.do(call{path: provCases[2].path, body: plain, header: provCases[2].auth(tk)}); a.status != 200 {
			t.Errorf("deep body without images: %d %s", a.status, a.body)
		}
	})
	t.Run("policies off", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ALLOWED_VISION_SERVICES": "google-ai"})
		tk := e.user(users.Patch{})
		for _, c := range []call{{path: provCases[1].path, body: phrase, header: provCases[1].auth(tk)},
			{path: provCases[2].path, body: image, header: provCases[2].auth(tk)}} {
			if a := e.do(c); a.status != 200 {
				t.Errorf("%s: %d %s", c.path, a.status, a.body)
			}
		}
	})
}

func TestOpenAIToolUsage(t *testing.T) {
	tools := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}`
	functions := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"functions":[{"name":"f"}]}`
	t.Run("refused by default", func(t *testing.T) {
		e := newEnv(t, nil)
		tk := e.user(users.Patch{})
		// A hostile client may spell a member so that a naive reader
		// misses what the upstream's parser takes: escaped, or repeated.
		escaped := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"t\u006fols":[{"type":"function","function":{"name":"f"}}]}`
		repeated := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"tools":[],"tools":[{"type":"function","function":{"name":"f"}}]}`
		for _, body := range []string{tools, functions, escaped, repeated} {
			a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: body, header: bearerH(tk)})
			refusedUnsent(t, e, provCases[0], tk, a, 400, "Tool use")
		}
		// An empty list asks for no tool.
		empty := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"tools":[]}`
		if a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: empty, header: bearerH(tk)}); a.status != 200 {
			t.Errorf("empty tools: %d %s", a.status, a.body)
		}
		// The setting is OpenAI's only, as in the original.
		claude := `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","input_schema":{"type":"object"}}]}`
		if a := e.do(call{path: "/proxy/anthropic/v1/messages", body: claude, header: map[string]string{"x-api-key": tk}}); a.status != 200 {
			t.Errorf("Anthropic tools: %d %s", a.status, a.body)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true"})
		tk := e.user(users.Patch{})
		if a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: tools, header: bearerH(tk)}); a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		mustContain(t, "upstream body", string(e.fake(upstreamfake.OpenAI).Last(t).Body), `"tools"`)
	})
}

// paidCase is a request for something the upstream bills beyond the
// tokens the quotas count, on one of the mounts that serve it.
type paidCase struct {
	name, path, body string
	header           map[string]string
	msg              string // in the refusal
}

// paidCases are refused by default. Every body a hostile client can spell
// so that a naive reader misses what the upstream reads (an escaped or
// repeated member) is among them.
func paidCases(tk string) []paidCase {
	chat := func(model, extra string) string {
		return `{"model":"` + model + `","max_tokens":10,"messages":[{"role":"user","content":"hi"}]` + extra + `}`
	}
	responses := func(extra string) string {
		return `{"model":"gpt-4o","max_output_tokens":20,"input":"hi"` + extra + `}`
	}
	claude := func(extra string) string {
		return `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]` + extra + `}`
	}
	gemini := func(extra string) string {
		return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]` + extra + `}`
	}
	const (
		oai    = "/proxy/openai/v1/chat/completions"
		resp   = "/proxy/openai/v1/responses"
		azure  = "/proxy/azure/openai/v1/chat/completions"
		ant    = "/proxy/anthropic/v1/messages"
		aws    = "/proxy/aws/claude/v1/messages"
		gcp    = "/proxy/gcp/claude/v1/messages"
		goo    = "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent"
		vertex = "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:generateContent"
	)
	bearer, xKey, gKey := bearerH(tk), map[string]string{"x-api-key": tk}, map[string]string{"x-goog-api-key": tk}
	withBeta := func(beta string) map[string]string { return map[string]string{"x-api-key": tk, "anthropic-beta": beta} }
	search, tool, price := "billed per search", "runs on the provider's side", "is billed above the standard price per token"
	return []paidCase{
		{"web_search_options", oai, chat("gpt-4o", `,"web_search_options":{}`), bearer, search},
		{"escaped web_search_options", oai, chat("gpt-4o", `,"web_search_opti\u006fns":{"search_context_size":"high"}`), bearer, search},
		{"search model", oai, chat("gpt-4o-search-preview", ""), bearer, "gpt-4o-search-preview searches the web on every call"},
		{"search model, by its ending", oai, chat("gpt-6-search", ""), bearer, "gpt-6-search searches the web"},
		{"dated search model", oai, chat("gpt-4o-mini-search-preview-2025-03-11", ""), bearer, "searches the web"},
		{"priority tier", oai, chat("gpt-4o", `,"service_tier":"priority"`), bearer, `service_tier "priority" ` + price},
		{"repeated tier", oai, chat("gpt-4o", `,"service_tier":"priority","service_tier":"auto"`), bearer, price},
		{"escaped tier", oai, chat("gpt-4o", `,"service_t\u0069er":"pr\u0069ority"`), bearer, price},
		{"Responses priority tier", resp, responses(`,"service_tier":"priority"`), bearer, price},
		{"Azure web_search_options", azure, chat("gpt-4o", `,"web_search_options":{}`), bearer, search},
		{"Azure On Your Data", azure, chat("gpt-4o", `,"data_sources":[{"type":"azure_search","parameters":{"endpoint":"https://s.search.windows.net","index_name":"docs",`+
			`"authentication":{"type":"system_assigned_managed_identity"}}}]`), bearer, "data_sources: retrieval runs searches"},
		{"Azure priority tier", azure, chat("gpt-4o", `,"service_tier":"priority"`), bearer, price},
		{"Anthropic web search", ant, claude(`,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]`), xKey, "The web_search_20250305 tool " + tool},
		{"Anthropic web fetch", ant, claude(`,"tools":[{"name":"f","input_schema":{}},{"type":"web_fetch_20250910","name":"web_fetch"}]`), xKey, "web_fetch_20250910"},
		{"Anthropic code execution", ant, claude(`,"tools":[{"type":"code_execution_20250825","name":"code_execution"}]`), xKey, tool},
		{"Anthropic MCP connector", ant, claude(`,"mcp_servers":[{"type":"url","url":"https://mcp.example.com/sse","name":"x"}]`),
			withBeta("mcp-client-2025-04-04"), "mcp_servers: remote MCP servers are called by the provider"},
		{"Anthropic MCP toolset", ant, claude(`,"tools":[{"type":"mcp_toolset","mcp_server_name":"x"}]`), xKey, "mcp_toolset: remote MCP"},
		{"escaped MCP connector", ant, claude(`,"mcp_serv\u0065rs":[{"type":"url","url":"https://mcp.example.com/sse","name":"x"}]`), xKey, "remote MCP"},
		{"escaped and repeated type", ant, claude(`,"tools":[{"type":"custom","t\u0079pe":"web_search_20250305","name":"web_search"}]`), xKey, tool},
		{"Anthropic fast mode", ant, claude(`,"speed":"fast"`), xKey, `speed "fast" ` + price},
		{"Anthropic fast-mode beta", ant, claude(""), withBeta("fast-mode-2026-02-01"), "anthropic-beta fast-mode-2026-02-01 " + price},
		{"Anthropic US-only inference", ant, claude(`,"inference_geo":"us"`), xKey, `inference_geo "us"`},
		{"Anthropic 1M-context beta", ant, claude(""), withBeta("interleaved-thinking-2025-05-14, Context-1M-2025-08-07"), "anthropic-beta Context-1M-2025-08-07 " + price},
		{"Bedrock beta in the body", aws, claude(`,"anthropic_beta":["context-1m-2025-08-07"]`), xKey, price},
		{"Bedrock beta header", aws, claude(""), withBeta("context-1m-2025-08-07"), price},
		{"Bedrock chat translation beta header", "/proxy/aws/claude/v1/chat/completions", chat("claude-sonnet-4-5", ""),
			map[string]string{"authorization": "Bearer " + tk, "anthropic-beta": "context-1m-2025-08-07"}, price},
		{"Bedrock web search", aws, claude(`,"tools":[{"type":"web_search_20250305","name":"web_search"}]`), xKey, tool},
		{"Vertex Claude web search", gcp, claude(`,"tools":[{"type":"web_search_20250305","name":"web_search"}]`), xKey, tool},
		{"Vertex Claude beta header", gcp, claude(""), withBeta("context-1m-2025-08-07"), price},
		{"audio output", oai, chat("gpt-4o-audio-preview", `,"modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"}`), bearer, "audio output is billed at several times"},
		{"audio modality", oai, chat("gpt-audio", `,"modalities":["text","AUDIO"]`), bearer, "modalities: audio output"},
		{"audio input", oai, `{"model":"gpt-4o-audio-preview","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"what is said"},` +
			`{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, bearer, "Audio input is billed at several times"},
		{"escaped audio input", oai, `{"model":"gpt-4o-audio-preview","max_tokens":10,"messages":[{"role":"user","content":[` +
			`{"type":"input_\u0061udio","input_\u0061udio":{"data":"AAAA","format":"wav"}}]}]}`, bearer, "Audio input"},
		{"Gemini speech", "/proxy/google-ai/v1beta/models/gemini-2.5-flash-preview-tts:generateContent",
			gemini(`,"generationConfig":{"responseModalities":["AUDIO"],"speechConfig":{"voiceConfig":{"prebuiltVoiceConfig":{"voiceName":"Kore"}}}}`), gKey, "responseModalities: audio output"},
		{"Vertex Gemini speech", vertex, gemini(`,"generation_config":{"response_modalities":["audio"]}`), gKey, "response_modalities: audio output"},
		{"Gemini priority tier", goo, gemini(`,"serviceTier":"PRIORITY"`), gKey, `serviceTier "PRIORITY" ` + price},
		{"Gemini priority tier in the config", goo, gemini(`,"generationConfig":{"service_tier":"priority"}`), gKey, price},
		{"Gemini Google Search", goo, gemini(`,"tools":[{"googleSearch":{}}]`), gKey, "The googleSearch tool " + tool},
		{"Gemini search retrieval", goo, gemini(`,"tools":[{"google_search_retrieval":{"dynamic_retrieval_config":{"mode":"MODE_DYNAMIC"}}}]`), gKey, tool},
		{"Gemini code execution", goo, gemini(`,"tools":[{"functionDeclarations":[{"name":"f"}]},{"code_execution":{}}]`), gKey, tool},
		{"Gemini URL context", goo, gemini(`,"tools":[{"urlContext":{}}]`), gKey, tool},
		{"Gemini escaped member", goo, gemini(`,"tools":[{"google\u0053earch":{}}]`), gKey, tool},
		{"Vertex Gemini grounding", vertex, gemini(`,"tools":[{"googleSearch":{}}]`), gKey, tool},
		{"Vertex Gemini Maps", vertex, gemini(`,"tools":[{"googleMaps":{}}]`), gKey, tool},
		{"Vertex Gemini enterprise search", vertex, gemini(`,"tools":[{"enterpriseWebSearch":{}}]`), gKey, tool},
		{"Vertex Gemini retrieval", vertex, gemini(`,"tools":[{"retrieval":{"vertexAiSearch":{"datastore":"projects/p/locations/global/collections/default_collection/dataStores/d"}}}]`), gKey, tool},
		{"Gemini file search", goo, gemini(`,"tools":[{"file_search":{"file_search_store_names":["fileSearchStores/s"]}}]`), gKey, tool},
		{"Bedrock MCP connector", aws, claude(`,"mcp_servers":[{"type":"url","url":"https://mcp.example.com/sse","name":"x"}]`), xKey, "remote MCP"},
		{"Vertex Claude MCP connector", gcp, claude(`,"mcp_servers":[{"type":"url","url":"https://mcp.example.com/sse","name":"x"}]`), xKey, "remote MCP"},
	}
}

// paidMounts is newEnv serving the cloud mounts too (Azure, Bedrock,
// Vertex), with vars; it returns every upstream fake.
func paidMounts(t *testing.T, vars map[string]string) (*env, []*upstreamfake.Fake) {
	t.Helper()
	az, br, vx := upstreamfake.Start(t, upstreamfake.Azure), upstreamfake.Start(t, upstreamfake.Bedrock), upstreamfake.Start(t, upstreamfake.Vertex)
	all := map[string]string{
		"AZURE_CREDENTIALS": azureCred("tollgate-east", "prod-4o"), "AZURE_OPENAI_BASE_URL": az.URL + "/{resource}",
		"AWS_CREDENTIALS": awsCred("AKIDFIRST", "us-east-1"), "AWS_BEDROCK_BASE_URL": br.URL + "/{region}",
		"GCP_CREDENTIALS": saCred(vx, "tollgate"), "GCP_VERTEX_BASE_URL": vx.URL,
	}
	maps.Copy(all, vars)
	e := newEnv(t, all)
	e.fakes[upstreamfake.Azure], e.fakes[upstreamfake.Bedrock], e.fakes[upstreamfake.Vertex] = az, br, vx
	return e, slices.Collect(maps.Values(e.fakes))
}

// What the upstream bills beyond the tokens the quotas count (server-side
// tools, search models, price-multiplying tiers, modes and betas) is
// refused by default on every mount that serves it, for special users
// too, in the provider's error shape, before anything is sent or
// charged; ALLOW_PAID_FEATURES lets it through.
func TestPaidFeatures(t *testing.T) {
	t.Run("refused by default", func(t *testing.T) {
		e, ups := paidMounts(t, nil)
		tk := e.user(users.Patch{Type: setOpt(users.Special)})
		for _, c := range paidCases(tk) {
			a := e.do(call{path: c.path, body: c.body, header: c.header})
			if a.status != 400 || a.header.Get(headerErrorStatus) != "400" {
				t.Errorf("%s: %d %s", c.name, a.status, a.body)
				continue
			}
			switch {
			case strings.Contains(c.path, "generateContent"):
				googleShape(t, a)
			case strings.Contains(c.path, "/messages"):
				anthropicShape(t, a)
			default:
				openAIShape(t, a)
			}
			got, _ := dig(a.json(t), "error", "message").(string)
			mustContain(t, c.name, got, c.msg)
		}
		for _, up := range ups {
			if n := up.Count(); n != 0 {
				t.Errorf("%d requests reached an upstream", n)
			}
		}
		if u := e.get(tk); u.PromptCount != 0 {
			t.Errorf("a refused request was charged: %+v", u)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		e, _ := paidMounts(t, map[string]string{"ALLOW_PAID_FEATURES": "true"})
		tk := e.user(users.Patch{})
		// These name stores of the operator's account (a search data
		// store, a file search store, the resource's managed identity):
		// refused all the same (TestOperatorStoredObjectsRefused).
		operators := map[string]bool{"Azure On Your Data": true, "Vertex Gemini retrieval": true, "Gemini file search": true}
		for _, c := range paidCases(tk) {
			a := e.do(call{path: c.path, body: c.body, header: c.header})
			switch {
			case operators[c.name]:
				if a.status != 400 || !strings.Contains(string(a.body), "names an object stored on this proxy's account") {
					t.Errorf("%s: %d %s", c.name, a.status, a.body)
				}
			case a.status != 200:
				t.Errorf("%s: %d %s", c.name, a.status, a.body)
			}
		}
		last := e.fake(upstreamfake.Anthropic).Last(t)
		mustContain(t, "upstream anthropic-beta", last.Header.Get("Anthropic-Beta"), "Context-1M-2025-08-07")
	})
	t.Run("standard prices and look-alikes pass", func(t *testing.T) {
		e := newEnv(t, nil)
		tk := e.user(users.Patch{})
		chat := func(extra string) string {
			return `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"service_tier \"priority\" tools"}]` + extra + `}`
		}
		claude := func(extra string) string {
			return `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]` + extra + `}`
		}
		gemini := func(extra string) string {
			return `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]` + extra + `}`
		}
		oai, ant, goo := provCases[0], provCases[1], provCases[2]
		for _, c := range []struct {
			path, body string
			header     map[string]string
		}{
			{oai.path, chat(`,"service_tier":"auto"`), bearerH(tk)},
			{oai.path, chat(`,"service_tier":"default"`), bearerH(tk)},
			{oai.path, chat(`,"service_tier":"flex","web_search_options":null`), bearerH(tk)},
			{oai.path, chat(`,"service_tier":null,"modalities":["text"],"audio":null`), bearerH(tk)},
			// The header is not forwarded to OpenAI.
			{oai.path, chat(""), map[string]string{"authorization": "Bearer " + tk, "anthropic-beta": "context-1m-2025-08-07"}},
			{ant.path, claude(`,"speed":"standard","inference_geo":"global","service_tier":"standard_only"`), ant.auth(tk)},
			// A tool of the client's own, named as a server tool is.
			{ant.path, claude(`,"tools":[{"name":"web_search","input_schema":{"type":"object"}}]`), ant.auth(tk)},
			{ant.path, claude(""), map[string]string{"x-api-key": tk, "anthropic-beta": "interleaved-thinking-2025-05-14"}},
			// Counting tokens runs no tool.
			{"/proxy/anthropic/v1/messages/count_tokens", claude(`,"tools":[{"type":"web_search_20250305","name":"web_search"}]`), ant.auth(tk)},
			// The translation sends no service tier.
			{"/proxy/anthropic/v1/chat/completions", chat(`,"service_tier":"priority"`), bearerH(tk)},
			{goo.path, gemini(`,"tools":[{"functionDeclarations":[{"name":"googleSearch"}]},{"googleSearch":null}]`), goo.auth(tk)},
			{goo.path, gemini(`,"generationConfig":{"responseModalities":["TEXT"],"maxOutputTokens":10},"service_tier":"Standard","serviceTier":"flex"`), goo.auth(tk)},
		} {
			if a := e.do(call{path: c.path, body: c.body, header: c.header}); a.status != 200 {
				t.Errorf("%s %s: %d %s", c.path, c.body, a.status, a.body)
			}
		}
		mustContain(t, "upstream body", string(e.fake(upstreamfake.OpenAI).Requests()[0].Body), `"service_tier":"auto"`)
		if sent := string(e.fake(upstreamfake.Anthropic).Last(t).Body); strings.Contains(sent, `"service_tier":`) {
			t.Errorf("translated body %s", sent)
		}
	})
	t.Run("OpenAI's server tools with tools allowed", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true"})
		tk := e.user(users.Patch{})
		for _, tool := range []string{`{"type":"web_search_preview"}`, `{"type":"web_search","search_context_size":"low"}`,
			`{"type":"file_search","vector_store_ids":["vs_1"]}`, `{"type":"code_interpreter","container":{"type":"auto"}}`,
			`{"type":"shell","environment":{"type":"local","type":"container_auto"}}`, `{"type":"shell","environment":{"type":"container_reference","container_id":"cntr_1"}}`} {
			body := `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"function","name":"f","parameters":{}},` + tool + `]}`
			a := e.do(call{path: "/proxy/openai/v1/responses", body: body, header: bearerH(tk)})
			refusedUnsent(t, e, provCases[0], tk, a, 400, "tool runs on the provider's side")
		}
		// A remote MCP server or connector, called from the operator's
		// account.
		for _, tool := range []string{`{"type":"mcp","server_label":"x","server_url":"https://mcp.example.com/sse","require_approval":"never"}`,
			`{"type":"function","type":"mcp","server_label":"g","connector_id":"connector_gmail","authorization":"ya29.x"}`} {
			body := `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[` + tool + `]}`
			a := e.do(call{path: "/proxy/openai/v1/responses", body: body, header: bearerH(tk)})
			refusedUnsent(t, e, provCases[0], tk, a, 400, "mcp: remote MCP servers are called by the provider")
		}
		// Tools the client runs: a function named as a server tool is, a
		// local shell, the computer it drives.
		for _, tool := range []string{`{"type":"function","name":"web_search","parameters":{}}`, `{"type":"shell","environment":{"type":"local"}}`,
			`{"type":"computer_use_preview","environment":"browser","display_width":1024,"display_height":768}`} {
			body := `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[` + tool + `]}`
			if a := e.do(call{path: "/proxy/openai/v1/responses", body: body, header: bearerH(tk)}); a.status != 200 {
				t.Errorf("%s: %d %s", tool, a.status, a.body)
			}
		}
	})
}

func TestVisionServices(t *testing.T) {
	images := map[upstreamfake.Kind]string{
		upstreamfake.OpenAI:    `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`,
		upstreamfake.Anthropic: `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}`,
		upstreamfake.Google:    `{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/jpeg","data":"AAAA"}}]}]}`,
		upstreamfake.Mistral:   `{"model":"mistral-small-latest","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image_url","image_url":"https://example.com/a.png"}]}]}`,
	}
	for _, pc := range provCases {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, nil)
			tk := e.user(users.Patch{})
			a := e.do(call{path: pc.path, body: images[pc.kind], header: pc.auth(tk)})
			refusedUnsent(t, e, pc, tk, a, 403, "images are not permitted")
			// A prompt that only speaks of images is no image.
			if a := e.do(call{path: pc.path, body: withText(pc, `draw an \"image\" of inline_data`), header: pc.auth(tk)}); a.status != 200 {
				t.Errorf("text about images: %d %s", a.status, a.body)
			}
			// Special users are exempt, as in the original.
			sp := e.user(users.Patch{Type: setOpt(users.Special)})
			if a := e.do(call{path: pc.path, body: images[pc.kind], header: pc.auth(sp)}); a.status != 200 {
				t.Errorf("special user: %d %s", a.status, a.body)
			}
		})
	}
	t.Run("listed services only", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ALLOWED_VISION_SERVICES": "openai,google-ai"})
		tk := e.user(users.Patch{})
		for _, pc := range provCases {
			a := e.do(call{path: pc.path, body: images[pc.kind], header: pc.auth(tk)})
			want := map[upstreamfake.Kind]int{upstreamfake.OpenAI: 200, upstreamfake.Google: 200, upstreamfake.Anthropic: 403, upstreamfake.Mistral: 403}[pc.kind]
			if a.status != want {
				t.Errorf("%s: %d, want %d: %s", pc.kind, a.status, want, a.body)
			}
		}
	})
	t.Run("escaped or repeated members", func(t *testing.T) {
		e := newEnv(t, nil)
		tk := e.user(users.Patch{})
		for _, body := range []string{
			`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"\u0069mage_url","\u0069mage_url":{"url":"x"}}]}]}`,
			`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","type":"image_url","image_url":{"url":"x"}}]}]}`,
			`{"contents":[{"parts":[{"inlineData":{"mimeType":"text/plain","mimeType":"IMAGE/png"}}]}]}`,
		} {
			pc := provCases[0]
			if strings.Contains(body, "contents") {
				pc = provCases[2]
			}
			if a := e.do(call{path: pc.path, body: body, header: pc.auth(tk)}); a.status != 403 {
				t.Errorf("%s: %d %s", body, a.status, a.body)
			}
		}
	})
	t.Run("Google data that is no image", func(t *testing.T) {
		e := newEnv(t, nil)
		tk := e.user(users.Patch{})
		pdf := `{"contents":[{"role":"user","parts":[{"inline_data":{"mime_type":"application/pdf","data":"AAAA"}}]}]}`
		if a := e.do(call{path: provCases[2].path, body: pdf, header: provCases[2].auth(tk)}); a.status != 200 {
			t.Errorf("%d %s", a.status, a.body)
		}
	})
	t.Run("Google video and untyped files", func(t *testing.T) {
		e := newEnv(t, nil)
		tk := e.user(users.Patch{})
		for _, part := range []string{
			`{"inlineData":{"mimeType":"video/mp4","data":"AAAA"}}`,
			`{"file_data":{"mime_type":"VIDEO/webm","file_uri":"https://generativelanguage.googleapis.com/v1beta/files/clip"}}`,
			`{"fileData":{"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/cat-png"}}`,
			`{"fileData":{"mimeType":null,"fileUri":"https://generativelanguage.googleapis.com/v1beta/files/cat-png"}}`,
		} {
			body := `{"contents":[{"role":"user","parts":[{"text":"what is shown"},` + part + `]}]}`
			a := e.do(call{path: provCases[2].path, body: body, header: provCases[2].auth(tk)})
			refusedUnsent(t, e, provCases[2], tk, a, 403, "images are not permitted")
		}
	})
}

func TestMaxContextTokens(t *testing.T) {
	long := strings.Repeat("word ", 160) // 800 bytes: about 200 tokens
	for _, pc := range provCases {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, map[string]string{"MAX_CONTEXT_TOKENS_OPENAI": "150", "MAX_CONTEXT_TOKENS_ANTHROPIC": "150"})
			tk := e.user(users.Patch{})
			a := e.do(call{path: pc.path, body: withText(pc, long), header: pc.auth(tk)})
			if pc.kind == upstreamfake.Google || pc.kind == upstreamfake.Mistral {
				// The original's two variables name OpenAI and Anthropic only.
				if a.status != 200 {
					t.Errorf("%d %s", a.status, a.body)
				}
				return
			}
			refusedUnsent(t, e, pc, tk, a, 400, "exceeds the context size limit. (max: 150 tokens")
			mustContain(t, "error", string(a.body), "+ 100 output")
			if a := e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)}); a.status != 200 {
				t.Errorf("a small request: %d %s", a.status, a.body)
			}
			sp := e.user(users.Patch{Type: setOpt(users.Special)})
			if a := e.do(call{path: pc.path, body: withText(pc, long), header: pc.auth(sp)}); a.status != 200 {
				t.Errorf("special user: %d %s", a.status, a.body)
			}
		})
	}
}

// The Responses API's image_generation tool makes images (with
// gpt-image-1) from a text route: with tools allowed, it is still held to
// the image family's place in ALLOWED_MODEL_FAMILIES, which by default
// has none, as a request on the image route is.
func TestImageGenerationToolNeedsTheImageFamily(t *testing.T) {
	image := `{"model":"gpt-4o","max_output_tokens":20,"input":"draw a fox","tools":[{"type":"image_generation"}]}`
	repeated := `{"model":"gpt-4o","max_output_tokens":20,"input":"draw a fox","tools":[{"type":"image_generation","type":"function","name":"f"}],` +
		`"tools":[{"type":"function","name":"g","parameters":{}},{"t\u0079pe":"image_generation"}]}`
	function := `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"function","name":"image_generation","parameters":{}}]}`
	path := "/proxy/openai/v1/responses"
	t.Run("image family not allowed", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true"})
		tk := e.user(users.Patch{})
		for _, body := range []string{image, repeated} {
			a := e.do(call{path: path, body: body, header: bearerH(tk)})
			refusedUnsent(t, e, provCases[0], tk, a, 403, "gpt-image")
		}
		if a := e.do(call{path: path, body: function, header: bearerH(tk)}); a.status != 200 {
			t.Errorf("a function named image_generation: %d %s", a.status, a.body)
		}
	})
	t.Run("image family allowed", func(t *testing.T) {
		e := newEnv(t, map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "true", "ALLOWED_MODEL_FAMILIES": "gpt4o,gpt-image"})
		tk := e.user(users.Patch{})
		if a := e.do(call{path: path, body: image, header: bearerH(tk)}); a.status != 200 {
			t.Errorf("%d %s", a.status, a.body)
		}
	})
}

// A Responses request that names a stored response or conversation is
// answered with context the upstream holds: the prompt tollgate sees is
// the latest turn only, so a chain of small requests would grow the
// context past MAX_CONTEXT_TOKENS_OPENAI. While the limit applies, such a
// request is refused; without it, or for a special user, it is served.
func TestMaxContextTokensRefusesStoredContext(t *testing.T) {
	e := newEnv(t, map[string]string{"MAX_CONTEXT_TOKENS_OPENAI": "150"})
	tk := e.user(users.Patch{})
	path := "/proxy/openai/v1/responses"
	for _, body := range []string{
		`{"model":"gpt-4o","max_output_tokens":20,"input":"and then?","previous_response_id":"resp_0123"}`,
		`{"model":"gpt-4o","max_output_tokens":20,"input":"and then?","conversation":"conv_0123"}`,
		`{"model":"gpt-4o","max_output_tokens":20,"input":"and then?","conversation":{"id":"conv_0123"}}`,
		`{"model":"gpt-4o","max_output_tokens":20,"input":[{"type":"item_reference","id":"msg_0123"},{"role":"user","content":"and then?"}]}`,
		`{"model":"gpt-4o","max_output_tokens":20,"input":[{"id":"msg_0123","type":"message","type":"item_reference"}]}`,
	} {
		a := e.do(call{path: path, body: body, header: bearerH(tk)})
		if a.status != 400 || !strings.Contains(string(a.body), "context") {
			t.Errorf("%s: %d %s; want 400", body, a.status, a.body)
		}
	}
	if n := e.fake(upstreamfake.OpenAI).Count(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
	for _, body := range []string{
		`{"model":"gpt-4o","max_output_tokens":20,"input":"hi","previous_response_id":null}`,
		`{"model":"gpt-4o","max_output_tokens":20,"input":[{"role":"user","content":"an item_reference"}]}`,
	} {
		if a := e.do(call{path: path, body: body, header: bearerH(tk)}); a.status != 200 {
			t.Errorf("no stored context: %s: %d %s", body, a.status, a.body)
		}
	}
	sp := e.user(users.Patch{Type: setOpt(users.Special)})
	if a := e.do(call{path: path, body: `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","previous_response_id":"resp_0123"}`, header: bearerH(sp)}); a.status != 200 {
		t.Errorf("special user: %d %s", a.status, a.body)
	}
	free := newEnv(t, nil)
	ftk := free.user(users.Patch{})
	if a := free.do(call{path: path, body: `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","previous_response_id":"resp_0123"}`, header: bearerH(ftk)}); a.status != 200 {
		t.Errorf("no context limit: %d %s", a.status, a.body)
	}
}

// What names an object stored on the operator's account (an uploaded
// file, a bucket, a stored prompt, a context cache) is refused for every
// user, special ones and every setting included: no route here stores
// one for a token holder, so it is the operator's content, unseen by the
// estimates and, for a stored prompt, run with the operator's model.
func TestOperatorStoredObjectsRefused(t *testing.T) {
	e, ups := paidMounts(t, map[string]string{"ALLOW_PAID_FEATURES": "true", "ALLOW_OPENAI_TOOL_USAGE": "true",
		"ALLOWED_VISION_SERVICES": "openai,anthropic,google-ai,gcp", "MAX_CONTEXT_TOKENS_OPENAI": "0"})
	tk := e.user(users.Patch{Type: setOpt(users.Special)})
	const (
		chat   = "/proxy/openai/v1/chat/completions"
		resp   = "/proxy/openai/v1/responses"
		ant    = "/proxy/anthropic/v1/messages"
		aws    = "/proxy/aws/claude/v1/messages"
		goo    = "/proxy/google-ai/v1beta/models/gemini-2.5-flash:generateContent"
		count  = "/proxy/google-ai/v1beta/models/gemini-2.5-flash:countTokens"
		vertex = "/proxy/gcp/gemini/v1beta/models/gemini-2.5-flash:generateContent"
	)
	bearer, xKey, gKey := bearerH(tk), map[string]string{"x-api-key": tk}, map[string]string{"x-goog-api-key": tk}
	claude := func(block string) string {
		return `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[` + block + `,{"type":"text","text":"sum it up"}]}]}`
	}
	gemini := func(part, extra string) string {
		return `{"contents":[{"role":"user","parts":[` + part + `,{"text":"sum it up"}]}]` + extra + `}`
	}
	file := "a file stored on this proxy's account"
	object := "names an object stored on this proxy's account (a container, a vector store"
	for _, c := range []struct {
		name, path, body string
		header           map[string]string
		msg              string
	}{
		{"chat file part", chat, `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]}`, bearer, file},
		{"Responses input_file", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":[{"role":"user","content":[{"type":"input_file","file_id":"file-abc"}]}]}`, bearer, file},
		{"Responses input_image by id", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":[{"role":"user","content":[{"type":"input_image","file_id":"file-abc","detail":"auto"}]}]}`, bearer, file},
		{"escaped file_id", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":[{"role":"user","content":[{"type":"input_file","file_\u0069d":"file-abc"}]}]}`, bearer, file},
		{"file in a function's output", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_file","file_id":"file-abc"}]}]}`, bearer, file},
		{"stored prompt", resp, `{"max_output_tokens":20,"prompt":{"id":"pmpt_abc","version":"2","variables":{"city":"Paris"}}}`, bearer, "prompt: it names an object stored on this proxy's account"},
		{"escaped stored prompt", resp, `{"model":"gpt-4o","input":"hi","pr\u006fmpt":{"id":"pmpt_abc"}}`, bearer, "prompt: it names an object stored"},
		{"Anthropic file document", ant, claude(`{"type":"document","source":{"type":"file","file_id":"file_011abc"}}`), xKey, file},
		{"Anthropic file image", ant, claude(`{"type":"image","source":{"type":"file","file_id":"file_011abc"}}`), xKey, file},
		{"Anthropic file in a tool result", ant, `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"document","source":{"type":"file","file_id":"file_011abc"}}]}]}]}`, xKey, file},
		{"Anthropic container upload", ant, claude(`{"type":"container_upload","file_id":"file_011abc"}`), xKey, file},
		{"Anthropic custom skill", ant, `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"code_execution_20250825","name":"code_execution"}],` +
			`"container":{"skills":[{"type":"anthropic","skill_id":"xlsx"},{"type":"anthropic","type":"custom","skill_id":"skill_01AbC","version":"latest"}]}}`, xKey, file},
		{"OpenAI skill reference", resp, `{"model":"gpt-5","max_output_tokens":20,"input":"hi","tools":[{"type":"shell","environment":{"type":"container_auto","skills":[{"type":"skill_reference","skill_id":"skill_abc"}]}}]}`, bearer, file},
		{"Bedrock file document", aws, claude(`{"type":"document","source":{"type":"file","file_id":"file_011abc"}}`), xKey, file},
		{"Gemini uploaded file", goo, gemini(`{"fileData":{"mimeType":"application/pdf","fileUri":"https://generativelanguage.googleapis.com/v1beta/files/abc"}}`, ""), gKey, file},
		{"Gemini file name", goo, gemini(`{"file_data":{"mime_type":"application/pdf","file_uri":"files/abc"}}`, ""), gKey, file},
		{"Gemini file, type repeated", goo, gemini(`{"fileData":{"mimeType":"application/pdf","fileUri":"https://youtu.be/x","fileUri":"gs://operator-bucket/a.pdf"}}`, ""), gKey, file},
		{"Vertex bucket", vertex, gemini(`{"fileData":{"mimeType":"application/pdf","fileUri":"gs://operator-bucket/contracts/a.pdf"}}`, ""), gKey, file},
		{"Vertex bucket over https", vertex, gemini(`{"fileData":{"mimeType":"application/pdf","fileUri":"https://storage.googleapis.com/operator-bucket/a.pdf"}}`, ""), gKey, file},
		{"Vertex S3 object", vertex, gemini(`{"fileData":{"mimeType":"application/pdf","fileUri":"s3://operator-bucket/a.pdf"}}`, ""), gKey, file},
		{"code interpreter container by id", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"list the files","tools":[{"type":"code_interpreter","container":"cntr_abc"}]}`, bearer, object},
		{"escaped container id", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"code_interpreter","cont\u0061iner":"cntr_abc"}]}`, bearer, object},
		{"container id after an automatic one", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"code_interpreter","container":{"type":"auto"},"container":"cntr_abc"}]}`, bearer, object},
		{"files in an automatic container", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"code_interpreter","container":{"type":"auto","file_ids":["file-abc"]}}]}`, bearer, file},
		{"shell container reference", resp, `{"model":"gpt-5","max_output_tokens":20,"input":"ls","tools":[{"type":"shell","environment":{"type":"container_reference","container_id":"cntr_abc"}}]}`, bearer, object},
		{"file search vector store", resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"file_search","vector_store_ids":["vs_abc"]}]}`, bearer, object},
		{"Anthropic container by id", ant, `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"ls"}],"tools":[{"type":"code_execution_20250825","name":"code_execution"}],"container":"container_011abc"}`, xKey, object},
		{"Anthropic container object by id", ant, `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"ls"}],"tools":[{"type":"code_execution_20250825","name":"code_execution"}],"container":{"id":"container_011abc","skills":[]}}`, xKey, object},
		{"Gemini file search store", goo, gemini(`{"text":"hi"}`, `,"tools":[{"fileSearch":{"fileSearchStoreNames":["fileSearchStores/s"]}}]`), gKey, object},
		{"Vertex AI Search data store", vertex, gemini(`{"text":"hi"}`, `,"tools":[{"retrieval":{"vertex_ai_search":{"datastore":"projects/p/locations/global/collections/default_collection/dataStores/d"}}}]`), gKey, object},
		{"Vertex RAG corpus", vertex, gemini(`{"text":"hi"}`, `,"tools":[{"retrieval":{"vertexRagStore":{"ragResources":[{"ragCorpus":"projects/p/locations/us-central1/ragCorpora/1"}]}}}]`), gKey, object},
		{"Azure managed identity", "/proxy/azure/openai/v1/chat/completions", `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"data_sources":[{"type":"azure_search","parameters":{"endpoint":"https://s.search.windows.net","index_name":"docs","authentication":{"type":"user_assigned_managed_identity","managed_identity_resource_id":"/subscriptions/x"}}}]}`, bearer, object},
		{"Gemini context cache", goo, gemini(`{"text":"hi"}`, `,"cachedContent":"cachedContents/abc"`), gKey, "cachedContent: it names an object stored"},
		{"Gemini context cache, counted", count, gemini(`{"text":"hi"}`, `,"cached_content":"cachedContents/abc"`), gKey, "cached_content: it names an object stored"},
		{"Vertex context cache", vertex, gemini(`{"text":"hi"}`, `,"cachedContent":"projects/p/locations/us-central1/cachedContents/1"`), gKey, "cachedContent"},
	} {
		a := e.do(call{path: c.path, body: c.body, header: c.header})
		if a.status != 400 || a.header.Get(headerErrorStatus) != "400" {
			t.Errorf("%s: %d %s", c.name, a.status, a.body)
			continue
		}
		switch {
		case strings.Contains(c.path, ":"):
			googleShape(t, a)
		case strings.Contains(c.path, "/messages"):
			anthropicShape(t, a)
		default:
			openAIShape(t, a)
		}
		got, _ := dig(a.json(t), "error", "message").(string)
		mustContain(t, c.name, got, c.msg)
	}
	for _, up := range ups {
		if n := up.Count(); n != 0 {
			t.Errorf("%d requests reached an upstream", n)
		}
	}
	if u := e.get(tk); u.PromptCount != 0 {
		t.Errorf("a refused request was charged: %+v", u)
	}
	// What only looks like a reference: a file sent whole, a web URL the
	// upstream fetches as anyone may, a function declaring a file_id
	// parameter or called with one, citations of a replayed answer, a
	// null member, a completions prompt.
	for _, c := range []struct {
		path, body string
		header     map[string]string
	}{
		{chat, `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":[{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0="}}]}]}`, bearer},
		{chat, `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"what is my file_id?"}],"tools":[{"type":"function","function":{"name":"open","parameters":{"type":"object","properties":{"file_id":{"type":"string"}}}}}]}`, bearer},
		{resp, `{"model":"gpt-4o","max_output_tokens":20,"input":[{"role":"assistant","content":[{"type":"output_text","text":"see","annotations":[{"type":"file_citation","file_id":"file-abc","index":0}]}]},{"role":"user","content":"ok"}]}`, bearer},
		{resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","prompt":null}`, bearer},
		{"/proxy/openai/v1/completions", `{"model":"gpt-3.5-turbo-instruct","max_tokens":10,"prompt":"file_id"}`, bearer},
		{ant, claude(`{"type":"tool_use","id":"t","name":"open","input":{"file_id":"file_011abc"}}`), xKey},
		{ant, claude(`{"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}`), xKey},
		{ant, `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"code_execution_20250825","name":"code_execution"}],` +
			`"container":{"skills":[{"type":"anthropic","skill_id":"pptx","version":"latest"}]}}`, xKey},
		{goo, gemini(`{"fileData":{"mimeType":"video/mp4","fileUri":"https://www.youtube.com/watch?v=x"}}`, `,"cachedContent":null`), gKey},
		{goo, gemini(`{"functionCall":{"name":"open","args":{"file_id":"files/abc"}}}`, ""), gKey},
		// A new container made for the request, without files or with
		// none; a replayed call that ran in a container; a function
		// taking a container parameter; an empty store list.
		{resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"code_interpreter","container":{"type":"auto"}}]}`, bearer},
		{resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"code_interpreter","container":{"type":"auto","file_ids":[],"id":null}}]}`, bearer},
		{resp, `{"model":"gpt-4o","max_output_tokens":20,"input":[{"type":"code_interpreter_call","id":"ci_1","status":"completed","code":"print(1)","container_id":"cntr_abc","outputs":null},{"role":"user","content":"and now?"}]}`, bearer},
		{resp, `{"model":"gpt-4o","max_output_tokens":20,"input":"hi","tools":[{"type":"function","name":"run","parameters":{"type":"object","properties":{"container":{"type":"string"},"vector_store_ids":{"type":"array"}}}}]}`, bearer},
		{resp, `{"model":"gpt-5","max_output_tokens":20,"input":"ls","tools":[{"type":"shell","environment":{"type":"container_auto"}}]}`, bearer},
		{ant, `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"ls"}],"tools":[{"type":"code_execution_20250825","name":"code_execution"}],"container":null}`, xKey},
		{"/proxy/azure/openai/v1/chat/completions", `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"data_sources":[{"type":"azure_search","parameters":{"endpoint":"https://s.search.windows.net","index_name":"docs","authentication":{"type":"api_key","key":"users-own"}}}]}`, bearer},
	} {
		if a := e.do(call{path: c.path, body: c.body, header: c.header}); a.status != 200 {
			t.Errorf("%s %s: %d %s", c.path, c.body, a.status, a.body)
		}
	}
}

// OpenAI's completions and embeddings take a prompt as token ids: each id
// is a token of the prompt, counted toward MAX_CONTEXT_TOKENS and the
// quota's estimate like text (a number is no string: it counted nothing).
func TestMaxContextTokensCountsTokenIDs(t *testing.T) {
	ids := strings.TrimSuffix(strings.Repeat("1734, ", 3000), ", ") // 3000 tokens
	e := newEnv(t, map[string]string{"MAX_CONTEXT_TOKENS_OPENAI": "2000"})
	tk := e.user(users.Patch{})
	for _, c := range []struct{ path, body string }{
		{"/proxy/openai/v1/completions", `{"model":"gpt-3.5-turbo-instruct","max_tokens":10,"prompt":[` + ids + `]}`},
		{"/proxy/openai/v1/completions", `{"model":"gpt-3.5-turbo-instruct","max_tokens":10,"prompt":[[` + ids + `]]}`},
		{"/proxy/openai/v1/embeddings", `{"model":"text-embedding-3-small","input":[[` + ids + `],[1,2]]}`},
	} {
		a := e.do(call{path: c.path, body: c.body, header: bearerH(tk)})
		if a.status != 400 || !strings.Contains(string(a.body), "exceeds the context size limit") {
			t.Errorf("%s %.60s…: %d %.200s; want 400", c.path, c.body, a.status, a.body)
		}
	}
	if n := e.fake(upstreamfake.OpenAI).Count(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
	if a := e.do(call{path: "/proxy/openai/v1/completions", body: `{"model":"gpt-3.5-turbo-instruct","max_tokens":10,"prompt":[1734, 1734]}`, header: bearerH(tk)}); a.status != 200 {
		t.Errorf("a short prompt of ids: %d %s", a.status, a.body)
	}
}

// Chinese and Japanese are written without spaces: a long prompt in them
// counts toward MAX_CONTEXT_TOKENS like any other text, not as base64.
func TestMaxContextTokensCountsUnspacedScripts(t *testing.T) {
	long := strings.Repeat("这是一个很长的中文提示，用来测试上下文限制。", 50) // 3300 bytes
	for _, pc := range provCases[:2] {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, map[string]string{"MAX_CONTEXT_TOKENS_OPENAI": "150", "MAX_CONTEXT_TOKENS_ANTHROPIC": "150"})
			tk := e.user(users.Patch{})
			a := e.do(call{path: pc.path, body: withText(pc, long), header: pc.auth(tk)})
			refusedUnsent(t, e, pc, tk, a, 400, "exceeds the context size limit. (max: 150 tokens")
		})
	}
}

// Text written without spaces or punctuation (CamelCase words, which a
// model reads as well as spaced text) looks like base64, and counts
// toward MAX_CONTEXT_TOKENS all the same; an image's base64 does not: the
// image counts its stated figure (1,600 for Claude), not its bytes.
func TestMaxContextTokensCountsTextThatLooksLikeBase64(t *testing.T) {
	long := strings.Repeat("TellMeALongStoryAboutTheSea", 400) // 10800 bytes: ~2700 tokens
	vars := map[string]string{"MAX_CONTEXT_TOKENS_OPENAI": "150", "MAX_CONTEXT_TOKENS_ANTHROPIC": "150", "ALLOWED_VISION_SERVICES": "anthropic"}
	for _, pc := range provCases[:2] {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, vars)
			tk := e.user(users.Patch{})
			a := e.do(call{path: pc.path, body: withText(pc, long), header: pc.auth(tk)})
			refusedUnsent(t, e, pc, tk, a, 400, "exceeds the context size limit. (max: 150 tokens")
		})
	}
	t.Run("an image", func(t *testing.T) {
		e := newEnv(t, map[string]string{"MAX_CONTEXT_TOKENS_ANTHROPIC": "2000", "ALLOWED_VISION_SERVICES": "anthropic"})
		tk := e.user(users.Patch{})
		image := `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},` +
			`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + strings.Repeat("iVBORw0KGgo+", 1<<20/12) + `"}}]}]}`
		if a := e.do(call{path: provCases[1].path, body: image, header: provCases[1].auth(tk)}); a.status != 200 {
			t.Errorf("a 1 MiB image: %d %.300s", a.status, a.body)
		}
		e = newEnv(t, map[string]string{"MAX_CONTEXT_TOKENS_ANTHROPIC": "1500", "ALLOWED_VISION_SERVICES": "anthropic"})
		tk = e.user(users.Patch{})
		a := e.do(call{path: provCases[1].path, body: image, header: provCases[1].auth(tk)})
		refusedUnsent(t, e, provCases[1], tk, a, 400, "exceeds the context size limit. (max: 1500 tokens, requested: 1626 prompt")
	})
}

func TestBlockedOrigins(t *testing.T) {
	vars := map[string]string{"BLOCKED_ORIGINS": "badsite.example,evil", "BLOCK_MESSAGE": "Adults only <here>.", "BLOCK_REDIRECT": `https://elsewhere.example/?a=1&b="2"`}
	for _, pc := range provCases {
		t.Run(string(pc.kind), func(t *testing.T) {
			e := newEnv(t, vars)
			tk := e.user(users.Patch{})
			h := pc.auth(tk)
			h["Origin"] = "https://www.badsite.example"
			a := e.do(call{path: pc.path, body: pc.body, header: h})
			refusedUnsent(t, e, pc, tk, a, 403, "Adults only <here>.")
			h = pc.auth(tk)
			h["Origin"] = "https://good.example"
			if a := e.do(call{path: pc.path, body: pc.body, header: h}); a.status != 200 {
				t.Errorf("another origin: %d %s", a.status, a.body)
			}
		})
	}
	t.Run("a browser is sent on", func(t *testing.T) {
		e := newEnv(t, vars)
		tk := e.user(users.Patch{})
		a := e.do(call{method: "GET", path: "/proxy/openai/v1/models", header: map[string]string{
			"Authorization": "Bearer " + tk, "Accept": "text/html,application/xhtml+xml", "Referer": "https://evil.example/page"}})
		if a.status != 403 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
			t.Fatalf("%d %v %s", a.status, a.header, a.body)
		}
		body := string(a.body)
		mustContain(t, "page", body, `content="3; url=https://elsewhere.example/?a=1&amp;b=&#34;2&#34;"`)
		mustContain(t, "page", body, "Adults only &lt;here&gt;.")
		if a.header.Get(headerErrorStatus) != "403" {
			t.Errorf("error headers %v", a.header)
		}
		// An HTML page of the proxy's origin, which it shares with the
		// admin UI under Hosting: the headers of every tollgate page.
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if a.header.Get(k) != v {
				t.Errorf("%s: %q, want %q", k, a.header.Get(k), v)
			}
		}
		if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("Content-Security-Policy %q", csp)
		}
		if n := e.fake(upstreamfake.OpenAI).Count(); n != 0 {
			t.Errorf("%d requests reached the upstream", n)
		}
	})
}

// FuzzPolicyBody: the policies read any body without failing, an image is
// only ever found where an image marker is, and the prompt text read is
// bounded by the body.
func FuzzPolicyBody(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`))
	f.Add([]byte(`{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png"}}]}]}`))
	f.Add([]byte(`{"system":"zz","messages":[[[[[[{"text":"zz"}]]]]]]}`))
	f.Add([]byte(`[1,{"a":null},"zz"`))
	f.Add([]byte(`{"model":"gpt-4o","tools":[{"type":"function"}],"messages":[]}`))
	f.Add([]byte(`{"model":"gpt-4o","\u0074ools":[{}],"messages":[{"role":"user","content":"say \"tools\" \\u"}]}`))
	f.Add([]byte(`{"model":"gpt-4o","service_tier":"priority","tools":[{"googleSearch":{}},{"type":"web_search_20250305"}]}`))
	f.Add([]byte(`{"anthropic_beta":["context-1m-2025-08-07"],"speed":"fast","web_search_options":{}}`))
	f.Add([]byte(`{"generationConfig":{"responseModalities":["AUDIO"]},"messages":[{"content":[{"type":"input_audio","input_audio":{}}]}]}`))
	f.Add([]byte(`{"tools":[{"container":"cntr_1"},{"environment":{"type":"container_reference"}},{"vector_store_ids":["vs"]}],"data_sources":[{"parameters":{"authentication":{"type":"system_assigned_managed_identity"}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// The one pass never hides what the walks find.
		m := markers(body)
		doc := gjson.ParseBytes(body)
		if found, _ := findInputs(doc, imageInput); !m.image && found != 0 {
			t.Errorf("image walked into past the markers in %q", body)
		}
		if !m.tools && usesTools(doc) {
			t.Errorf("tools walked into past the markers in %q", body)
		}
		if !m.tools && !m.paid && paidBody(doc) != nil {
			t.Errorf("a paid feature walked into past the markers in %q", body)
		}
		if found, _ := findInputs(doc, audioInput); !m.audio && found != 0 {
			t.Errorf("audio walked into past the markers in %q", body)
		}
		if found, _ := findInputs(doc, operatorStored); !m.stored && found != 0 {
			t.Errorf("a stored object walked into past the markers in %q", body)
		}
		text, _ := promptText(body)
		if len(text) > 2*len(body)+16 {
			t.Errorf("prompt text longer than the body allows: %d from %d", len(text), len(body))
		}
	})
}

// BenchmarkPolicies: the body checks every admitted request passes with
// the defaults (images and tools refused) and with rejected phrases.
func BenchmarkPolicies(b *testing.B) {
	body := []byte(`{"model":"gpt-4o","max_tokens":300,"messages":[{"role":"system","content":"` + strings.Repeat("You are a helpful assistant. ", 40) +
		`"},{"role":"user","content":"` + strings.Repeat("Tell me a story about a lighthouse. ", 60) + `"}]}`)
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"defaults", nil},
		{"phrases", map[string]string{"REJECT_PHRASES": "forbidden topic,another phrase,third one"}},
	} {
		cfg, err := config.FromMap(tt.env)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := checkBody(&cfg.Policies, models.OpenAI, false, body, true, true, false, 600, 900, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
