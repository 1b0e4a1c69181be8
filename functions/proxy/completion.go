package proxy

import (
	"bytes"
)

// fakeAnswer is an error shown as an answer of the request's own format
// (ERROR_FORMAT=completion), for clients that show nothing on errors.
type fakeAnswer struct {
	text    string
	model   string
	stream  bool
	sse     bool // Google streams: SSE (alt=sse) rather than a JSON array
	created int64
}

const (
	contentJSON = "application/json"
	contentSSE  = "text/event-stream"
)

// sse renders events: pairs of name (may be empty) and data.
func sse(crlf bool, events ...any) []byte {
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	var b bytes.Buffer
	for i := 0; i+1 < len(events); i += 2 {
		if name, _ := events[i].(string); name != "" {
			b.WriteString("event: " + name + nl)
		}
		b.WriteString("data: ")
		if s, ok := events[i+1].(string); ok {
			b.WriteString(s)
		} else {
			b.Write(mustJSON(events[i+1]))
		}
		b.WriteString(nl + nl)
	}
	return b.Bytes()
}

var zeroChatUsage = map[string]any{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

func fakeChat(f fakeAnswer) (string, []byte) {
	const id = "chatcmpl-tollgate-error"
	if !f.stream {
		return contentJSON, mustJSON(map[string]any{
			"id": id, "object": "chat.completion", "created": f.created, "model": f.model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": f.text}, "finish_reason": "stop"}},
			"usage":   zeroChatUsage,
		})
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": f.created, "model": f.model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	return contentSSE, sse(false,
		"", chunk(map[string]any{"role": "assistant", "content": f.text}, nil),
		"", chunk(map[string]any{}, "stop"),
		"", "[DONE]")
}

func fakeLegacy(f fakeAnswer) (string, []byte) {
	obj := func(text string, finish any) map[string]any {
		return map[string]any{"id": "cmpl-tollgate-error", "object": "text_completion", "created": f.created, "model": f.model,
			"choices": []any{map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}}}
	}
	if !f.stream {
		o := obj(f.text, "stop")
		o["usage"] = zeroChatUsage
		return contentJSON, mustJSON(o)
	}
	return contentSSE, sse(false, "", obj(f.text, nil), "", obj("", "stop"), "", "[DONE]")
}

func fakeResponses(f fakeAnswer) (string, []byte) {
	resp := func(status string, text string) map[string]any {
		out := []any{}
		if status == "completed" {
			out = []any{map[string]any{"type": "message", "id": "msg_tollgate_error", "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}}
		}
		return map[string]any{"id": "resp_tollgate_error", "object": "response", "created_at": f.created, "status": status,
			"model": f.model, "output": out,
			"usage": map[string]any{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}
	}
	if !f.stream {
		return contentJSON, mustJSON(resp("completed", f.text))
	}
	return contentSSE, sse(false,
		"response.created", map[string]any{"type": "response.created", "sequence_number": 0, "response": resp("in_progress", "")},
		"response.output_text.delta", map[string]any{"type": "response.output_text.delta", "sequence_number": 1,
			"item_id": "msg_tollgate_error", "output_index": 0, "content_index": 0, "delta": f.text},
		"response.completed", map[string]any{"type": "response.completed", "sequence_number": 2, "response": resp("completed", f.text)})
}

func fakeMessage(f fakeAnswer) (string, []byte) {
	usage := map[string]any{"input_tokens": 0, "output_tokens": 0}
	if !f.stream {
		return contentJSON, mustJSON(map[string]any{
			"id": "msg_tollgate_error", "type": "message", "role": "assistant", "model": f.model,
			"content":     []any{map[string]any{"type": "text", "text": f.text}},
			"stop_reason": "end_turn", "stop_sequence": nil, "usage": usage,
		})
	}
	return contentSSE, sse(false,
		"message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_tollgate_error", "type": "message", "role": "assistant", "model": f.model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage}},
		"content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}},
		"content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": f.text}},
		"content_block_stop", map[string]any{"type": "content_block_stop", "index": 0},
		"message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 0}},
		"message_stop", map[string]any{"type": "message_stop"})
}

func fakeGenerate(f fakeAnswer) (string, []byte) {
	resp := map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"parts": []any{map[string]any{"text": f.text}}, "role": "model"},
			"finishReason": "STOP", "index": 0,
		}},
		"usageMetadata": map[string]any{"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0},
		"modelVersion":  f.model,
	}
	switch {
	case !f.stream:
		return contentJSON, mustJSON(resp)
	case f.sse:
		return contentSSE, sse(true, "", resp)
	default:
		return contentJSON, append(append([]byte("["), mustJSON(resp)...), ']')
	}
}

// Events relayed when the upstream breaks a stream, in each format's own
// error shape, so that SDKs raise an error rather than end quietly.

func openAIStreamError(msg string) []byte {
	return sse(false, "", map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "code": "upstream_stream_broken", "param": nil}})
}

func responsesStreamError(msg string) []byte {
	return sse(false, "error", map[string]any{"type": "error", "code": "upstream_stream_broken", "message": msg, "param": nil})
}

func anthropicStreamError(msg string) []byte {
	return sse(false, "error", map[string]any{"type": "error", "error": map[string]any{"type": "api_error", "message": msg}})
}

func googleStreamError(msg string) []byte {
	return sse(true, "", map[string]any{"error": map[string]any{"code": 502, "message": msg, "status": "UNAVAILABLE"}})
}
