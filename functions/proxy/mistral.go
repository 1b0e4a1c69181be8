package proxy

import (
	"tollgate.dev/tollgate/shared/models"
)

// Mistral AI: OpenAI-like. Key as a Bearer token; model in the body's
// "model"; usage in "usage" (prompt_tokens + completion_tokens), which
// streams carry in their last chunk without being asked (the API refuses
// OpenAI's stream_options, so none is added). Errors use OpenAI's shape.
func mistralProvider() *provider {
	return &provider{
		id:   models.MistralAI,
		name: "Mistral AI",
		match: exactRoutes("mistral-ai", map[string]*apiFormat{
			"GET /v1/models":            fmtList,
			"POST /v1/chat/completions": fmtMistralChat,
		}, "/v1/models"),
		setKey:     bearer,
		errorBody:  openAIErrorBody,
		sdkPath:    "",
		modelsPath: "/v1/models",
	}
}
