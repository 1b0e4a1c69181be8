package proxy

import (
	"bytes"
	"net/http"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// anthropicVersion is sent when the client names none: the API requires
// one and this is the version every SDK sends.
const anthropicVersion = "2023-06-01"

// Anthropic: key in x-api-key; model in the body's "model"; usage in
// "usage": input_tokens + cache_creation_input_tokens +
// cache_read_input_tokens + output_tokens (thinking is part of
// output_tokens). Streams report input in message_start and the output
// total in message_delta.
func anthropicProvider() *provider {
	return &provider{
		id:   models.Anthropic,
		name: "Anthropic",
		match: exactRoutes("anthropic", map[string]*apiFormat{
			"GET /v1/models":                 fmtList,
			"POST /v1/messages":              fmtMessages,
			"POST /v1/messages/count_tokens": fmtCountTokens,
		}, "/v1/models"),
		setKey:  func(h http.Header, key string) { h.Set("X-Api-Key", key) },
		headers: []string{"Anthropic-Version", "Anthropic-Beta"},
		prepare: func(h http.Header) {
			if h.Get("Anthropic-Version") == "" {
				h.Set("Anthropic-Version", anthropicVersion)
			}
		},
		errorBody:  anthropicErrorBody,
		keyDead:    anthropicKeyDead,
		modelsPath: "/v1/models",
	}
}

func anthropicErrorBody(status int, e *users.Error) []byte {
	body := map[string]any{"type": kindOf(e.Code).anthropic, "message": e.Message}
	addQuota(body, e)
	return mustJSON(map[string]any{"type": "error", "error": body})
}

// anthropicKeyDead: an account out of credit answers 400 on every call.
func anthropicKeyDead(status int, body []byte) bool {
	return status == http.StatusBadRequest && bytes.Contains(body, []byte("credit balance is too low"))
}
