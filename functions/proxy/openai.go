package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// OpenAI: key as a Bearer token; model in the body's "model"; usage in
// "usage" (chat, completions, embeddings: prompt_tokens +
// completion_tokens; Responses API and images: input_tokens +
// output_tokens). Reasoning tokens are already part of completion_tokens
// and output_tokens, so they are not added again.
func openAIProvider() *provider {
	return &provider{
		id:   models.OpenAI,
		name: "OpenAI",
		match: exactRoutes("openai", map[string]*apiFormat{
			"GET /v1/models":              fmtList,
			"POST /v1/chat/completions":   fmtChat,
			"POST /v1/responses":          fmtResponses,
			"POST /v1/completions":        fmtLegacy,
			"POST /v1/embeddings":         fmtEmbeddings,
			"POST /v1/images/generations": fmtImages,
		}, "/v1/models"),
		setKey:     bearer,
		headers:    []string{"OpenAI-Beta"},
		errorBody:  openAIErrorBody,
		keyDead:    openAIKeyDead,
		sdkPath:    "/v1",
		modelsPath: "/v1/models",
	}
}

// openAIErrorBody is OpenAI's error shape, also used by Mistral.
func openAIErrorBody(status int, e *users.Error) []byte {
	k := kindOf(e.Code)
	body := map[string]any{"message": e.Message, "type": k.openai, "code": string(e.Code), "param": nil}
	addQuota(body, e)
	return mustJSON(map[string]any{"error": body})
}

// openAIKeyDead: a 429 for an exhausted billing quota never clears by
// retrying, unlike a rate limit.
func openAIKeyDead(status int, body []byte) bool {
	return status == http.StatusTooManyRequests && bytes.Contains(body, []byte(`"insufficient_quota"`))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of plain values are encoded
	}
	return b
}

// addQuota adds a quota refusal's numbers to an error object.
func addQuota(body map[string]any, e *users.Error) {
	if e.Code == users.CodeQuota {
		body["quota"], body["used"], body["requested"] = e.Quota, e.Used, e.Requested
	}
}
