package providers

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/jsonscan"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// OpenAI: key as a Bearer token; model in the body's "model"; usage in
// "usage" (chat, completions, embeddings: prompt_tokens +
// completion_tokens; Responses API and images: input_tokens +
// output_tokens). Reasoning tokens are already part of completion_tokens
// and output_tokens, so they are not added again.
func openAIProvider() *Provider {
	return openAICompatible(&Provider{
		ID:   models.OpenAI,
		Name: "OpenAI",
		Env: Env{Key: "OPENAI_KEY", BaseURL: "OPENAI_BASE_URL", MaxOutput: "MAX_OUTPUT_TOKENS_OPENAI",
			DefaultBaseURL: "https://api.openai.com", CheckKey: headerKey},
		SDKPath: "/v1",
		SetKey:  bearer,
		Headers: []string{"OpenAI-Beta"},
		KeyDead: openAIKeyDead,
		// Chat, Responses and legacy completions take no limit at all.
		UnlimitedOutput: openAIUnlimitedOutput,
		ImageTokens:     openAIImageTokens,
	}, openAIOperations()...)
}

// openAIOperations are OpenAI's own POST routes, in the order the
// service-info page lists them.
func openAIOperations() []Route {
	return []Route{
		{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: OpenAIChat},
		{Method: http.MethodPost, Pattern: "/v1/responses", Format: OpenAIResponses},
		{Method: http.MethodPost, Pattern: "/v1/completions", Format: OpenAICompletions},
		{Method: http.MethodPost, Pattern: "/v1/embeddings", Format: OpenAIEmbeddings},
		{Method: http.MethodPost, Pattern: "/v1/images/generations", Format: OpenAIImages},
	}
}

// openAICompatible completes a provider that serves OpenAI's API (OpenAI,
// Mistral, Azure OpenAI, the gateways that copy it) with what that API
// fixes for all of them: the model list and one model under /v1 (without
// the account's own models: OpenAIModels), then the given operations; OpenAI's error shape; and the model list, free, as
// the key check. The provider's own value gives the rest: its names, where
// its key goes, which answers mean the key is dead.
func openAICompatible(p *Provider, operations ...Route) *Provider {
	p.Routes = append([]Route{
		{Method: http.MethodGet, Pattern: "/v1/models", Format: List, Translate: OpenAIModels},
		{Method: http.MethodGet, Pattern: "/v1/models/{model}", Format: List, Unlisted: true, Translate: OpenAIModel},
	}, operations...)
	p.ErrorBody = openAIErrorBody
	p.CheckPath = "/v1/models"
	return p
}

// The formats OpenAI speaks (Mistral and OpenAI-compatible gateways too).
var (
	OpenAIChat = &Format{
		Name: "openai-chat", Body: true, Admitted: true, Charged: true,
		MaxTokens: [][]string{{"max_tokens"}, {"max_completion_tokens"}},
		// o-series models refuse max_tokens; every chat model takes this.
		AddMaxTokens: []string{"max_completion_tokens"},
		Single:       [][]string{{"n"}},
		Thinking:     [][]string{{"reasoning_effort"}},
		AskUsage:     askStreamUsage,
		Usage:        openAIUsage,
		Event:        chatEvent,
		Clean:        withoutNullUsage,
		StreamError:  openAIStreamError,
		Fake:         fakeChat,
	}
	// Legacy completions stream and report usage as chat does.
	OpenAICompletions = OpenAIChat.variant(func(f *Format) {
		f.Name, f.MaxTokens, f.Thinking, f.Fake = "openai-completions", [][]string{{"max_tokens"}}, nil, fakeLegacy
		f.AddMaxTokens, f.Single = []string{"max_tokens"}, [][]string{{"n"}, {"best_of"}}
		f.TokenIDs = [][]string{{"prompt"}}
	})
	OpenAIResponses = &Format{
		Name: "openai-responses", Body: true, Admitted: true, Charged: true,
		MaxTokens:    [][]string{{"max_output_tokens"}},
		AddMaxTokens: []string{"max_output_tokens"},
		Unserved:     [][]string{{"background"}},
		Stored:       [][]string{{"previous_response_id"}, {"conversation"}},
		StoredItems:  [][]string{{"input"}},
		OperatorRefs: [][]string{{"prompt"}},
		// The image_generation tool draws with gpt-image-1.
		ImageTools: [][]string{{"tools"}}, ImageToolModel: "gpt-image-1",
		ImagePrice: imageToolPrice, ImageUsage: responsesImageUsage,
		Thinking:    [][]string{{"reasoning"}},
		Usage:       openAIUsage,
		Event:       responsesEvent,
		StreamError: responsesStreamError,
		Fake:        fakeResponses,
	}
	OpenAIEmbeddings = &Format{
		Name: "openai-embeddings", Body: true, Admitted: true, Charged: true,
		TokenIDs: [][]string{{"input"}},
		Usage:    openAIUsage,
	}
	OpenAIImages = &Format{
		Name: "openai-images", Body: true, Admitted: true, Charged: true, Kind: models.Image,
		Usage:        openAIUsage,
		DefaultModel: "dall-e-2", SendModel: true,
		Price: dallEPrice,
		// gpt-image's streamed images (partial_image, completed events)
		// carry their usage in events this format does not read, and on
		// Azure no event names the model that made them.
		Unserved: [][]string{{"stream"}},
	}
)

// dallETokensPerDollar prices DALL-E's images, which report no usage, in
// tokens of the image family's quota: the original's rate.
const dallETokensPerDollar = 100_000

// dallEPrice is what the images a DALL-E request asks for cost, in
// tokens: OpenAI's price per image by model, size and quality, times n.
// gpt-image models report their usage and are charged that; what they
// are reserved (the quota check) is the output tokens OpenAI bills for
// the images asked for (gptImageTokens), not the text clamp, which one
// image of high quality passes fourfold. A size the price list lacks is
// priced as the model's largest: the upstream refuses it, or it costs no
// more. The price is at most MaxOutputLimit, as an output limit is: a
// hostile n is refused by any quota, and never wraps a count.
func dallEPrice(body []byte, model string) int64 {
	r := gjson.GetManyBytes(body, "n", "size", "quality")
	n := min(max(r[0].Int(), 1), MaxOutputLimit) // n × a price stays far from wrapping
	if strings.Contains(model, "gpt-image") {
		return min(n*gptImageTokens(r[1].String(), r[2].String()), MaxOutputLimit)
	}
	hd := r[2].String() == "hd"
	var cents int64 // per image, in tenths of a cent
	switch size := r[1].String(); {
	case strings.Contains(model, "dall-e-2"):
		switch size {
		case "256x256":
			cents = 16
		case "512x512":
			cents = 18
		default:
			cents = 20 // 1024x1024, the default
		}
	case size == "" || size == "1024x1024":
		cents = 40
		if hd {
			cents = 80
		}
	default: // 1024x1792, 1792x1024 (DALL-E 3, and image models without a price of their own)
		cents = 80
		if hd {
			cents = 120
		}
	}
	return min(n*cents*dallETokensPerDollar/1000, MaxOutputLimit)
}

// gptImageTokens is the output tokens OpenAI bills for one gpt-image
// image of size and quality: its table for 1024×1024, 1024×1536 and
// 1536×1024 at low, medium and high. "auto", none or another value is
// counted as the most the upstream may choose (high, 1024×1536).
func gptImageTokens(size, quality string) int64 {
	var row [3]int64 // 1024x1024, 1024x1536, 1536x1024
	switch quality {
	case "low":
		row = [3]int64{272, 408, 400}
	case "medium":
		row = [3]int64{1056, 1584, 1568}
	default: // high, auto
		row = [3]int64{4160, 6240, 6208}
	}
	switch size {
	case "1024x1024":
		return row[0]
	case "1536x1024":
		return row[2]
	}
	return row[1]
}

// PartialImageTokens is what OpenAI bills for each partial image an
// image generation tool streams before its image: 100 output tokens.
const PartialImageTokens = 100

// MaxImageToolTokens is the most one image of the image generation tool
// is priced (imageToolPrice): the largest, highest quality image and
// three partial images.
const MaxImageToolTokens = 6240 + 3*PartialImageTokens

// maxImagesReserved bounds the images a Responses request's quota check
// reserves for its max_tool_calls.
const maxImagesReserved = 64

// imageToolPrice prices the image_generation tool of a Responses request:
// one image is the output tokens OpenAI bills for an image of the
// tool's size and quality (gptImageTokens: the most the tool may choose
// when it names auto or none), plus PartialImageTokens for each partial
// image it asks for (at most 3); of several such tools, the dearest.
// images is the request's max_tool_calls (the built-in tool calls one
// answer may make), else one: a model may call the tool more than once,
// and each image it makes is charged all the same.
func imageToolPrice(body []byte) (perImage, images int64) {
	images = 1
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		switch k.String() {
		case "tools":
			v.ForEach(func(_, t gjson.Result) bool {
				perImage = max(perImage, imageToolTokens1(t))
				return true
			})
		case "max_tool_calls":
			if n := v.Int(); n > 1 {
				images = min(n, maxImagesReserved)
			}
		}
		return true
	})
	return perImage, images
}

// imageToolTokens1 prices one image of tool, 0 when it is no
// image_generation tool. Every occurrence of a member is read (a hostile
// body may repeat one): the dearest is priced.
func imageToolTokens1(tool gjson.Result) int64 {
	image := false
	sizes, qualities := []string{}, []string{}
	var partial int64
	tool.ForEach(func(k, v gjson.Result) bool {
		switch k.String() {
		case "type":
			image = image || v.String() == "image_generation"
		case "size":
			sizes = append(sizes, v.String())
		case "quality":
			qualities = append(qualities, v.String())
		case "partial_images":
			partial = max(partial, min(max(v.Int(), 0), 3))
		}
		return true
	})
	if !image {
		return 0
	}
	// None, or several: the most the upstream may choose.
	one := func(vs []string) string {
		if len(vs) == 1 {
			return vs[0]
		}
		return ""
	}
	return gptImageTokens(one(sizes), one(qualities)) + partial*PartialImageTokens
}

// responsesImageUsage reads what a whole Responses answer's image tool
// made: the tokens of its tool_usage.image_gen (the image model's input
// and output, which the answer's own usage leaves out), and the
// image_generation_call items of its output.
func responsesImageUsage(body []byte) (tokens int64, reported bool, images int64) {
	tokens, reported = imageToolTokens(body)
	gjson.GetBytes(body, "output").ForEach(func(_, item gjson.Result) bool {
		if item.Get("type").String() == "image_generation_call" {
			images++
		}
		return true
	})
	return tokens, reported, images
}

// imageToolTokens reads a Responses response object's
// tool_usage.image_gen: its input and output tokens.
func imageToolTokens(resp []byte) (int64, bool) {
	gen := jsonscan.MemberValue(jsonscan.MemberValue(resp, "tool_usage"), "image_gen")
	if gen == nil || jsonscan.IsNull(gen) {
		return 0, false
	}
	var u usageJSON
	if !u.decode(gen) {
		return 0, false
	}
	return u.openAI().Total(), true
}

// openAIErrorBody is OpenAI's error shape, also used by Mistral.
func openAIErrorBody(status int, e *users.Error) []byte {
	body := map[string]any{"message": e.Message, "type": openAIErrorType(status, e.Code), "code": string(e.Code), "param": nil}
	addQuota(body, e)
	return MustJSON(map[string]any{"error": body})
}

func openAIErrorType(status int, code users.Code) string {
	switch {
	case code == users.CodeQuota:
		return "insufficient_quota"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// addQuota adds a quota refusal's numbers to an error object.
func addQuota(body map[string]any, e *users.Error) {
	if e.Code == users.CodeQuota {
		body["quota"], body["used"], body["requested"] = e.Quota, e.Used, e.Requested
	}
}

// openAIKeyDead: 401 is always about the key (invalid, revoked,
// deactivated); a 429 for an exhausted billing quota never clears by
// retrying, unlike a rate limit. A 403 or 404 is about the request (a
// model or region the project may not use) and is relayed.
func openAIKeyDead(status int, body []byte) bool {
	return status == http.StatusUnauthorized ||
		status == http.StatusTooManyRequests && errorCode(body, "error.code", "error.type") == "insufficient_quota"
}

// askStreamUsage makes stream_options.include_usage true. hide is true
// when the client had not asked for it itself.
func askStreamUsage(body []byte, close int, so *jsonscan.Member) ([]jsonscan.Edit, bool, error) {
	const want = `{"include_usage":true}`
	if so == nil {
		sep := ","
		if jsonscan.EmptyObject(body[:close+1]) {
			sep = ""
		}
		return []jsonscan.Edit{{Start: close, End: close, Repl: []byte(sep + `"stream_options":` + want)}}, true, nil
	}
	replaceAll := []jsonscan.Edit{{Start: so.Start, End: so.End, Repl: []byte(want)}}
	if body[so.Start] != '{' {
		return replaceAll, true, nil // null or a wrong type
	}
	// Every include_usage member is made true (the last one counts
	// upstream); past a few, the options are replaced whole rather than
	// edited one by one.
	var edits []jsonscan.Edit
	found, last := 0, ""
	innerClose, _, err := jsonscan.Walk(body[:so.End], so.Start, false, func(k []byte, start, end int) error {
		if string(k) != "include_usage" {
			return nil
		}
		found, last = found+1, string(body[start:end])
		if found <= maxOptionEdits && last != "true" {
			edits = append(edits, jsonscan.Edit{Start: start, End: end, Repl: []byte("true")})
		}
		return nil
	})
	switch {
	case err != nil:
		return nil, false, err
	case found > maxOptionEdits:
		return replaceAll, true, nil
	case found > 0 && last == "true" && len(edits) == 0:
		return nil, false, nil // the client asked itself
	case found > 0:
		return edits, true, nil
	}
	sep := ","
	if jsonscan.EmptyObject(body[so.Start:so.End]) {
		sep = ""
	}
	return []jsonscan.Edit{{Start: innerClose, End: innerClose, Repl: []byte(sep + `"include_usage":true`)}}, true, nil
}

// maxOptionEdits bounds the include_usage members edited one by one.
const maxOptionEdits = 4

var openAIUsage = answerUsage(topUsage, (*usageJSON).openAI)

// chatEvent reads OpenAI chat and legacy completion chunks, and Mistral's.
func chatEvent(st *StreamState, _, data []byte) bool {
	if bytes.Equal(data, doneData) {
		st.Done = true
		return true
	}
	st.Text += jsonscan.StringFields(data, "content", "reasoning_content", "reasoning", "refusal", "arguments", "text")
	if bytes.Contains(data, finishReason) {
		st.Final = true
	}
	if !jsonscan.HasObject(data, "usage") {
		return true
	}
	u, noChoices, ok := chatChunkUsage(data)
	if !ok || u == nil {
		return true // not ours to judge: relayed as is
	}
	st.U = u.openAI()
	st.HaveIn, st.HaveOut = true, true
	// The usage-only chunk the proxy asked for is not the client's.
	return !(st.HideUsage && noChoices)
}

// withoutNullUsage drops the "usage":null that OpenAI adds to every chunk
// once usage is asked for, when it was the proxy, not the client, that
// asked: the client's SDK must see the chunks it would see directly. In
// the raw bytes, `,"usage":null` can only be a member: quotes inside
// strings are escaped.
func withoutNullUsage(st *StreamState, raw []byte) []byte {
	if !st.HideUsage || !bytes.Contains(raw, nullUsage) {
		return raw
	}
	return bytes.ReplaceAll(raw, nullUsage, nil)
}

var nullUsage = []byte(`,"usage":null`)

// finishReason starts a set finish reason (null is not one).
var finishReason = []byte(`"finish_reason":"`)

// responsesEvent reads Responses API events: text deltas, and usage in
// the final response.completed (or .incomplete / .failed) event.
func responsesEvent(st *StreamState, name, data []byte) bool {
	switch typ := eventName(name, data); typ {
	case "response.output_text.done", "response.output_item.done":
		st.Final = true
	case "response.image_generation_call.completed":
		st.Images++
	case "response.completed", "response.incomplete", "response.failed":
		st.Done = true
		resp := jsonscan.MemberValue(data, "response")
		if u, ok := nestedUsage(resp); ok && u != nil {
			st.U = u.openAI()
			st.HaveIn, st.HaveOut = true, true
		}
		if n, ok := imageToolTokens(resp); ok {
			st.ImageTokens, st.HaveImageTokens = n, true
		}
	default:
		if strings.HasSuffix(typ, ".delta") {
			st.Text += jsonscan.StringFields(data, "delta")
		}
	}
	return true
}

var zeroChatUsage = map[string]any{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}

func fakeChat(f FakeAnswer) (string, []byte) {
	const id = "chatcmpl-tollgate-error"
	if !f.Stream {
		return ContentJSON, MustJSON(map[string]any{
			"id": id, "object": "chat.completion", "created": f.Created, "model": f.Model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": f.Text}, "finish_reason": "stop"}},
			"usage":   zeroChatUsage,
		})
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": f.Created, "model": f.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	return ContentSSE, sse(false,
		"", chunk(map[string]any{"role": "assistant", "content": f.Text}, nil),
		"", chunk(map[string]any{}, "stop"),
		"", "[DONE]")
}

func fakeLegacy(f FakeAnswer) (string, []byte) {
	obj := func(text string, finish any) map[string]any {
		return map[string]any{"id": "cmpl-tollgate-error", "object": "text_completion", "created": f.Created, "model": f.Model,
			"choices": []any{map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}}}
	}
	if !f.Stream {
		o := obj(f.Text, "stop")
		o["usage"] = zeroChatUsage
		return ContentJSON, MustJSON(o)
	}
	return ContentSSE, sse(false, "", obj(f.Text, nil), "", obj("", "stop"), "", "[DONE]")
}

func fakeResponses(f FakeAnswer) (string, []byte) {
	resp := func(status string, text string) map[string]any {
		out := []any{}
		if status == "completed" {
			out = []any{map[string]any{"type": "message", "id": "msg_tollgate_error", "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}}
		}
		return map[string]any{"id": "resp_tollgate_error", "object": "response", "created_at": f.Created, "status": status,
			"model": f.Model, "output": out,
			"usage": map[string]any{"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}
	}
	if !f.Stream {
		return ContentJSON, MustJSON(resp("completed", f.Text))
	}
	return ContentSSE, sse(false,
		"response.created", map[string]any{"type": "response.created", "sequence_number": 0, "response": resp("in_progress", "")},
		"response.output_text.delta", map[string]any{"type": "response.output_text.delta", "sequence_number": 1,
			"item_id": "msg_tollgate_error", "output_index": 0, "content_index": 0, "delta": f.Text},
		"response.completed", map[string]any{"type": "response.completed", "sequence_number": 2, "response": resp("completed", f.Text)})
}

// Events relayed when the upstream breaks a stream, in the format's own
// error shape, so that SDKs raise an error rather than end quietly.

func openAIStreamError(msg string) []byte {
	return sse(false, "", map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "code": "upstream_stream_broken", "param": nil}})
}

func responsesStreamError(msg string) []byte {
	return sse(false, "error", map[string]any{"type": "error", "code": "upstream_stream_broken", "message": msg, "param": nil})
}
