package providers

import (
	"net/http"

	"tollgate.dev/tollgate/shared/models"
)

// Mistral AI: OpenAI-like. Key as a Bearer token; model in the body's
// "model"; usage in "usage" (prompt_tokens + completion_tokens), which
// streams carry in their last chunk without being asked (the API refuses
// OpenAI's stream_options, so none is added). Errors use OpenAI's shape.
func mistralProvider() *Provider {
	return openAICompatible(&Provider{
		ID:   models.MistralAI,
		Name: "Mistral AI",
		Env: Env{Key: "MISTRAL_AI_KEY", BaseURL: "MISTRAL_AI_BASE_URL", MaxOutput: "MAX_OUTPUT_TOKENS_MISTRAL_AI",
			DefaultBaseURL: "https://api.mistral.ai", CheckKey: headerKey},
		SetKey: bearer,
		// Mistral answers 401 for a bad key, 403 for a model the plan lacks.
		KeyDead: func(status int, _ []byte) bool { return status == http.StatusUnauthorized },
		// max_tokens is optional: the context bounds the answer.
		UnlimitedOutput: mistralUnlimitedOutput,
		ImageTokens:     mistralImageTokens,
	}, Route{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: MistralChat})
}

// MistralChat is OpenAI chat with max_tokens only, without stream_options
// (its streams report usage unasked) and with its own end of a broken
// stream.
var MistralChat = OpenAIChat.variant(func(f *Format) {
	f.Name, f.MaxTokens, f.AddMaxTokens, f.Thinking = "mistral-chat", [][]string{{"max_tokens"}}, []string{"max_tokens"}, nil
	f.AskUsage, f.Clean, f.StreamError = nil, nil, mistralStreamError
})

// mistralStreamError ends a broken stream with a chunk of Mistral's own
// schema (finish_reason "error", the message as content): the Mistral SDK
// validates every chunk, and an OpenAI error object fails its schema
// instead of showing the message.
func mistralStreamError(msg string) []byte {
	return sse(false,
		"", map[string]any{"id": "tollgate-error", "object": "chat.completion.chunk", "created": 0, "model": "tollgate",
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": msg}, "finish_reason": "error"}}},
		"", "[DONE]")
}
