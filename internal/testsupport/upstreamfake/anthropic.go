package upstreamfake

import (
	"net/http"
	"strings"
)

// anthropicError is Anthropic's error shape.
func anthropicError(status int, msg string) any {
	typ := "invalid_request_error"
	switch status {
	case http.StatusUnauthorized:
		typ = "authentication_error"
	case http.StatusForbidden:
		typ = "permission_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	case http.StatusRequestEntityTooLarge:
		typ = "request_too_large"
	case http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case 529:
		typ = "overloaded_error"
	default:
		if status >= 500 {
			typ = "api_error"
		}
	}
	return map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}, "request_id": "req_fake"}
}

func serveAnthropic(x *exchange) {
	if x.req.Key == "" {
		x.json(http.StatusUnauthorized, anthropicError(http.StatusUnauthorized, "x-api-key header is required"))
		return
	}
	if s := x.keyStatus(Anthropic); s != 0 {
		x.json(s, anthropicError(s, keyErrorMessage(s, x.req.Key)))
		return
	}
	// The real API refuses requests without a version header.
	if x.r.Header.Get("Anthropic-Version") == "" {
		x.json(http.StatusBadRequest, anthropicError(http.StatusBadRequest, "anthropic-version: header is required"))
		return
	}
	p := x.r.URL.Path
	if x.r.Method == http.MethodGet && (p == "/v1/models" || strings.HasPrefix(p, "/v1/models/")) {
		x.json(http.StatusOK, map[string]any{"data": []any{
			map[string]any{"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
			map[string]any{"type": "model", "id": "claude-opus-4-1-20250805", "display_name": "Claude Opus 4.1", "created_at": "2025-08-05T00:00:00Z"},
		}, "has_more": false, "first_id": "claude-sonnet-4-5-20250929", "last_id": "claude-opus-4-1-20250805"})
		return
	}
	if x.r.Method != http.MethodPost {
		notFound(x, anthropicError)
		return
	}
	if x.b.Status != 0 {
		x.json(x.b.Status, anthropicError(x.b.Status, "The fake upstream was told to fail."))
		return
	}
	m := x.body()
	switch p {
	case "/v1/messages/count_tokens":
		x.json(http.StatusOK, map[string]any{"input_tokens": x.b.InputTokens})
	case "/v1/messages":
		if msg := claudeThinkingProblem(m); msg != "" {
			x.json(http.StatusBadRequest, anthropicError(http.StatusBadRequest, msg))
			return
		}
		if isStream(m) {
			messagesStream(x, m)
		} else {
			content, stop := anthropicContent(x)
			x.json(http.StatusOK, message(x, m, content, stop, x.b.OutputTokens))
		}
	default:
		notFound(x, anthropicError)
	}
}

func message(x *exchange, m map[string]any, content []any, stop any, output int64) map[string]any {
	out := map[string]any{
		"id": "msg_fake_1", "type": "message", "role": "assistant", "model": modelOr(m, "claude-sonnet-4-5"),
		"content": content, "stop_reason": stop, "stop_sequence": nil,
	}
	if !x.b.NoUsage {
		out["usage"] = map[string]any{
			"input_tokens": x.b.InputTokens, "output_tokens": output,
			"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
		}
	}
	return out
}

func messagesStream(x *exchange, m map[string]any) {
	x.startStream()
	if !x.event("message_start", map[string]any{"type": "message_start", "message": message(x, m, []any{}, nil, 1)}, false) {
		return
	}
	stop := "end_turn"
	if x.b.Blocks != nil {
		emit := func(name string, data map[string]any) bool { return x.event(name, data, false) }
		fail := func(msg string) { x.event("error", anthropicError(529, msg), false) }
		var ok bool
		if stop, ok = scriptedClaudeStream(x, emit, fail); !ok {
			return
		}
	} else {
		if !textAndToolStream(x) {
			return
		}
		if x.b.ToolCall != nil {
			stop = "tool_use"
		}
	}
	delta := map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}}
	if !x.b.NoUsage {
		delta["usage"] = map[string]any{"output_tokens": x.b.OutputTokens}
	}
	x.holdBeforeUsage()
	if !x.event("message_delta", delta, false) {
		return
	}
	x.event("message_stop", map[string]any{"type": "message_stop"}, false)
}

// textAndToolStream streams the text, then the tool call if there is one;
// it reports whether the stream goes on.
func textAndToolStream(x *exchange) bool {
	if !x.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}, false) {
		return false
	}
	if !x.event("ping", map[string]any{"type": "ping"}, false) {
		return false
	}
	for i, piece := range x.pieces() {
		if !x.beforeChunk() || !x.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": piece}}, false) || !x.afterChunk() {
			return false
		}
		if i == 0 && x.b.StreamError != "" {
			x.event("error", anthropicError(529, x.b.StreamError), false)
			return false
		}
	}
	if !x.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}, false) {
		return false
	}
	if x.b.ToolCall != nil {
		return anthropicToolStream(x, func(name string, data map[string]any) bool { return x.event(name, data, false) })
	}
	return true
}
