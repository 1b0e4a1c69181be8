package upstreamfake

import (
	"encoding/json"
	"net/http"
	"strings"
)

var googleStatus = map[int]string{
	http.StatusBadRequest:          "INVALID_ARGUMENT",
	http.StatusUnauthorized:        "UNAUTHENTICATED",
	http.StatusForbidden:           "PERMISSION_DENIED",
	http.StatusNotFound:            "NOT_FOUND",
	http.StatusTooManyRequests:     "RESOURCE_EXHAUSTED",
	http.StatusInternalServerError: "INTERNAL",
	http.StatusServiceUnavailable:  "UNAVAILABLE",
	http.StatusGatewayTimeout:      "DEADLINE_EXCEEDED",
}

// googleError is Google's error shape.
func googleError(status int, msg string) any {
	s := googleStatus[status]
	if s == "" {
		s = "UNKNOWN"
	}
	return map[string]any{"error": map[string]any{"code": status, "message": msg, "status": s}}
}

// googleKeyError answers a bad key the way the real API does: 400
// INVALID_ARGUMENT with reason API_KEY_INVALID.
func googleKeyError(status int, key string) any {
	if status != http.StatusBadRequest {
		return googleError(status, keyErrorMessage(status, key))
	}
	return map[string]any{"error": map[string]any{
		"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
		"details": []any{map[string]any{
			"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
			"domain": "googleapis.com", "metadata": map[string]any{"service": "generativelanguage.googleapis.com"},
		}},
	}}
}

func serveGoogle(x *exchange) {
	if x.req.Key == "" {
		x.json(http.StatusForbidden, googleError(http.StatusForbidden, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."))
		return
	}
	if s := x.keyStatus(Google); s != 0 {
		x.json(s, googleKeyError(s, x.req.Key))
		return
	}
	p := x.r.URL.Path
	version, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	if version != "v1beta" && version != "v1" {
		notFound(x, googleError)
		return
	}
	if x.r.Method == http.MethodGet && (rest == "models" || strings.HasPrefix(rest, "models/") && !strings.Contains(rest, ":")) {
		x.json(http.StatusOK, map[string]any{"models": []any{
			map[string]any{"name": "models/gemini-2.5-flash", "displayName": "Gemini 2.5 Flash", "supportedGenerationMethods": []string{"generateContent", "countTokens"}},
			map[string]any{"name": "models/gemini-2.5-pro", "displayName": "Gemini 2.5 Pro", "supportedGenerationMethods": []string{"generateContent", "countTokens"}},
		}})
		return
	}
	model, method, ok := strings.Cut(strings.TrimPrefix(rest, "models/"), ":")
	if x.r.Method != http.MethodPost || !strings.HasPrefix(rest, "models/") || !ok {
		notFound(x, googleError)
		return
	}
	if x.b.Status != 0 {
		x.json(x.b.Status, googleError(x.b.Status, "The fake upstream was told to fail."))
		return
	}
	switch method {
	case "generateContent":
		x.json(http.StatusOK, generateResponse(x, model, x.b.Text, "STOP", x.b.OutputTokens, true))
	case "countTokens":
		x.json(http.StatusOK, map[string]any{"totalTokens": x.b.InputTokens})
	case "streamGenerateContent":
		if x.r.URL.Query().Get("alt") == "sse" {
			googleSSE(x, model)
		} else {
			googleJSONStream(x, model)
		}
	default:
		notFound(x, googleError)
	}
}

// generateResponse is one GenerateContentResponse. Streams carry
// usageMetadata in every chunk, complete counts in the last one.
func generateResponse(x *exchange, model, text string, finish any, candidates int64, final bool) map[string]any {
	parts := []any{map[string]any{"text": text}}
	if final && x.b.ToolCall != nil {
		parts = append(parts, googleFunctionCall(x))
	}
	cand := map[string]any{"content": map[string]any{"parts": parts, "role": "model"}, "index": 0}
	if finish != nil {
		cand["finishReason"] = finish
	}
	out := map[string]any{"candidates": []any{cand}, "modelVersion": model, "responseId": "fake-response-1"}
	if !x.b.NoUsage {
		u := map[string]any{"promptTokenCount": x.b.InputTokens,
			"promptTokensDetails": []any{map[string]any{"modality": "TEXT", "tokenCount": x.b.InputTokens}}}
		total := x.b.InputTokens
		if final {
			u["candidatesTokenCount"] = candidates
			total += candidates
			if x.b.ReasoningTokens > 0 {
				u["thoughtsTokenCount"] = x.b.ReasoningTokens
				total += x.b.ReasoningTokens
			}
		}
		u["totalTokenCount"] = total
		out["usageMetadata"] = u
	}
	return out
}

func googleSSE(x *exchange, model string) {
	x.startStream()
	pieces := x.pieces()
	for i, piece := range pieces {
		last := i == len(pieces)-1
		var finish any
		if last {
			finish = "STOP"
		}
		if !x.beforeChunk() || !x.event("", generateResponse(x, model, piece, finish, x.b.OutputTokens, last), true) || !x.afterChunk() {
			return
		}
	}
}

// googleJSONStream is streamGenerateContent without alt=sse: one JSON
// array written element by element.
func googleJSONStream(x *exchange, model string) {
	x.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	x.w.WriteHeader(http.StatusOK)
	pieces := x.pieces()
	for i, piece := range pieces {
		last := i == len(pieces)-1
		var finish any
		if last {
			finish = "STOP"
		}
		if !x.beforeChunk() {
			return
		}
		raw, _ := json.MarshalIndent(generateResponse(x, model, piece, finish, x.b.OutputTokens, last), "", "  ")
		sep := "["
		if i > 0 {
			sep = ",\r\n"
		}
		if _, err := x.w.Write(append([]byte(sep), raw...)); err != nil {
			return
		}
		x.flush()
		if !x.afterChunk() {
			return
		}
	}
	_, _ = x.w.Write([]byte("]"))
}
