package upstreamfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Scripted answers (Behavior.Blocks, Behavior.Parts): the content of a
// Claude or Gemini answer given whole, streamed by the fakes as the real
// APIs stream it, so that tests can drive every shape an answer takes
// (thinking, several tool calls, refusals, stop reasons) through every
// mount that speaks the API. And the two rules of the real APIs about
// what a conversation sent back must hold, which only a client that
// keeps what an answer carried can follow.

// claudeBlocks are the scripted blocks and stop reason.
func claudeBlocks(x *exchange) ([]any, string) {
	blocks := make([]any, 0, len(x.b.Blocks))
	for _, b := range x.b.Blocks {
		blocks = append(blocks, b)
	}
	stop := x.b.StopReason
	if stop == "" {
		stop = "end_turn"
	}
	return blocks, stop
}

// scriptedClaudeStream streams the scripted blocks through emit, as the
// Messages API does: each block's start, its deltas (text in Chunks
// pieces, thinking in one delta then its signature, a tool's input JSON
// in Chunks pieces, one empty piece for an empty input), its stop. After
// the first content delta, StreamError ends the stream through fail. It
// reports whether the stream goes on, and the stop reason.
func scriptedClaudeStream(x *exchange, emit func(name string, data map[string]any) bool, fail func(msg string)) (string, bool) {
	blocks, stop := claudeBlocks(x)
	delta := func(i int, d map[string]any) bool {
		if !x.beforeChunk() || !emit("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": d}) || !x.afterChunk() {
			return false
		}
		if x.b.StreamError != "" {
			fail(x.b.StreamError)
			return false
		}
		return true
	}
	for i, raw := range blocks {
		b := raw.(map[string]any)
		start := map[string]any{"type": b["type"]}
		var deltas []map[string]any
		switch b["type"] {
		case "text":
			start["text"] = ""
			for _, p := range splitRunes(str(b["text"]), x.b.Chunks) {
				deltas = append(deltas, map[string]any{"type": "text_delta", "text": p})
			}
		case "thinking":
			start["thinking"], start["signature"] = "", ""
			deltas = append(deltas, map[string]any{"type": "thinking_delta", "thinking": str(b["thinking"])},
				map[string]any{"type": "signature_delta", "signature": str(b["signature"])})
		case "tool_use":
			start["id"], start["name"], start["input"] = b["id"], b["name"], map[string]any{}
			input, _ := json.Marshal(b["input"])
			pieces := []string{""} // an empty input streams as one empty piece
			if s := string(input); s != "{}" && s != "null" {
				pieces = splitRunes(s, x.b.Chunks)
			}
			for _, p := range pieces {
				deltas = append(deltas, map[string]any{"type": "input_json_delta", "partial_json": p})
			}
		default: // redacted_thinking and the like come whole
			start = b
		}
		if !emit("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": start}) {
			return "", false
		}
		for _, d := range deltas {
			if !delta(i, d) {
				return "", false
			}
		}
		if !emit("content_block_stop", map[string]any{"type": "content_block_stop", "index": i}) {
			return "", false
		}
	}
	return stop, true
}

func splitRunes(s string, n int) []string {
	rs := []rune(s)
	if n <= 1 || len(rs) <= n {
		return []string{s}
	}
	size := (len(rs) + n - 1) / n
	var out []string
	for i := 0; i < len(rs); i += size {
		out = append(out, string(rs[i:min(i+size, len(rs))]))
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

// claudeThinkingProblem is the Messages API's refusal of a conversation
// that asks for thinking in the middle of a tool-use loop (its last
// assistant turn holds tool_use blocks) without sending back the thinking
// block that began that turn: "" when the body is fine.
func claudeThinkingProblem(m map[string]any) string {
	thinking, _ := m["thinking"].(map[string]any)
	if thinking == nil || thinking["type"] != "enabled" {
		return ""
	}
	msgs, _ := m["messages"].([]any)
	for i := len(msgs) - 1; i >= 0; i-- {
		msg, _ := msgs[i].(map[string]any)
		if msg["role"] != "assistant" {
			continue
		}
		content, _ := msg["content"].([]any)
		usesTools := false
		for _, c := range content {
			if b, _ := c.(map[string]any); b["type"] == "tool_use" {
				usesTools = true
			}
		}
		if !usesTools {
			return ""
		}
		first, _ := content[0].(map[string]any)
		if t := first["type"]; t == "thinking" || t == "redacted_thinking" {
			return ""
		}
		return "messages." + strconv.Itoa(i) + ".content.0.type: Expected `thinking` or `redacted_thinking`, but found `" + str(first["type"]) +
			"`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
	}
	return ""
}

// geminiParts are the parts of an answer: the scripted ones, else the
// text and, in the last chunk, the call.
func geminiParts(x *exchange, text string, final bool) []any {
	if x.b.Parts != nil {
		parts := make([]any, 0, len(x.b.Parts))
		for _, p := range x.b.Parts {
			parts = append(parts, p)
		}
		return parts
	}
	parts := []any{map[string]any{"text": text}}
	if final && x.b.ToolCall != nil {
		parts = append(parts, googleFunctionCall(x))
	}
	return parts
}

// geminiSignatures: Gemini 3 models sign their function calls (the first
// call of each answer carries a thoughtSignature) and want the signatures
// back on the calls of the turn in progress.
func geminiSignatures(model string) bool { return strings.HasPrefix(model, "gemini-3") }

// signCalls adds a thoughtSignature to the first functionCall of parts,
// as Gemini 3 answers carry one.
func signCalls(parts []any) []any {
	for i, p := range parts {
		pm, _ := p.(map[string]any)
		if pm["functionCall"] == nil {
			continue
		}
		signed := map[string]any{"thoughtSignature": "c2lnbmVkIGJ5IHRoZSBmYWtl"}
		for k, v := range pm {
			signed[k] = v
		}
		out := append([]any{}, parts...)
		out[i] = signed
		return out
	}
	return parts
}

// geminiSignatureProblem is Gemini 3's refusal of a conversation whose
// turn in progress (the model's contents after the user's last text)
// holds a function call sent back without its thought signature: "" when
// the body is fine.
func geminiSignatureProblem(model string, m map[string]any) string {
	if !geminiSignatures(model) {
		return ""
	}
	contents, _ := m["contents"].([]any)
	start := 0
	for i, c := range contents {
		cm, _ := c.(map[string]any)
		if cm["role"] == "model" {
			continue
		}
		parts, _ := cm["parts"].([]any)
		for _, p := range parts {
			if pm, _ := p.(map[string]any); pm["text"] != nil {
				start = i
			}
		}
	}
	for _, c := range contents[start:] {
		cm, _ := c.(map[string]any)
		if cm["role"] != "model" {
			continue
		}
		parts, _ := cm["parts"].([]any)
		for pos, p := range parts {
			pm, _ := p.(map[string]any)
			call, _ := pm["functionCall"].(map[string]any)
			if call == nil {
				continue
			}
			if pm["thoughtSignature"] == nil {
				return "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:" +
					str(call["name"]) + "` , position " + strconv.Itoa(pos+1) + ". Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
			}
			break // the first call of a step carries the step's signature
		}
	}
	return ""
}

// geminiRefusal answers a body the Gemini fakes refuse, as Gemini does;
// it reports whether it did.
func geminiRefusal(x *exchange, model string) bool {
	if msg := geminiSignatureProblem(model, x.body()); msg != "" {
		x.json(http.StatusBadRequest, googleError(http.StatusBadRequest, msg))
		return true
	}
	return false
}

// blocked is Gemini's answer to a prompt it will not read: no candidate,
// the reason in promptFeedback, the prompt's usage.
func blocked(x *exchange, model string) map[string]any {
	out := map[string]any{"promptFeedback": map[string]any{"blockReason": x.b.BlockReason}, "modelVersion": model, "responseId": "fake-response-1"}
	if !x.b.NoUsage {
		out["usageMetadata"] = map[string]any{"promptTokenCount": x.b.InputTokens, "totalTokenCount": x.b.InputTokens}
	}
	return out
}
