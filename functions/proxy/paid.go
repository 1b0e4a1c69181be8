package proxy

import (
	"net/http"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/shared/users"
)

// Paid features are what an upstream bills beyond the tokens the quotas
// count: tools it runs itself (per search, per grounded prompt, per
// container, or content it fetches that no estimate sees), search models
// that search on every call, and options that raise the price of every
// token (a tier, a mode, a beta, audio in or out). Without ALLOW_PAID_FEATURES they are refused, in every format
// served: a body is read for all of them, whichever API it speaks.
var (
	// serverToolTypes start the type of a tool the upstream runs: OpenAI's
	// web_search(_preview), file_search and code_interpreter, Anthropic's
	// web_search_*, web_fetch_* and code_execution_*. OpenAI's shell runs
	// there too when its environment is a container (hostedEnvironment).
	// A remote MCP tool (OpenAI's mcp, Anthropic's mcp_toolset) has the
	// upstream call a server the request names, as web fetch does.
	serverToolTypes = []string{"web_search", "web_fetch", "code_execution", "code_interpreter", "file_search", "mcp"}
	// serverToolMembers name Gemini's (Google AI and Vertex) in a tool,
	// both spellings its JSON takes: grounding with Google Search or Maps,
	// Vertex's enterprise search and retrieval, file search, code
	// execution and URL context.
	serverToolMembers = map[string]bool{
		"googleSearch": true, "google_search": true, "googleSearchRetrieval": true, "google_search_retrieval": true,
		"googleMaps": true, "google_maps": true, "enterpriseWebSearch": true, "enterprise_web_search": true,
		"retrieval": true, "fileSearch": true, "file_search": true,
		"codeExecution": true, "code_execution": true, "urlContext": true, "url_context": true,
	}
	// standardPrice are the price options (OpenAI's, Anthropic's and
	// Gemini's service tier, Anthropic's speed and inference_geo) with the
	// values billed at the standard price or less, in any case; any other
	// (priority, fast, us) multiplies it.
	standardPrice = map[string][]string{
		"service_tier":  standardTiers,
		"serviceTier":   standardTiers,
		"speed":         {"standard"},
		"inference_geo": {"global"},
	}
	standardTiers = []string{"auto", "default", "standard", "flex", "standard_only"}
	// premiumBetaNames start the Anthropic betas billed above the standard
	// price per token: the 1M-token context (long-context prices past
	// 200K input tokens) and fast mode.
	premiumBetaNames = []string{"context-1m", "fast-mode"}
)

// paidBody refuses a body that asks for a paid feature. Every top-level
// member is read with its name unescaped, every occurrence of a repeated
// one: whichever the upstream's parser keeps, none is paid.
func paidBody(doc gjson.Result) error {
	var err error
	doc.ForEach(func(k, v gjson.Result) bool {
		if v.Type == gjson.Null {
			return true
		}
		switch name := k.String(); name {
		case "tools":
			if tool := serverTool(v); strings.HasPrefix(strings.ToLower(tool), "mcp") {
				err = remoteMCP(tool)
			} else if tool != "" {
				err = users.Errorf(users.CodeInvalid, "The %s tool runs on the provider's side and is billed beyond the tokens this proxy counts; server-side tools are not enabled on this proxy.", clip(tool))
			}
		case "mcp_servers":
			// Anthropic's MCP connector: the servers are called as a
			// remote mcp tool's are.
			if !(v.IsArray() && len(v.Array()) == 0) {
				err = remoteMCP(name)
			}
		case "audio":
			err = users.Errorf(users.CodeInvalid, "audio: audio output is billed at several times the price of text tokens, which this proxy's quotas count as text; it is not enabled on this proxy.")
		case "modalities":
			err = audioOut(name, v)
		case "generationConfig", "generation_config":
			// Gemini's speech (TTS) answers are audio tokens too; a tier
			// is read here as well as at the top.
			v.ForEach(func(k, m gjson.Result) bool {
				switch name := k.String(); name {
				case "responseModalities", "response_modalities":
					err = audioOut(name, m)
				default:
					err = priceOption(name, m)
				}
				return err == nil
			})
		case "data_sources":
			// Azure's On Your Data: searches (and embeds with) the
			// resource's own services, on the operator's account.
			if !(v.IsArray() && len(v.Array()) == 0) {
				err = users.Errorf(users.CodeInvalid, "data_sources: retrieval runs searches and embeddings billed beyond the tokens this proxy counts; it is not enabled on this proxy.")
			}
		case "web_search_options":
			err = users.Errorf(users.CodeInvalid, "web_search_options: web search is billed per search, beyond the tokens this proxy counts, and is not enabled on this proxy.")
		case "anthropic_beta":
			for _, b := range v.Array() {
				if err = premiumBetas(b.String()); err != nil {
					break
				}
			}
		default:
			err = priceOption(name, v)
		}
		return err == nil
	})
	return err
}

// remoteMCP refuses a remote MCP server: the upstream calls a server the
// request names, from the operator's account, and what it answers is
// prompt no estimate sees.
func remoteMCP(what string) error {
	return users.Errorf(users.CodeInvalid, "%s: remote MCP servers are called by the provider on this proxy's account, bringing in content this proxy's estimates do not see; they are not enabled on this proxy.", clip(what))
}

// priceOption refuses a price option (standardPrice) set to a value
// billed above the standard price.
func priceOption(name string, v gjson.Result) error {
	std, ok := standardPrice[name]
	if !ok || v.Type == gjson.Null || slices.ContainsFunc(std, func(s string) bool { return strings.EqualFold(s, v.String()) }) {
		return nil
	}
	return higherPrice(name + " " + clip(v.Raw))
}

// serverTool names the first tool of a tools list that the upstream runs
// itself ("" for none). Each tool's members are all read, a type or a
// Gemini tool member given twice included.
func serverTool(tools gjson.Result) string {
	if !tools.IsArray() {
		return ""
	}
	found := ""
	tools.ForEach(func(_, t gjson.Result) bool {
		t.ForEach(func(k, v gjson.Result) bool {
			switch name := k.String(); {
			case name == "type":
				if typ := strings.ToLower(v.String()); hasAnyPrefix(typ, serverToolTypes) {
					found = v.String()
				}
			case serverToolMembers[name] && v.Type != gjson.Null:
				found = name
			case name == "environment" && hostedEnvironment(v):
				found = "hosted shell"
			}
			return found == ""
		})
		return found == ""
	})
	return found
}

// hostedEnvironment reports a tool environment of a container OpenAI
// runs ({"type":"container_auto"}, "container_reference"), billed as
// code_interpreter's is; a local one ({"type":"local"}) is the client's.
func hostedEnvironment(env gjson.Result) bool {
	hosted := false
	if env.IsObject() {
		env.ForEach(func(k, v gjson.Result) bool {
			hosted = k.String() == "type" && strings.HasPrefix(strings.ToLower(v.String()), "container")
			return !hosted
		})
	}
	return hosted
}

// audioOut refuses a list of output modalities that holds audio.
func audioOut(name string, modalities gjson.Result) error {
	for _, m := range modalities.Array() {
		if strings.EqualFold(m.String(), "audio") {
			return users.Errorf(users.CodeInvalid, "%s: audio output is billed at several times the price of text tokens, which this proxy's quotas count as text; it is not enabled on this proxy.", name)
		}
	}
	return nil
}

// paidRequest refuses what a request asks for outside its body: a search
// model (OpenAI's gpt-4o-search-preview, gpt-5-search-api: each call
// searches, billed per search), or a premium beta in an Anthropic-Beta
// header the provider forwards.
func paidRequest(model string, h http.Header, forwarded []string) error {
	if m := strings.ToLower(model); strings.Contains(m, "-search-") || strings.HasSuffix(m, "-search") {
		return users.Errorf(users.CodeInvalid, "%s searches the web on every call, billed per search beyond the tokens this proxy counts; search models are not enabled on this proxy.", clip(model))
	}
	const beta = "Anthropic-Beta"
	if !slices.Contains(forwarded, beta) {
		return nil
	}
	for _, v := range h.Values(beta) {
		if err := premiumBetas(v); err != nil {
			return err
		}
	}
	return nil
}

// premiumBetas refuses a comma list of Anthropic betas that holds one
// billed above the standard price.
func premiumBetas(list string) error {
	for b := range strings.SplitSeq(list, ",") {
		if b = strings.TrimSpace(b); hasAnyPrefix(strings.ToLower(b), premiumBetaNames) {
			return higherPrice("anthropic-beta " + clip(b))
		}
	}
	return nil
}

func higherPrice(what string) error {
	return users.Errorf(users.CodeInvalid, "%s is billed above the standard price per token, which this proxy's quotas do not see; it is not enabled on this proxy.", what)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// clip shortens what a refusal quotes of the request.
func clip(s string) string {
	if len(s) > 48 {
		return s[:45] + "..."
	}
	return s
}
