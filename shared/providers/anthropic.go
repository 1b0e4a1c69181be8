package providers

import (
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/jsonscan"
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
func anthropicProvider() *Provider {
	return &Provider{
		ID:   models.Anthropic,
		Name: "Anthropic",
		Env: Env{Key: "ANTHROPIC_KEY", BaseURL: "ANTHROPIC_BASE_URL", MaxOutput: "MAX_OUTPUT_TOKENS_ANTHROPIC",
			DefaultBaseURL: "https://api.anthropic.com", CheckKey: headerKey},
		Routes: []Route{
			{Method: http.MethodGet, Pattern: "/v1/models", Format: List, Query: map[string][]string{"limit": nil, "after_id": nil, "before_id": nil}, Translate: AnthropicModels},
			{Method: http.MethodGet, Pattern: "/v1/models/{model}", Format: List, Unlisted: true},
			{Method: http.MethodPost, Pattern: "/v1/messages", Format: AnthropicMessages},
			{Method: http.MethodPost, Pattern: "/v1/messages/count_tokens", Format: AnthropicCountTokens},
			{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: OpenAIChat, Translate: AnthropicChat},
			{Method: http.MethodPost, Pattern: "/v1/complete", Format: AnthropicComplete, Translate: AnthropicLegacy},
		},
		SetKey:  func(h http.Header, key string) { h.Set("X-Api-Key", key) },
		Headers: []string{"Anthropic-Version", "Anthropic-Beta"},
		Prepare: func(h http.Header) {
			if h.Get("Anthropic-Version") == "" {
				h.Set("Anthropic-Version", anthropicVersion)
			}
		},
		ErrorBody: anthropicErrorBody,
		KeyDead:   anthropicKeyDead,
		CheckPath: "/v1/models",
		// max_tokens is required (the translations name one): no
		// UnlimitedOutput.
		ImageTokens: anthropicImageTokens,
	}
}

var (
	AnthropicMessages = &Format{
		Name: "anthropic-messages", Body: true, Admitted: true, Charged: true,
		// The API refuses a request without max_tokens: none is added.
		MaxTokens:   [][]string{{"max_tokens"}},
		Thinking:    [][]string{{"thinking"}},
		Usage:       anthropicUsage,
		Event:       anthropicEvent,
		StreamError: anthropicStreamError,
		Fake:        fakeMessage,
	}
	// Counting tokens costs nothing upstream: limited but not charged.
	AnthropicCountTokens = &Format{Name: "anthropic-count-tokens", Body: true, Admitted: true}
)

var anthropicErrorTypes = map[int]string{
	http.StatusUnauthorized:          "authentication_error",
	http.StatusForbidden:             "permission_error",
	http.StatusNotFound:              "not_found_error",
	http.StatusRequestEntityTooLarge: "request_too_large",
	http.StatusTooManyRequests:       "rate_limit_error",
}

func anthropicErrorBody(status int, e *users.Error) []byte {
	typ, ok := anthropicErrorTypes[status]
	switch {
	case ok:
	case status >= 500:
		typ = "api_error"
	default:
		typ = "invalid_request_error"
	}
	body := map[string]any{"type": typ, "message": e.Message}
	addQuota(body, e)
	return MustJSON(map[string]any{"type": "error", "error": body})
}

// anthropicKeyDead: 401 (authentication_error) is about the key; an
// account out of credit answers 400 on every call, an
// invalid_request_error whose message begins with anthropicNoCredit.
// Other 400 messages quote the request, so only the start counts. A 403
// permission_error is about what the request asked for.
func anthropicKeyDead(status int, body []byte) bool {
	if status == http.StatusUnauthorized {
		return true
	}
	e := gjson.GetBytes(body, "error")
	return status == http.StatusBadRequest && e.Get("type").String() == "invalid_request_error" &&
		strings.HasPrefix(e.Get("message").String(), anthropicNoCredit)
}

const anthropicNoCredit = "Your credit balance is too low"

var anthropicUsage = answerUsage(topUsage, (*usageJSON).anthropic)

// anthropicEvent reads Messages stream events: input tokens in
// message_start, the output total in message_delta, text in
// content_block_delta, the end in message_stop.
func anthropicEvent(st *StreamState, name, data []byte) bool {
	switch eventName(name, data) {
	case "content_block_delta":
		st.Final = false
		st.Text += jsonscan.StringFields(data, "text", "partial_json", "thinking")
	case "content_block_stop":
		// The last block's end may be this one: a client leaving now
		// keeps the upstream going, for its usage, for a bounded while.
		st.Final = true
	case "message_stop":
		st.Done = true
	case "message_start":
		if u, ok := nestedUsage(jsonscan.MemberValue(data, "message")); ok && u != nil {
			st.U = u.anthropic()
			st.HaveIn = true
		}
	case "message_delta":
		if u, ok := topUsage(data); ok {
			if in := u.anthropic().Input; in > 0 {
				st.U.Input, st.HaveIn = in, true
			}
			st.U.Output, st.HaveOut = reported(u.OutputTokens), true
		}
	}
	return true
}

func fakeMessage(f FakeAnswer) (string, []byte) {
	usage := map[string]any{"input_tokens": 0, "output_tokens": 0}
	if !f.Stream {
		return ContentJSON, MustJSON(map[string]any{
			"id": "msg_tollgate_error", "type": "message", "role": "assistant", "model": f.Model,
			"content":     []any{map[string]any{"type": "text", "text": f.Text}},
			"stop_reason": "end_turn", "stop_sequence": nil, "usage": usage,
		})
	}
	return ContentSSE, sse(false,
		"message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_tollgate_error", "type": "message", "role": "assistant", "model": f.Model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage}},
		"content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}},
		"content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": f.Text}},
		"content_block_stop", map[string]any{"type": "content_block_stop", "index": 0},
		"message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 0}},
		"message_stop", map[string]any{"type": "message_stop"})
}

func anthropicStreamError(msg string) []byte {
	return sse(false, "error", map[string]any{"type": "error", "error": map[string]any{"type": "api_error", "message": msg}})
}
