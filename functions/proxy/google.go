package proxy

import (
	"bytes"
	"net/http"
	"strings"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// Google AI (Gemini): key in x-goog-api-key (never in the query); model
// in the path, models/{model}:generateContent; usage in "usageMetadata":
// promptTokenCount + toolUsePromptTokenCount + candidatesTokenCount +
// thoughtsTokenCount (thinking is reported apart from the candidates).
// Streams repeat usageMetadata in every chunk, complete in the last.
func googleProvider() *provider {
	return &provider{
		id:         models.GoogleAI,
		name:       "Google AI",
		match:      googleMatch,
		setKey:     func(h http.Header, key string) { h.Set("X-Goog-Api-Key", key) },
		headers:    []string{"X-Goog-Api-Client"},
		errorBody:  googleErrorBody,
		keyDead:    googleKeyDead,
		modelsPath: "/v1beta/models",
	}
}

// googleMatch accepts /v1beta (and /v1) models routes:
// GET models, GET models/{model}, POST models/{model}:generateContent,
// :streamGenerateContent and :countTokens (which clients such as
// SillyTavern use; limited but not charged, as it costs nothing).
func googleMatch(method, path string) (endpoint, bool) {
	version, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if version != "v1beta" && version != "v1" {
		return endpoint{}, false
	}
	prefix := "/google-ai/" + version + "/models"
	if method == http.MethodGet {
		switch {
		case rest == "models":
			return endpoint{route: "GET " + prefix, format: fmtList}, true
		case strings.HasPrefix(rest, "models/") && !strings.ContainsAny(rest[len("models/"):], "/:") && len(rest) > len("models/"):
			return endpoint{route: "GET " + prefix + "/{model}", format: fmtList}, true
		}
		return endpoint{}, false
	}
	model, method2, ok := strings.Cut(strings.TrimPrefix(rest, "models/"), ":")
	if method != http.MethodPost || !ok || !strings.HasPrefix(rest, "models/") || model == "" || strings.Contains(model, "/") {
		return endpoint{}, false
	}
	switch method2 {
	case "generateContent":
		return endpoint{route: "POST " + prefix + "/{model}:generateContent", format: fmtGenerate, model: model}, true
	case "streamGenerateContent":
		return endpoint{route: "POST " + prefix + "/{model}:streamGenerateContent", format: fmtGenerate, model: model, stream: true}, true
	case "countTokens":
		return endpoint{route: "POST " + prefix + "/{model}:countTokens", format: fmtGoogleCount, model: model}, true
	}
	return endpoint{}, false
}

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
	return mustJSON(map[string]any{"error": body})
}

// googleKeyDead: Google answers a bad key with 400 API_KEY_INVALID.
func googleKeyDead(status int, body []byte) bool {
	return status == http.StatusBadRequest && bytes.Contains(body, []byte("API_KEY_INVALID"))
}
