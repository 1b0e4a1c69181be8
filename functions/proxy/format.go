package proxy

import (
	"strconv"
)

// apiFormat is one API shape: where a request names its output limit, how
// its answers report usage (whole and streamed), and how to fake an answer
// carrying an error. Providers share formats (Mistral speaks OpenAI chat).
type apiFormat struct {
	name string
	// body: the route takes a JSON body (POST).
	body bool
	// admitted: the request passes the quota, rate and concurrency limits.
	admitted bool
	// charged: a 2xx answer is charged.
	charged bool
	// maxTokens are the paths of the requested output limit.
	maxTokens [][]string
	// askUsage: streams must ask for usage (OpenAI's
	// stream_options.include_usage).
	askUsage bool
	// usage reads a whole answer's usage.
	usage func(body []byte) (usage, bool)
	// event reads one stream event (its end included); it reports whether
	// to relay it.
	event func(st *streamState, name, data []byte) bool
	// streamError renders an error event for a stream the upstream broke.
	streamError func(msg string) []byte
	// fake renders an error as a 200 answer (ERROR_FORMAT=completion);
	// nil where no such answer makes sense (lists, embeddings).
	fake func(f fakeAnswer) (contentType string, body []byte)
	// defaultModel is assumed when the body names none.
	defaultModel string
}

var (
	fmtList = &apiFormat{name: "list"}

	fmtChat = &apiFormat{
		name: "openai-chat", body: true, admitted: true, charged: true,
		maxTokens:   [][]string{{"max_tokens"}, {"max_completion_tokens"}},
		askUsage:    true,
		usage:       openAIUsage,
		event:       chatEvent,
		streamError: openAIStreamError,
		fake:        fakeChat,
	}
	fmtMistralChat = &apiFormat{
		name: "mistral-chat", body: true, admitted: true, charged: true,
		maxTokens:   [][]string{{"max_tokens"}},
		usage:       openAIUsage,
		event:       chatEvent,
		streamError: openAIStreamError,
		fake:        fakeChat,
	}
	fmtLegacy = &apiFormat{
		name: "openai-completions", body: true, admitted: true, charged: true,
		maxTokens:   [][]string{{"max_tokens"}},
		askUsage:    true,
		usage:       openAIUsage,
		event:       chatEvent,
		streamError: openAIStreamError,
		fake:        fakeLegacy,
	}
	fmtResponses = &apiFormat{
		name: "openai-responses", body: true, admitted: true, charged: true,
		maxTokens:   [][]string{{"max_output_tokens"}},
		usage:       openAIUsage,
		event:       responsesEvent,
		streamError: responsesStreamError,
		fake:        fakeResponses,
	}
	fmtEmbeddings = &apiFormat{
		name: "openai-embeddings", body: true, admitted: true, charged: true,
		usage: openAIUsage,
	}
	fmtImages = &apiFormat{
		name: "openai-images", body: true, admitted: true, charged: true,
		usage:        openAIUsage,
		defaultModel: "dall-e-2",
	}
	fmtMessages = &apiFormat{
		name: "anthropic-messages", body: true, admitted: true, charged: true,
		maxTokens:   [][]string{{"max_tokens"}},
		usage:       anthropicUsage,
		event:       anthropicEvent,
		streamError: anthropicStreamError,
		fake:        fakeMessage,
	}
	// Counting tokens costs nothing upstream: limited but not charged.
	fmtCountTokens = &apiFormat{name: "anthropic-count-tokens", body: true, admitted: true}
	fmtGoogleCount = &apiFormat{name: "google-count-tokens", body: true, admitted: true}
	fmtGenerate    = &apiFormat{
		name: "google-generate", body: true, admitted: true, charged: true,
		maxTokens: [][]string{
			{"generationConfig", "maxOutputTokens"}, {"generationConfig", "max_output_tokens"},
			{"generation_config", "maxOutputTokens"}, {"generation_config", "max_output_tokens"},
		},
		usage:       googleUsage,
		event:       googleEvent,
		streamError: googleStreamError,
		fake:        fakeGenerate,
	}
)

// request is what the proxy learnt from (and changed in) a request body.
type request struct {
	body   []byte // as forwarded
	model  string
	stream bool
	// maxOut is the output limit as forwarded (clamped); hasMaxOut is false
	// when the request names none.
	maxOut    int64
	hasMaxOut bool
	// promptTokens estimates the prompt: a quarter of its text bytes.
	promptTokens int64
	// hideUsage: the proxy asked for streamed usage the client did not ask
	// for, so the usage-only chunk is not relayed.
	hideUsage bool
}

// parseRequest reads the body once: model, stream, output limit. It clamps
// the output limit to limit (when clamp and limit > 0) and asks OpenAI
// streams for usage, editing only those bytes. body is left unchanged.
func parseRequest(f *apiFormat, body []byte, limit int64, clamp bool) (*request, error) {
	return parseBody(f, body, limit, clamp, false)
}

// parseBody is parseRequest; with inPlace, the edits may be made in body
// itself (the exchange's own copy of the client's body).
func parseBody(f *apiFormat, body []byte, limit int64, clamp, inPlace bool) (*request, error) {
	obj, text, err := scanObject(body, 0, true)
	if err != nil {
		return nil, err
	}
	rq := &request{body: body, promptTokens: (text + 3) / 4, model: f.defaultModel}
	if m, ok := obj.get("model"); ok {
		if s, err := unquote(body[m.start:m.end]); err == nil && s != "" {
			rq.model = s
		}
	}
	if m, ok := obj.get("stream"); ok {
		rq.stream = string(body[m.start:m.end]) == "true"
	}
	var edits []edit
	for _, path := range f.maxTokens {
		for _, m := range findPath(body, obj, path) {
			n, ok := number(body[m.start:m.end])
			if !ok {
				continue
			}
			if clamp && limit > 0 && n > limit {
				n = limit
				edits = append(edits, edit{m.start, m.end, []byte(strconv.FormatInt(limit, 10))})
			}
			// The last occurrence wins, as in the upstream's parser.
			rq.maxOut, rq.hasMaxOut = n, true
		}
	}
	if f.askUsage && rq.stream {
		e, hide, err := askStreamUsage(body, obj)
		if err != nil {
			return nil, err
		}
		edits = append(edits, e...)
		rq.hideUsage = hide
	}
	rq.body = applyEdits(body, edits, inPlace)
	return rq, nil
}

// findPath returns every member at path (one or two levels deep).
func findPath(body []byte, obj *object, path []string) []member {
	var out []member
	for _, m := range obj.members {
		if string(m.key) != path[0] {
			continue
		}
		if len(path) == 1 {
			out = append(out, m)
			continue
		}
		if body[m.start] != '{' {
			continue
		}
		inner, _, err := scanObject(body, m.start, false)
		if err != nil {
			continue
		}
		out = append(out, findPath(body, inner, path[1:])...)
	}
	return out
}

// askStreamUsage makes stream_options.include_usage true. hide is true
// when the client had not asked for it itself.
func askStreamUsage(body []byte, obj *object) ([]edit, bool, error) {
	const want = `{"include_usage":true}`
	so, ok := obj.get("stream_options")
	if !ok {
		return []edit{insertMember(obj, "stream_options", want)}, true, nil
	}
	if body[so.start] != '{' {
		// null or a wrong type: replaced whole.
		return []edit{{so.start, so.end, []byte(want)}}, true, nil
	}
	inner, _, err := scanObject(body, so.start, false)
	if err != nil {
		return nil, false, err
	}
	if iu, ok := inner.get("include_usage"); ok {
		if string(body[iu.start:iu.end]) == "true" {
			return nil, false, nil
		}
		var edits []edit
		for _, m := range inner.members {
			if string(m.key) == "include_usage" {
				edits = append(edits, edit{m.start, m.end, []byte("true")})
			}
		}
		return edits, true, nil
	}
	return []edit{insertMember(inner, "include_usage", "true")}, true, nil
}
