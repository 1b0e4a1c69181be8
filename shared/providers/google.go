package providers

import (
	"bytes"
	"net/http"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/jsonscan"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// Google AI (Gemini): key in x-goog-api-key (never in the query); model
// in the path, models/{model}:generateContent; usage in "usageMetadata":
// promptTokenCount + toolUsePromptTokenCount + candidatesTokenCount +
// thoughtsTokenCount (thinking is reported apart from the candidates).
// Streams repeat usageMetadata in every chunk, complete in the last; they
// are SSE with ?alt=sse, else one JSON array, and have no end event.
func googleProvider() *Provider {
	return &Provider{
		ID:   models.GoogleAI,
		Name: "Google AI",
		Env: Env{Key: "GOOGLE_AI_KEY", BaseURL: "GOOGLE_AI_BASE_URL", MaxOutput: "MAX_OUTPUT_TOKENS_GOOGLE_AI",
			DefaultBaseURL: "https://generativelanguage.googleapis.com", CheckKey: headerKey},
		Routes: append(append(googleRoutes("v1beta", false), googleRoutes("v1", true)...),
			Route{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: OpenAIChat, Translate: GoogleChat("v1beta")}),
		SetKey:    func(h http.Header, key string) { h.Set("X-Goog-Api-Key", key) },
		Headers:   []string{"X-Goog-Api-Client"},
		ErrorBody: googleErrorBody,
		KeyDead:   googleKeyDead,
		// maxOutputTokens unset (or 0) is the model's maximum.
		UnlimitedOutput: googleUnlimitedOutput,
		ImageTokens:     googleImageTokens,
		// The model list, free: a key set aside is rechecked with it.
		CheckPath: "/v1beta/models",
		Framing: Framing{
			SSE:       altSSE,
			EndsAtEOF: true,
		},
	}
}

// googleRoutes are the models routes of one API version. countTokens is
// used by clients such as SillyTavern; it is limited but not charged, as
// it costs nothing.
func googleRoutes(version string, unlisted bool) []Route {
	base := "/" + version + "/models"
	// alt=sse frames a stream as SSE; alt=json is the default. Any other
	// answer format (proto, media) would carry no usage to charge.
	alt := map[string][]string{"alt": {"sse", "json"}}
	page := map[string][]string{"pageSize": nil, "pageToken": nil}
	return []Route{
		// OpenAI clients list models at /v1/models too.
		{Method: http.MethodGet, Pattern: base, Format: List, Unlisted: unlisted, Query: page, Translate: GoogleModels},
		{Method: http.MethodGet, Pattern: base + "/{model}", Format: List, Unlisted: true},
		{Method: http.MethodPost, Pattern: base + "/{model}:generateContent", Format: GoogleGenerate, Unlisted: unlisted, Query: alt},
		{Method: http.MethodPost, Pattern: base + "/{model}:streamGenerateContent", Format: GoogleGenerate, Stream: true, Unlisted: unlisted, Query: alt},
		{Method: http.MethodPost, Pattern: base + "/{model}:countTokens", Format: GoogleCountTokens, Unlisted: unlisted},
	}
}

var (
	GoogleGenerate = &Format{
		Name: "google-generate", Body: true, Admitted: true, Charged: true,
		MaxTokens: [][]string{
			{"generationConfig", "maxOutputTokens"}, {"generationConfig", "max_output_tokens"},
			{"generation_config", "maxOutputTokens"}, {"generation_config", "max_output_tokens"},
		},
		AddMaxTokens: []string{"generationConfig", "maxOutputTokens"},
		Single: [][]string{
			{"generationConfig", "candidateCount"}, {"generationConfig", "candidate_count"},
			{"generation_config", "candidateCount"}, {"generation_config", "candidate_count"},
		},
		Thinking: [][]string{
			{"generationConfig", "thinkingConfig"}, {"generationConfig", "thinking_config"},
			{"generation_config", "thinkingConfig"}, {"generation_config", "thinking_config"},
		},
		OperatorRefs: googleCaches,
		Usage:        googleUsage,
		Event:        googleEvent,
		StreamError:  googleStreamError,
		Fake:         fakeGenerate,
	}
	GoogleCountTokens = &Format{Name: "google-count-tokens", Body: true, Admitted: true, OperatorRefs: googleCaches}
	// googleCaches name a context cache the operator's project holds.
	googleCaches = [][]string{{"cachedContent"}, {"cached_content"}}
)

var googleStatus = map[int]string{
	http.StatusBadRequest:            "INVALID_ARGUMENT",
	http.StatusUnauthorized:          "UNAUTHENTICATED",
	http.StatusForbidden:             "PERMISSION_DENIED",
	http.StatusNotFound:              "NOT_FOUND",
	http.StatusRequestEntityTooLarge: "INVALID_ARGUMENT",
	http.StatusTooManyRequests:       "RESOURCE_EXHAUSTED",
	http.StatusInternalServerError:   "INTERNAL",
	http.StatusBadGateway:            "UNAVAILABLE",
	http.StatusServiceUnavailable:    "UNAVAILABLE",
	http.StatusGatewayTimeout:        "DEADLINE_EXCEEDED",
}

func googleErrorBody(status int, e *users.Error) []byte {
	s := googleStatus[status]
	if s == "" {
		s = "UNKNOWN"
	}
	body := map[string]any{"code": status, "message": e.Message, "status": s}
	addQuota(body, e)
	return MustJSON(map[string]any{"error": body})
}

// googleKeyDead: Google names what is wrong with a key in its error's
// reason (400 API_KEY_INVALID; 403 for a blocked or suspended key). A 403
// without one (someone else's cachedContent, a policy) is the request's.
func googleKeyDead(status int, body []byte) bool {
	return (status == http.StatusBadRequest || status == http.StatusForbidden) && googleReasonIn(body, googleKeyReasons)
}

var googleKeyReasons = []string{"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED", "CONSUMER_SUSPENDED"}

// googleUsageJSON is a usageMetadata object; candidatesTokenCount is read
// as into a *int64 (HaveCandidates: not absent, not null).
type googleUsageJSON struct {
	PromptTokenCount        int64
	ToolUsePromptTokenCount int64
	CandidatesTokenCount    int64
	HaveCandidates          bool
	ThoughtsTokenCount      int64
}

func (u *googleUsageJSON) usage() Usage {
	out := reported(u.ThoughtsTokenCount) + reported(u.CandidatesTokenCount)
	return Usage{Input: reported(u.PromptTokenCount) + reported(u.ToolUsePromptTokenCount), Output: out}
}

// decode reads a Google usageMetadata object (see usage.go for the rules).
func (u *googleUsageJSON) decode(b []byte) bool {
	return decodeCounts(b, []count{
		{name: "promptTokenCount", to: &u.PromptTokenCount},
		{name: "toolUsePromptTokenCount", to: &u.ToolUsePromptTokenCount},
		{name: "thoughtsTokenCount", to: &u.ThoughtsTokenCount},
		{name: "candidatesTokenCount", to: &u.CandidatesTokenCount, present: &u.HaveCandidates},
	})
}

var topGoogleUsage = topMember[googleUsageJSON]("usageMetadata")

var googleUsage = answerUsage(topGoogleUsage, (*googleUsageJSON).usage)

// googleEvent reads one GenerateContentResponse of a stream (an SSE event
// or a JSON array element).
func googleEvent(st *StreamState, _, data []byte) bool {
	st.Text += jsonscan.StringFields(data, "text")
	if googleFinished(data) {
		st.Final = true
	}
	if u, ok := topGoogleUsage(data); ok {
		st.U = u.usage()
		st.HaveIn = true
		st.HaveOut = u.HaveCandidates
	}
	// Google streams have no end event: the chunk that finishes the
	// answer with its complete usage is the end, charged before it is
	// relayed (the body's end would come after the client has it all).
	if st.Final && st.HaveOut {
		st.Done = true
	}
	return true
}

// googleFinished reports a candidate of the chunk with a finishReason.
// The name elsewhere is not the end: a function call's arguments are
// JSON objects the caller shapes (a parameter named finishReason).
func googleFinished(data []byte) bool {
	if !bytes.Contains(data, finishReasonKey) {
		return false // most chunks: no JSON read
	}
	return len(gjson.GetBytes(data, "candidates.#.finishReason").Array()) > 0
}

var finishReasonKey = []byte(`"finishReason"`)

func fakeGenerate(f FakeAnswer) (string, []byte) {
	resp := map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"parts": []any{map[string]any{"text": f.Text}}, "role": "model"},
			"finishReason": "STOP", "index": 0,
		}},
		"usageMetadata": map[string]any{"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0},
		"modelVersion":  f.Model,
	}
	switch {
	case !f.Stream:
		return ContentJSON, MustJSON(resp)
	case f.SSE:
		return ContentSSE, sse(true, "", resp)
	default:
		return ContentJSON, append(append([]byte("["), MustJSON(resp)...), ']')
	}
}

func googleStreamError(msg string) []byte {
	return sse(true, "", map[string]any{"error": map[string]any{"code": 502, "message": msg, "status": "UNAVAILABLE"}})
}
