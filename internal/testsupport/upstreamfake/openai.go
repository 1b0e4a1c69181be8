package upstreamfake

import (
	"net/http"
	"strconv"
	"strings"
)

// openAIError is OpenAI's error shape.
func openAIError(status int, msg string) any {
	typ, code := "invalid_request_error", any(nil)
	switch status {
	case http.StatusUnauthorized:
		code = "invalid_api_key"
	case http.StatusForbidden:
		typ = "permission_error"
	case http.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case http.StatusNotFound:
		code = "unknown_url"
	default:
		if status >= 500 {
			typ = "server_error"
		}
	}
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}}
}

// keyError answers a key-specific error; the message quotes the key, as
// OpenAI's "Incorrect API key provided" does, so that tests can check the
// proxy never shows it.
func keyErrorMessage(status int, key string) string {
	switch status {
	case http.StatusUnauthorized:
		return "Incorrect API key provided: " + key + ". You can find your API key at https://platform.openai.com/account/api-keys."
	case http.StatusForbidden:
		return "Key " + key + " is not allowed to use this resource."
	case http.StatusTooManyRequests:
		return "Rate limit reached for requests on key " + key + "."
	}
	return "Upstream error for key " + key + "."
}

func serveOpenAI(x *exchange) {
	if x.req.Key == "" {
		x.json(http.StatusUnauthorized, openAIError(http.StatusUnauthorized, "You didn't provide an API key."))
		return
	}
	if s := x.keyStatus(OpenAI); s != 0 {
		x.json(s, openAIError(s, keyErrorMessage(s, x.req.Key)))
		return
	}
	p := x.r.URL.Path
	if x.r.Method == http.MethodGet && (p == "/v1/models" || strings.HasPrefix(p, "/v1/models/")) {
		models := OpenAIModels()
		if id, one := strings.CutPrefix(p, "/v1/models/"); one {
			for _, m := range models {
				if m["id"] == id {
					x.json(http.StatusOK, m)
					return
				}
			}
			x.json(http.StatusNotFound, map[string]any{"error": map[string]any{"message": "The model `" + id + "` does not exist or you do not have access to it.",
				"type": "invalid_request_error", "param": nil, "code": "model_not_found"}})
			return
		}
		data := make([]any, len(models))
		for i, m := range models {
			data[i] = m
		}
		x.json(http.StatusOK, map[string]any{"object": "list", "data": data})
		return
	}
	if x.r.Method != http.MethodPost {
		notFound(x, openAIError)
		return
	}
	if x.b.Status != 0 {
		x.json(x.b.Status, openAIError(x.b.Status, "The fake upstream was told to fail."))
		return
	}
	m := x.body()
	switch p {
	case "/v1/chat/completions":
		if isStream(m) {
			chatStream(x, m, true)
		} else {
			x.json(http.StatusOK, chatCompletion(x, m, true))
		}
	case "/v1/completions":
		if isStream(m) {
			legacyStream(x, m)
		} else {
			x.json(http.StatusOK, legacyCompletion(x, m))
		}
	case "/v1/responses":
		if isStream(m) {
			responsesStream(x, m)
		} else {
			x.json(http.StatusOK, responseObject(x, m, "completed", x.b.Text))
		}
	case "/v1/embeddings":
		out := map[string]any{"object": "list", "model": modelOr(m, "text-embedding-3-small"),
			"data": []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.0023, -0.0093, 0.0157}}}}
		if !x.b.NoUsage {
			out["usage"] = map[string]any{"prompt_tokens": x.b.InputTokens, "total_tokens": x.b.InputTokens}
		}
		x.json(http.StatusOK, out)
	case "/v1/images/generations":
		if strings.HasPrefix(modelOr(m, ""), "gpt-image") && isStream(m) {
			// OpenAI's image stream: partial images, then the image with
			// its usage.
			x.startStream()
			if x.event("image_generation.partial_image", map[string]any{"type": "image_generation.partial_image",
				"b64_json": "iVBORw0KGgo=", "partial_image_index": 0, "created_at": created}, false) {
				x.event("image_generation.completed", map[string]any{"type": "image_generation.completed", "b64_json": "iVBORw0KGgo=",
					"created_at": created, "usage": map[string]any{"input_tokens": x.b.InputTokens, "output_tokens": x.b.OutputTokens,
						"total_tokens": x.b.InputTokens + x.b.OutputTokens}}, false)
			}
			return
		}
		out := map[string]any{"created": created, "data": []any{map[string]any{"b64_json": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}}}
		if !x.b.NoUsage && strings.HasPrefix(modelOr(m, ""), "gpt-image") {
			out["usage"] = map[string]any{"input_tokens": x.b.InputTokens, "output_tokens": x.b.OutputTokens,
				"total_tokens": x.b.InputTokens + x.b.OutputTokens}
		}
		x.json(http.StatusOK, out)
	default:
		notFound(x, openAIError)
	}
}

func (x *exchange) chatUsage() map[string]any {
	return map[string]any{
		"prompt_tokens":             x.b.InputTokens,
		"completion_tokens":         x.b.OutputTokens,
		"total_tokens":              x.b.InputTokens + x.b.OutputTokens,
		"prompt_tokens_details":     map[string]any{"cached_tokens": 0, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": x.b.ReasoningTokens, "audio_tokens": 0},
	}
}

// chatCompletion is a non-streamed chat completion; OpenAI and Mistral
// share the shape.
func chatCompletion(x *exchange, m map[string]any, openai bool) map[string]any {
	msg := map[string]any{"role": "assistant", "content": x.b.Text}
	if openai {
		msg["refusal"] = nil
	}
	out := map[string]any{
		"id": id("chatcmpl", 1), "object": "chat.completion", "created": created,
		"model":   modelOr(m, "gpt-4o"),
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": "stop"}},
	}
	if !x.b.NoUsage {
		out["usage"] = x.chatUsage()
	}
	return out
}

// chatStream streams chat completion chunks. OpenAI sends usage only when
// stream_options.include_usage is true, as a last chunk with empty
// choices; Mistral always sends it in the chunk with the finish reason.
func chatStream(x *exchange, m map[string]any, openai bool) {
	includeUsage := false
	if so, ok := m["stream_options"].(map[string]any); ok {
		includeUsage, _ = so["include_usage"].(bool)
	}
	model := modelOr(m, "gpt-4o")
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := map[string]any{
			"id": id("chatcmpl", 1), "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if openai && includeUsage {
			c["usage"] = nil
		}
		return c
	}
	x.startStream()
	if !x.event("", chunk(map[string]any{"role": "assistant", "content": ""}, nil), false) {
		return
	}
	for _, piece := range x.pieces() {
		if !x.beforeChunk() || !x.event("", chunk(map[string]any{"content": piece}, nil), false) || !x.afterChunk() {
			return
		}
	}
	last := chunk(map[string]any{}, "stop")
	if !openai && !x.b.NoUsage {
		last["usage"] = x.chatUsage()
	}
	if !x.event("", last, false) {
		return
	}
	if openai && includeUsage && !x.b.NoUsage {
		x.holdBeforeUsage()
		if !x.event("", map[string]any{
			"id": id("chatcmpl", 1), "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{}, "usage": x.chatUsage(),
		}, false) {
			return
		}
	}
	x.event("", "[DONE]", false)
}

func legacyCompletion(x *exchange, m map[string]any) map[string]any {
	out := map[string]any{
		"id": id("cmpl", 1), "object": "text_completion", "created": created, "model": modelOr(m, "gpt-3.5-turbo-instruct"),
		"choices": []any{map[string]any{"index": 0, "text": x.b.Text, "logprobs": nil, "finish_reason": "stop"}},
	}
	if !x.b.NoUsage {
		out["usage"] = map[string]any{"prompt_tokens": x.b.InputTokens, "completion_tokens": x.b.OutputTokens, "total_tokens": x.b.InputTokens + x.b.OutputTokens}
	}
	return out
}

func legacyStream(x *exchange, m map[string]any) {
	includeUsage := false
	if so, ok := m["stream_options"].(map[string]any); ok {
		includeUsage, _ = so["include_usage"].(bool)
	}
	model := modelOr(m, "gpt-3.5-turbo-instruct")
	chunk := func(text string, finish any) map[string]any {
		c := map[string]any{"id": id("cmpl", 1), "object": "text_completion", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}}}
		if includeUsage {
			c["usage"] = nil
		}
		return c
	}
	x.startStream()
	for _, piece := range x.pieces() {
		if !x.beforeChunk() || !x.event("", chunk(piece, nil), false) || !x.afterChunk() {
			return
		}
	}
	if !x.event("", chunk("", "stop"), false) {
		return
	}
	if includeUsage && !x.b.NoUsage {
		if !x.event("", map[string]any{"id": id("cmpl", 1), "object": "text_completion", "created": created, "model": model,
			"choices": []any{}, "usage": map[string]any{"prompt_tokens": x.b.InputTokens, "completion_tokens": x.b.OutputTokens, "total_tokens": x.b.InputTokens + x.b.OutputTokens}}, false) {
			return
		}
	}
	x.event("", "[DONE]", false)
}

// responseObject is a Responses API response.
func responseObject(x *exchange, m map[string]any, status, text string) map[string]any {
	out := map[string]any{
		"id": "resp_fake_1", "object": "response", "created_at": created, "status": status,
		"model": modelOr(m, "gpt-4.1"), "output": []any{},
	}
	if status == "completed" {
		var items []any
		for i := range imagesFor(x, m) {
			items = append(items, imageCall(i, "completed"))
		}
		out["output"] = append(items, map[string]any{
			"type": "message", "id": "msg_fake_1", "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}},
		})
		if u := x.b.ImageToolUsage; imagesFor(x, m) > 0 && u != [2]int64{} {
			// The image model's tokens, which the response's usage
			// (the text model's) leaves out.
			out["tool_usage"] = map[string]any{
				"image_gen": map[string]any{"input_tokens": u[0], "input_tokens_details": map[string]any{"image_tokens": 0, "text_tokens": u[0]},
					"output_tokens": u[1], "output_tokens_details": map[string]any{"image_tokens": u[1], "text_tokens": 0}, "total_tokens": u[0] + u[1]},
				"web_search": map[string]any{"num_requests": 0},
			}
		}
		if !x.b.NoUsage {
			out["usage"] = map[string]any{
				"input_tokens": x.b.InputTokens, "input_tokens_details": map[string]any{"cached_tokens": 0},
				"output_tokens": x.b.OutputTokens, "output_tokens_details": map[string]any{"reasoning_tokens": x.b.ReasoningTokens},
				"total_tokens": x.b.InputTokens + x.b.OutputTokens,
			}
		}
	}
	return out
}

func responsesStream(x *exchange, m map[string]any) {
	x.startStream()
	seq := 0
	ev := func(name string, data map[string]any) bool {
		data["type"] = name
		data["sequence_number"] = seq
		seq++
		return x.event(name, data, false)
	}
	if !ev("response.created", map[string]any{"response": responseObject(x, m, "in_progress", "")}) {
		return
	}
	// Each image as the tool streams it: its item added, in progress,
	// generating, its partial images, completed, its item done.
	for i := range imagesFor(x, m) {
		id := imageCall(i, "")["id"]
		if !ev("response.output_item.added", map[string]any{"output_index": i, "item": imageCall(i, "in_progress")}) ||
			!ev("response.image_generation_call.in_progress", map[string]any{"output_index": i, "item_id": id}) ||
			!ev("response.image_generation_call.generating", map[string]any{"output_index": i, "item_id": id}) {
			return
		}
		for p := range partialImages(m) {
			if !ev("response.image_generation_call.partial_image", map[string]any{"output_index": i, "item_id": id,
				"partial_image_index": p, "partial_image_b64": "iVBORw0KGgo="}) {
				return
			}
		}
		if !ev("response.image_generation_call.completed", map[string]any{"output_index": i, "item_id": id}) ||
			!ev("response.output_item.done", map[string]any{"output_index": i, "item": imageCall(i, "completed")}) {
			return
		}
	}
	for _, piece := range x.pieces() {
		if !x.beforeChunk() || !ev("response.output_text.delta", map[string]any{"item_id": "msg_fake_1", "output_index": 0, "content_index": 0, "delta": piece}) || !x.afterChunk() {
			return
		}
	}
	ev("response.completed", map[string]any{"response": responseObject(x, m, "completed", x.b.Text)})
}

// OpenAIModels is the fake's model list: OpenAI's own models and, as an
// organisation that fine-tunes sees them, its fine-tunes (owned by the
// organisation, or by the user who made them) and a checkpoint of one.
func OpenAIModels() []map[string]any {
	return []map[string]any{
		{"id": "gpt-4.1", "object": "model", "created": created, "owned_by": "system"},
		{"id": "ft:gpt-4o-mini-2024-07-18:acme-corp:support-bot:AbC123xy", "object": "model", "created": created, "owned_by": "acme-corp"},
		{"id": "gpt-5", "object": "model", "created": created, "owned_by": "system"},
		{"id": "ft:gpt-4.1-2025-04-14:acme-corp::BXyz123:ckpt-step-100", "object": "model", "created": created, "owned_by": "user-Q2w3E4r5T6y7"},
		{"id": "acme-corp-shared", "object": "model", "created": created, "owned_by": "acme-corp"},
	}
}

// imagesFor is how many images the fake's answer to a Responses request
// holds: Behavior.Images when the request gives an image_generation tool.
func imagesFor(x *exchange, m map[string]any) int {
	tools, _ := m["tools"].([]any)
	for _, t := range tools {
		if tool, _ := t.(map[string]any); tool["type"] == "image_generation" {
			return x.b.Images
		}
	}
	return 0
}

// partialImages is the partial_images the request's image tool asks for.
func partialImages(m map[string]any) int {
	tools, _ := m["tools"].([]any)
	for _, t := range tools {
		if tool, _ := t.(map[string]any); tool["type"] == "image_generation" {
			n, _ := tool["partial_images"].(float64)
			return int(n)
		}
	}
	return 0
}

// imageCall is the Responses output item of the i-th image the tool
// made, in a status ("" for its id only).
func imageCall(i int, status string) map[string]any {
	item := map[string]any{"type": "image_generation_call", "id": "ig_fake_" + strconv.Itoa(i+1), "status": status}
	if status == "completed" {
		item["result"] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
		item["revised_prompt"] = "A red fox in the snow"
		item["background"], item["output_format"], item["quality"], item["size"] = "opaque", "png", "high", "1024x1024"
	}
	return item
}
