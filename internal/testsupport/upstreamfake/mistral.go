package upstreamfake

import (
	"net/http"
	"strings"
)

// mistralError is Mistral's error shape.
func mistralError(status int, msg string) any {
	if status == http.StatusUnauthorized {
		return map[string]any{"message": "Unauthorized", "request_id": "fake-request"}
	}
	return map[string]any{"object": "error", "message": msg, "type": "invalid_request_error", "param": nil, "code": nil}
}

func serveMistral(x *exchange) {
	if x.req.Key == "" {
		x.json(http.StatusUnauthorized, mistralError(http.StatusUnauthorized, ""))
		return
	}
	if s := x.keyStatus(Mistral); s != 0 {
		x.json(s, mistralError(s, keyErrorMessage(s, x.req.Key)))
		return
	}
	p := x.r.URL.Path
	if x.r.Method == http.MethodGet && (p == "/v1/models" || strings.HasPrefix(p, "/v1/models/")) {
		x.json(http.StatusOK, map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "mistral-large-latest", "object": "model", "created": created, "owned_by": "mistralai"},
			map[string]any{"id": "mistral-small-latest", "object": "model", "created": created, "owned_by": "mistralai"},
			// A fine-tune of the account, as Mistral lists it.
			map[string]any{"id": "ft:open-mistral-7b:587a6b29:20240514:7e773925", "object": "model", "created": created, "owned_by": "587a6b29",
				"root": "open-mistral-7b", "archived": false, "job": "7e773925-1c8b-4a6e-9f0e-2b3c4d5e6f70", "type": "fine-tuned",
				"capabilities": map[string]any{"completion_chat": true, "function_calling": true, "fine_tuning": false}},
		}})
		return
	}
	if x.r.Method != http.MethodPost || p != "/v1/chat/completions" {
		notFound(x, mistralError)
		return
	}
	if x.b.Status != 0 {
		x.json(x.b.Status, mistralError(x.b.Status, "The fake upstream was told to fail."))
		return
	}
	m := x.body()
	if _, ok := m["stream_options"]; ok {
		x.json(http.StatusUnprocessableEntity, mistralError(http.StatusUnprocessableEntity, "stream_options: Extra inputs are not permitted"))
		return
	}
	if isStream(m) {
		chatStream(x, m, false)
	} else {
		x.json(http.StatusOK, chatCompletion(x, m, false))
	}
}
