package providers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/shared/users"
)

// bedrockID is one Bedrock model: its base ID and whether on-demand calls
// must go through a cross-region inference profile (newer models have no
// on-demand throughput of their own).
type bedrockID struct {
	id      string
	profile bool
}

// claudeOnBedrock maps Anthropic's model names (dated, and their aliases)
// to Bedrock model IDs. Names are matched whole; a dated name wins over an
// alias because both are listed.
var claudeOnBedrock = map[string]bedrockID{
	"claude-instant-1.2":         {"anthropic.claude-instant-v1", false},
	"claude-2.0":                 {"anthropic.claude-v2", false},
	"claude-2.1":                 {"anthropic.claude-v2:1", false},
	"claude-3-haiku-20240307":    {"anthropic.claude-3-haiku-20240307-v1:0", false},
	"claude-3-sonnet-20240229":   {"anthropic.claude-3-sonnet-20240229-v1:0", false},
	"claude-3-opus-20240229":     {"anthropic.claude-3-opus-20240229-v1:0", false},
	"claude-3-opus-latest":       {"anthropic.claude-3-opus-20240229-v1:0", false},
	"claude-3-5-sonnet-20240620": {"anthropic.claude-3-5-sonnet-20240620-v1:0", false},
	"claude-3-5-sonnet-20241022": {"anthropic.claude-3-5-sonnet-20241022-v2:0", false},
	"claude-3-5-sonnet-latest":   {"anthropic.claude-3-5-sonnet-20241022-v2:0", false},
	"claude-3-5-haiku-20241022":  {"anthropic.claude-3-5-haiku-20241022-v1:0", true},
	"claude-3-5-haiku-latest":    {"anthropic.claude-3-5-haiku-20241022-v1:0", true},
	"claude-3-7-sonnet-20250219": {"anthropic.claude-3-7-sonnet-20250219-v1:0", true},
	"claude-3-7-sonnet-latest":   {"anthropic.claude-3-7-sonnet-20250219-v1:0", true},
	"claude-sonnet-4-20250514":   {"anthropic.claude-sonnet-4-20250514-v1:0", true},
	"claude-sonnet-4-0":          {"anthropic.claude-sonnet-4-20250514-v1:0", true},
	"claude-opus-4-20250514":     {"anthropic.claude-opus-4-20250514-v1:0", true},
	"claude-opus-4-0":            {"anthropic.claude-opus-4-20250514-v1:0", true},
	"claude-opus-4-1-20250805":   {"anthropic.claude-opus-4-1-20250805-v1:0", true},
	"claude-opus-4-1":            {"anthropic.claude-opus-4-1-20250805-v1:0", true},
	"claude-sonnet-4-5-20250929": {"anthropic.claude-sonnet-4-5-20250929-v1:0", true},
	"claude-sonnet-4-5":          {"anthropic.claude-sonnet-4-5-20250929-v1:0", true},
	"claude-haiku-4-5-20251001":  {"anthropic.claude-haiku-4-5-20251001-v1:0", true},
	"claude-haiku-4-5":           {"anthropic.claude-haiku-4-5-20251001-v1:0", true},
	"claude-opus-4-5-20251101":   {"anthropic.claude-opus-4-5-20251101-v1:0", true},
	"claude-opus-4-5":            {"anthropic.claude-opus-4-5-20251101-v1:0", true},
}

// mistralOnBedrock maps Mistral's names to Bedrock's.
var mistralOnBedrock = map[string]bedrockID{
	"open-mistral-7b":       {"mistral.mistral-7b-instruct-v0:2", false},
	"mistral-tiny":          {"mistral.mistral-7b-instruct-v0:2", false},
	"mistral-7b-instruct":   {"mistral.mistral-7b-instruct-v0:2", false},
	"open-mixtral-8x7b":     {"mistral.mixtral-8x7b-instruct-v0:1", false},
	"mixtral-8x7b-instruct": {"mistral.mixtral-8x7b-instruct-v0:1", false},
	"mistral-large-2402":    {"mistral.mistral-large-2402-v1:0", false},
	"mistral-large-2407":    {"mistral.mistral-large-2407-v1:0", false},
	"mistral-large-latest":  {"mistral.mistral-large-2407-v1:0", false},
	"mistral-large":         {"mistral.mistral-large-2407-v1:0", false},
	"mistral-small-2402":    {"mistral.mistral-small-2402-v1:0", false},
	"mistral-small":         {"mistral.mistral-small-2402-v1:0", false},
	"mistral-small-latest":  {"mistral.mistral-small-2402-v1:0", false},
	"pixtral-large-2502":    {"mistral.pixtral-large-2502-v1:0", true},
	"pixtral-large-latest":  {"mistral.pixtral-large-2502-v1:0", true},
}

// bedrockModelID is the Bedrock model ID (or inference profile) that a
// request naming model is sent to, from a credential of region: a known
// vendor name is mapped, through the region's cross-region inference
// profile (us., eu., apac.) where the model needs one; anything else (a
// Bedrock ID, a profile, an ARN) is sent as named, for Bedrock to judge.
func bedrockModelID(table map[string]bedrockID, model, region string) string {
	m, ok := table[model]
	if !ok {
		return model
	}
	if !m.profile {
		return m.id
	}
	return regionProfile(region) + "." + m.id
}

// regionProfile is the prefix of the cross-region inference profiles a
// region belongs to.
func regionProfile(region string) string {
	switch {
	case strings.HasPrefix(region, "eu-"):
		return "eu"
	case strings.HasPrefix(region, "ap-"):
		return "apac"
	}
	return "us"
}

var bedrockClaude = &bedrockModel{
	path: "/v1/messages", count: "/v1/messages/count_tokens",
	vendor: "anthropic", vendorName: "Anthropic (Claude)", provider: "Anthropic",
	ids:   func(model, region string) string { return bedrockModelID(claudeOnBedrock, model, region) },
	body:  claudeBedrockBody,
	event: claudeBedrockEvent,
	exception: func(typ, msg string) []byte {
		t := bedrockExceptionTypes[typ]
		if t == "" {
			t = "api_error"
		}
		return sse(false, "error", map[string]any{"type": "error", "error": map[string]any{"type": t, "message": msg}})
	},
	errorBody: anthropicErrorBody,
}

// claudeBedrockEvent appends a Messages event as SSE, named by its type
// as Anthropic names its events.
func claudeBedrockEvent(dst, data []byte, _ *Call) []byte {
	if typ := stringMember(data, "type"); len(typ) > 0 && !bytes.ContainsAny(typ, "\r\n") {
		dst = append(dst, "event: "...)
		dst = append(dst, typ...)
		dst = append(dst, '\n')
	}
	dst = append(dst, "data: "...)
	dst = append(dst, oneLine(data)...)
	return append(dst, "\n\n"...)
}

// bedrockAnthropicVersion is the version Bedrock's Messages API takes, in
// the body.
const bedrockAnthropicVersion = `"bedrock-2023-05-31"`

// claudeBedrockMembers are the Messages members Bedrock accepts: it
// refuses any other ("extraneous key"), model and stream among them.
var claudeBedrockMembers = map[string]bool{
	"messages": true, "system": true, "max_tokens": true, "stop_sequences": true,
	"temperature": true, "top_k": true, "top_p": true, "tools": true, "tool_choice": true,
	"thinking": true, "anthropic_beta": true,
}

// claudeBedrockBody is the Messages body as Bedrock takes it: the model in
// the path, streaming by the action, the version (and the betas the
// client asked for in its header) in the body.
func claudeBedrockBody(c *Call, h http.Header, _ string) ([]byte, error) {
	var betas []string
	for _, v := range h.Values("Anthropic-Beta") {
		for b := range strings.SplitSeq(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				betas = append(betas, b)
			}
		}
	}
	beta := ""
	if len(betas) > 0 {
		beta = string(MustJSON(betas))
	}
	return keepMembers(c.Body, claudeBedrockMembers, [2]string{"anthropic_version", bedrockAnthropicVersion}, [2]string{"anthropic_beta", beta})
}

var bedrockMistral = &bedrockModel{
	path:   "/v1/chat/completions",
	vendor: "mistral", vendorName: "Mistral", provider: "Mistral AI",
	ids:       func(model, region string) string { return bedrockModelID(mistralOnBedrock, model, region) },
	body:      mistralBedrockBody,
	event:     func(dst, data []byte, c *Call) []byte { return append(dst, mistralBedrockChunk(data, c)...) },
	end:       sse(false, "", "[DONE]"),
	exception: func(_, msg string) []byte { return mistralStreamError(msg) },
	whole:     mistralBedrockWhole,
	errorBody: openAIErrorBody,
}

// mistralBedrockMembers are the chat members Bedrock's Mistral models take.
var mistralBedrockMembers = map[string]bool{
	"messages": true, "max_tokens": true, "temperature": true, "top_p": true,
	"stop": true, "tools": true, "tool_choice": true,
}

// mistralTextModels take an instruction prompt, not messages.
var mistralTextModels = []string{"mistral.mistral-7b-instruct-", "mistral.mixtral-8x7b-instruct-"}

func isMistralText(id string) bool {
	for _, m := range mistralTextModels {
		if strings.Contains(id, m) {
			return true
		}
	}
	return false
}

// mistralTextMembers are the members Bedrock's text-only Mistral models take.
var mistralTextMembers = map[string]bool{"max_tokens": true, "temperature": true, "top_p": true, "stop": true}

// mistralBedrockBody is the chat body Bedrock's Mistral chat models take or,
// for the text-only ones, the messages as an instruction prompt.
func mistralBedrockBody(c *Call, _ http.Header, id string) ([]byte, error) {
	if !isMistralText(id) {
		return keepMembers(c.Body, mistralBedrockMembers)
	}
	prompt, err := mistralPrompt(gjson.GetBytes(c.Body, "messages"))
	if err != nil {
		return nil, err
	}
	var quoted bytes.Buffer
	enc := json.NewEncoder(&quoted)
	enc.SetEscapeHTML(false) // <s>[INST] as Mistral writes it
	if err := enc.Encode(prompt); err != nil {
		return nil, err
	}
	return keepMembers(c.Body, mistralTextMembers, [2]string{"prompt", strings.TrimSpace(quoted.String())})
}

// mistralPrompt writes chat messages in Mistral's instruction format: each
// user turn (the system prompt before the first) in [INST] … [/INST], each
// answer after it, closed by </s>. The messages and parts are walked, never
// collected: a 30 MiB body of empty parts, each collected as a gjson
// value and a string, took 440 MiB to write as a prompt.
func mistralPrompt(messages gjson.Result) (string, error) {
	if !messages.IsArray() {
		return "", users.Errorf(users.CodeInvalid, "messages must be a non-empty array.")
	}
	var b strings.Builder
	var system []string
	open := false // an [INST] is open
	i := 0
	var err error
	b.WriteString("<s>")
	messages.ForEach(func(_, m gjson.Result) bool {
		var text string
		if text, err = mistralText(m.Get("content"), i); err != nil {
			return false
		}
		switch role := m.Get("role").Str; role {
		case "system":
			system = append(system, text)
		case "user":
			if open {
				b.WriteString("\n\n")
				b.WriteString(text)
				break
			}
			b.WriteString("[INST] ")
			if len(system) > 0 {
				b.WriteString(strings.Join(system, "\n\n") + "\n\n")
				system = nil
			}
			b.WriteString(text)
			open = true
		case "assistant":
			if open {
				b.WriteString(" [/INST]")
				open = false
			}
			b.WriteString(" ")
			b.WriteString(text)
			b.WriteString("</s>")
		default:
			err = users.Errorf(users.CodeInvalid, "messages[%d]: the role %q is not supported by Mistral's text-only models on Bedrock (system, user and assistant are).", i, role)
			return false
		}
		i++
		return true
	})
	if err != nil {
		return "", err
	}
	if i == 0 {
		return "", users.Errorf(users.CodeInvalid, "messages must be a non-empty array.")
	}
	if open {
		b.WriteString(" [/INST]")
	}
	return b.String(), nil
}

// mistralText is a message's text: a string, or text parts.
func mistralText(content gjson.Result, i int) (string, error) {
	if content.Type == gjson.String {
		return content.Str, nil
	}
	if !content.IsArray() {
		return "", users.Errorf(users.CodeInvalid, "messages[%d].content must be a string or an array of text parts.", i)
	}
	var b strings.Builder
	ok := true
	content.ForEach(func(_, p gjson.Result) bool {
		if p.Get("type").Str != "text" {
			ok = false
			return false
		}
		b.WriteString(p.Get("text").Str)
		return true
	})
	if !ok {
		return "", users.Errorf(users.CodeInvalid, "messages[%d]: only text is supported by Mistral's text-only models on Bedrock.", i)
	}
	return b.String(), nil
}

// mistralBedrockWhole turns Bedrock's Mistral answer ({"choices":[{
// "message", "stop_reason"}]}, counts in headers) into a Mistral chat
// completion with its usage.
func mistralBedrockWhole(body []byte, h http.Header, c *Call) []byte {
	choices := mistralBedrockChoices(body, "message")
	out := map[string]any{"id": "bedrock-" + time.Now().UTC().Format("20060102150405.000000000"), "object": "chat.completion",
		"created": time.Now().Unix(), "model": c.Model, "choices": choices}
	if in, out2 := h.Get(headerInputTokens), h.Get(headerOutputTokens); in != "" && out2 != "" {
		i, o := gjson.Parse(in).Int(), gjson.Parse(out2).Int()
		out["usage"] = map[string]any{"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}
	}
	return MustJSON(out)
}

// mistralBedrockChunk turns one streamed chunk ({"choices":[{"message":
// {"content"}, "stop_reason"}]}, the last with the invocation metrics)
// into a Mistral chat completion chunk.
func mistralBedrockChunk(data []byte, c *Call) []byte {
	choices := mistralBedrockChoices(data, "delta")
	chunk := map[string]any{"id": "bedrock-stream", "object": "chat.completion.chunk", "created": time.Now().Unix(),
		"model": c.Model, "choices": choices}
	if u, ok := invocationMetrics(data); ok {
		chunk["usage"] = map[string]any{"prompt_tokens": u.Input, "completion_tokens": u.Output, "total_tokens": u.Total()}
	}
	return sse(false, "", chunk)
}

// mistralBedrockChoices turns the choices of a Bedrock Mistral answer or
// chunk ({"choices":[{"message", "stop_reason"}]}; text-only models:
// {"outputs":[{"text", "stop_reason"}]}) into Mistral's, the message
// under key: "message" in a whole answer, "delta" in a chunk, whose
// choice Bedrock may also name "delta".
func mistralBedrockChoices(body []byte, key string) []any {
	var choices []any
	for _, ch := range gjson.GetBytes(body, "choices").Array() {
		msg := ch.Get("message")
		if !msg.Exists() {
			msg = ch.Get(key)
		}
		choices = append(choices, map[string]any{
			"index":         ch.Get("index").Int(),
			key:             rawJSON(msg.Raw),
			"finish_reason": nullable(ch.Get("stop_reason").Str),
		})
	}
	for i, o := range gjson.GetBytes(body, "outputs").Array() {
		choices = append(choices, map[string]any{
			"index":         i,
			key:             map[string]any{"role": "assistant", "content": o.Get("text").Str},
			"finish_reason": nullable(o.Get("stop_reason").Str),
		})
	}
	return choices
}

// rawJSON is a JSON value kept as it came ({} when absent).
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if r == "" {
		return []byte("{}"), nil
	}
	return []byte(r), nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// oneLine keeps a JSON text on one line, as an SSE data field must be.
func oneLine(data []byte) []byte {
	if !bytes.ContainsAny(data, "\r\n") {
		return data
	}
	var b bytes.Buffer
	if json.Compact(&b, data) != nil {
		// Not JSON: relayed all the same, its line breaks as spaces.
		return bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, data)
	}
	return b.Bytes()
}
