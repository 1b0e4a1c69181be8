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
	case "generateContent", "streamGenerateContent":
		serveGenerate(x, model, method)
	case "countTokens":
		x.json(http.StatusOK, map[string]any{"totalTokens": x.b.InputTokens})
	default:
		notFound(x, googleError)
	}
}

// serveGenerate answers generateContent and streamGenerateContent, on
// Google AI and Vertex AI alike.
func serveGenerate(x *exchange, model, method string) {
	if geminiRefusal(x, model) {
		return
	}
	chunks := geminiAnswer(x, model)
	switch {
	case method == "generateContent":
		x.json(http.StatusOK, chunks[len(chunks)-1]["whole"])
	case x.r.URL.Query().Get("alt") == "sse":
		googleSSE(x, chunks)
	default:
		googleJSONStream(x, chunks)
	}
}

// geminiAnswer is an answer as stream chunks, each also under "chunk";
// the last also holds the whole answer under "whole".
func geminiAnswer(x *exchange, model string) []map[string]map[string]any {
	if x.b.BlockReason != "" {
		b := blocked(x, model)
		return []map[string]map[string]any{{"chunk": b, "whole": b}}
	}
	finish := x.b.FinishReason
	if finish == "" {
		finish = "STOP"
	}
	var pieces [][]any
	if x.b.Parts != nil {
		for _, p := range geminiParts(x, "", true) {
			pieces = append(pieces, []any{p})
		}
	} else {
		texts := x.pieces()
		for i, t := range texts {
			pieces = append(pieces, geminiParts(x, t, i == len(texts)-1))
		}
	}
	var out []map[string]map[string]any
	for i, parts := range pieces {
		last := i == len(pieces)-1
		var f any
		if last {
			f = finish
		}
		out = append(out, map[string]map[string]any{"chunk": generateResponse(x, model, parts, f, last)})
	}
	out[len(out)-1]["whole"] = generateResponse(x, model, geminiParts(x, x.b.Text, true), finish, true)
	return out
}

// generateResponse is one GenerateContentResponse. Streams carry
// usageMetadata in every chunk, complete counts in the last one.
func generateResponse(x *exchange, model string, parts []any, finish any, final bool) map[string]any {
	if geminiSignatures(model) {
		parts = signCalls(parts)
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
			u["candidatesTokenCount"] = x.b.OutputTokens
			total += x.b.OutputTokens
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

// streamError is Gemini's error in a stream it cannot finish.
func (x *exchange) geminiStreamError() map[string]any {
	return googleError(http.StatusServiceUnavailable, x.b.StreamError).(map[string]any)
}

func googleSSE(x *exchange, chunks []map[string]map[string]any) {
	x.startStream()
	for i, c := range chunks {
		if !x.beforeChunk() || !x.event("", c["chunk"], true) || !x.afterChunk() {
			return
		}
		if i == 0 && x.b.StreamError != "" {
			x.event("", x.geminiStreamError(), true)
			return
		}
	}
}

// googleJSONStream is streamGenerateContent without alt=sse: one JSON
// array written element by element.
func googleJSONStream(x *exchange, chunks []map[string]map[string]any) {
	x.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	x.w.WriteHeader(http.StatusOK)
	for i, c := range chunks {
		if !x.beforeChunk() {
			return
		}
		raw, _ := json.MarshalIndent(c["chunk"], "", "  ")
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
