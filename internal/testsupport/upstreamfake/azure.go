package upstreamfake

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Azure imitates Azure OpenAI: one server for every resource, each
// resource at the path /{resource} (point AZURE_OPENAI_BASE_URL at
// URL+"/{resource}"), serving its deployments at
// /{resource}/openai/deployments/{deployment}/{operation}?api-version=…
// with its key in api-key. Answers are OpenAI's with Azure's extras:
// prompt_filter_results, content_filter_results, and a first stream
// chunk that carries only the prompt's filter results.
const Azure Kind = "azure/openai"

// AzureResources are the fake's resources: their keys and deployments
// (deployment name → the model it runs, as answers name it).
var AzureResources = map[string]AzureResource{
	"tollgate-east": {Key: "0123456789abcdef0123456789abcdef", Deployments: map[string]string{
		"prod-4o":  "gpt-4o-2024-08-06",
		"chat35":   "gpt-35-turbo",
		"instruct": "gpt-35-turbo-instruct",
		"embed":    "text-embedding-3-small",
		"dalle3":   "dall-e-3",
	}},
	"tollgate-west": {Key: "fedcba9876543210fedcba9876543210", Deployments: map[string]string{
		"west-4o": "gpt-4o-2024-11-20",
		"o3":      "o3-2025-04-16",
	}},
	"tollgate-images": {Key: "00112233445566778899aabbccddeeff", Deployments: map[string]string{
		"gptimage": "gpt-image-1",
	}},
}

// AzureRegion is the region every resource of the fake answers from
// (x-ms-region).
const AzureRegion = "Sweden Central"

// AzureResource is one Azure OpenAI resource of the fake.
type AzureResource struct {
	Key         string
	Deployments map[string]string
}

// AzureAPIVersions are the api-versions the fake serves; others are
// answered 404, as Azure answers them.
var AzureAPIVersions = []string{"2025-04-01-preview", "2024-10-21", "2024-06-01", "2024-02-01"}

// azureError is Azure's error shape: a code that is a name or a status.
func azureError(code, msg string) any {
	return map[string]any{"error": map[string]any{"code": code, "message": msg}}
}

const azureDenied = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."

func serveAzure(x *exchange) {
	resource, rest, _ := strings.Cut(strings.TrimPrefix(x.r.URL.Path, "/"), "/")
	res, ok := AzureResources[resource]
	if !ok || !slices.Contains(AzureAPIVersions, x.r.URL.Query().Get("api-version")) {
		x.json(http.StatusNotFound, azureError("404", "Resource not found"))
		return
	}
	if x.req.Key != res.Key {
		x.json(http.StatusUnauthorized, azureError("401", azureDenied))
		return
	}
	if s, ok := x.b.KeyStatus[x.req.Key]; ok {
		x.json(s, azureError(strconv.Itoa(s), keyErrorMessage(s, x.req.Key)))
		return
	}
	if x.r.Method == http.MethodGet && rest == "openai/models" {
		var data []any
		for _, d := range sortedKeys(res.Deployments) {
			data = append(data, map[string]any{"id": res.Deployments[d], "object": "model", "status": "succeeded", "created_at": created,
				"capabilities": map[string]any{"chat_completion": true, "completion": false, "embeddings": false, "inference": true}})
		}
		// A fine-tune the resource owns, as Azure lists it beside the
		// base models: its base model and its job are named.
		data = append(data, map[string]any{"id": "gpt-4o-mini-2024-07-18.ft-72a2792ef7d24ba7b82c7fe4a37e379f", "object": "model",
			"status": "succeeded", "created_at": created, "model": "gpt-4o-mini-2024-07-18", "fine_tune": "ftjob-72a2792ef7d24ba7b82c7fe4a37e379f",
			"capabilities": map[string]any{"chat_completion": true, "completion": false, "embeddings": false, "inference": true, "fine_tune": false}})
		x.json(http.StatusOK, map[string]any{"object": "list", "data": data})
		return
	}
	dep, op, ok := strings.Cut(strings.TrimPrefix(rest, "openai/deployments/"), "/")
	if x.r.Method != http.MethodPost || !strings.HasPrefix(rest, "openai/deployments/") || !ok {
		x.json(http.StatusNotFound, azureError("404", "Resource not found"))
		return
	}
	// Azure names where the answer came from: the resource's region and
	// the deployment, beside a request id.
	x.w.Header().Set("X-Ms-Region", AzureRegion)
	x.w.Header().Set("X-Ms-Deployment-Name", dep)
	x.w.Header().Set("Apim-Request-Id", "0f3c2a9e-fake-apim-request-id")
	model, ok := res.Deployments[dep]
	if !ok {
		x.json(http.StatusNotFound, azureError("DeploymentNotFound", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."))
		return
	}
	if x.b.Status != 0 {
		x.json(x.b.Status, azureError(strconv.Itoa(x.b.Status), "The fake upstream was told to fail."))
		return
	}
	if !azureServes(model, op) {
		x.json(http.StatusBadRequest, azureError("OperationNotSupported", "The "+op+" operation does not work with the specified model, "+model+". Please choose different model and try again."))
		return
	}
	m := x.body()
	switch op {
	case "chat/completions":
		if isStream(m) {
			azureChatStream(x, m, model)
		} else {
			x.json(http.StatusOK, azureChat(x, model))
		}
	case "completions":
		out := legacyCompletion(x, m)
		out["model"] = model
		out["prompt_filter_results"] = azurePromptFilter()
		x.json(http.StatusOK, out)
	case "embeddings":
		x.json(http.StatusOK, map[string]any{"object": "list", "model": model,
			"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.0023, -0.0093, 0.0157}}},
			"usage": map[string]any{"prompt_tokens": x.b.InputTokens, "total_tokens": x.b.InputTokens}})
	case "images/generations":
		if strings.HasPrefix(model, "gpt-image") && isStream(m) {
			// A gpt-image stream: a partial image as large as a real
			// one, then the image with its usage; no event names a model.
			usage := map[string]any{"input_tokens": x.b.InputTokens, "output_tokens": x.b.OutputTokens,
				"total_tokens": x.b.InputTokens + x.b.OutputTokens}
			x.startStream()
			if x.event("image_generation.partial_image", map[string]any{"type": "image_generation.partial_image",
				"b64_json": strings.Repeat("A", 96<<10), "partial_image_index": 0, "created_at": created}, false) {
				x.event("image_generation.completed", map[string]any{"type": "image_generation.completed",
					"b64_json": "iVBORw0KGgo=", "created_at": created, "usage": usage}, false)
			}
			return
		}
		if strings.HasPrefix(model, "gpt-image") {
			// gpt-image names no model either, but reports its usage.
			x.json(http.StatusOK, map[string]any{"created": created, "data": []any{map[string]any{"b64_json": "iVBORw0KGgo=",
				"content_filter_results": azureFilter()}}, "usage": map[string]any{"input_tokens": x.b.InputTokens,
				"output_tokens": x.b.OutputTokens, "total_tokens": x.b.InputTokens + x.b.OutputTokens}})
			return
		}
		// DALL-E on Azure names no model and reports no usage.
		x.json(http.StatusOK, map[string]any{"created": created, "data": []any{map[string]any{
			"url": "https://dalleprodsec.blob.core.windows.net/private/images/fake.png", "revised_prompt": x.b.Text,
			"content_filter_results": azureFilter(), "prompt_filter_results": azureFilter()}}})
	default:
		x.json(http.StatusNotFound, azureError("404", "Resource not found"))
	}
}

// azureServes reports whether a deployment of model serves operation op.
func azureServes(model, op string) bool {
	switch {
	case strings.HasPrefix(model, "dall-e"), strings.HasPrefix(model, "gpt-image"):
		return op == "images/generations"
	case strings.HasPrefix(model, "text-embedding"):
		return op == "embeddings"
	case strings.HasSuffix(model, "-instruct"):
		return op == "completions"
	}
	return op == "chat/completions"
}

func azureFilter() map[string]any {
	ok := map[string]any{"filtered": false, "severity": "safe"}
	return map[string]any{"hate": ok, "self_harm": ok, "sexual": ok, "violence": ok}
}

func azurePromptFilter() []any {
	return []any{map[string]any{"prompt_index": 0, "content_filter_results": azureFilter()}}
}

func azureChat(x *exchange, model string) map[string]any {
	return map[string]any{
		"id": id("chatcmpl", 1), "object": "chat.completion", "created": created, "model": model,
		"system_fingerprint":    "fp_azure_fake",
		"prompt_filter_results": azurePromptFilter(),
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "logprobs": nil,
			"message":                map[string]any{"role": "assistant", "content": x.b.Text, "refusal": nil},
			"content_filter_results": azureFilter()}},
		"usage": x.chatUsage(),
	}
}

// azureChatStream streams as Azure does: a first chunk with only the
// prompt's filter results (no model, no choices), then OpenAI's chunks
// with content filter results, the usage chunk when asked for.
func azureChatStream(x *exchange, m map[string]any, model string) {
	includeUsage := false
	if so, ok := m["stream_options"].(map[string]any); ok {
		includeUsage, _ = so["include_usage"].(bool)
	}
	chunk := func(delta map[string]any, finish any, filter bool) map[string]any {
		choice := map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}
		if filter {
			choice["content_filter_results"] = azureFilter()
		} else {
			choice["content_filter_results"] = map[string]any{}
		}
		c := map[string]any{"id": id("chatcmpl", 1), "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_azure_fake", "choices": []any{choice}}
		if includeUsage {
			c["usage"] = nil
		}
		return c
	}
	x.startStream()
	if !x.event("", map[string]any{"choices": []any{}, "created": 0, "id": "", "model": "", "object": "",
		"prompt_filter_results": azurePromptFilter()}, false) {
		return
	}
	if !x.event("", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil, false), false) {
		return
	}
	for _, piece := range x.pieces() {
		if !x.beforeChunk() || !x.event("", chunk(map[string]any{"content": piece}, nil, true), false) || !x.afterChunk() {
			return
		}
	}
	if !x.event("", chunk(map[string]any{}, "stop", false), false) {
		return
	}
	if includeUsage {
		x.holdBeforeUsage()
		if !x.event("", map[string]any{"id": id("chatcmpl", 1), "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_azure_fake", "choices": []any{}, "usage": x.chatUsage()}, false) {
			return
		}
	}
	x.event("", "[DONE]", false)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
