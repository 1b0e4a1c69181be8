package upstreamfake

import (
	"encoding/json"
	"unicode/utf8"
)

// ToolCall makes a fake answer with a call of a tool after its text, as
// the model does when it decides to use one.
type ToolCall struct {
	ID        string // Anthropic's tool_use id (Google's answers carry none)
	Name      string
	Arguments string // a JSON object, streamed in Chunks pieces where the API streams it
}

func (t *ToolCall) input() json.RawMessage {
	if t.Arguments == "" {
		return json.RawMessage("{}")
	}
	return json.RawMessage(t.Arguments)
}

// argumentPieces splits the arguments as Anthropic streams them
// (input_json_delta), into at most n pieces.
func (t *ToolCall) argumentPieces(n int) []string {
	s := string(t.input())
	runes := []rune(s)
	if n < 1 || utf8.RuneCountInString(s) <= n {
		return []string{s}
	}
	size := (len(runes) + n - 1) / n
	var out []string
	for i := 0; i < len(runes); i += size {
		out = append(out, string(runes[i:min(i+size, len(runes))]))
	}
	return out
}

// anthropicToolBlocks are the blocks of an answer: its text, then the call.
func anthropicToolBlocks(x *exchange) []any {
	t := x.b.ToolCall
	return []any{
		map[string]any{"type": "text", "text": x.b.Text},
		map[string]any{"type": "tool_use", "id": t.ID, "name": t.Name, "input": t.input()},
	}
}

// anthropicContent is a whole Messages answer's content and stop reason:
// the text, then the call when there is one.
func anthropicContent(x *exchange) ([]any, string) {
	if x.b.Blocks != nil {
		return claudeBlocks(x)
	}
	if x.b.ToolCall != nil {
		return anthropicToolBlocks(x), "tool_use"
	}
	return []any{map[string]any{"type": "text", "text": x.b.Text}}, "end_turn"
}

// anthropicToolStream streams the call as block 1 after the text block,
// each event through emit (SSE, or Bedrock's event-stream chunks).
func anthropicToolStream(x *exchange, emit func(name string, data map[string]any) bool) bool {
	t := x.b.ToolCall
	if !emit("content_block_start", map[string]any{"type": "content_block_start", "index": 1,
		"content_block": map[string]any{"type": "tool_use", "id": t.ID, "name": t.Name, "input": map[string]any{}}}) {
		return false
	}
	for _, piece := range t.argumentPieces(x.b.Chunks) {
		if !emit("content_block_delta", map[string]any{"type": "content_block_delta", "index": 1,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": piece}}) {
			return false
		}
	}
	return emit("content_block_stop", map[string]any{"type": "content_block_stop", "index": 1})
}

// googleFunctionCall is the part carrying the call.
func googleFunctionCall(x *exchange) map[string]any {
	t := x.b.ToolCall
	return map[string]any{"functionCall": map[string]any{"name": t.Name, "args": t.input()}}
}
