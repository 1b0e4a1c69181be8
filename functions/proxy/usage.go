package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
)

// usage is what an upstream reported: input (prompt) and output
// (completion, reasoning included) tokens.
type usage struct {
	input, output int64
}

func (u usage) total() int64 { return u.input + u.output }

// maxReported bounds one reported count (2^40: more than any context
// window, far from int64's end). What an upstream reports is clamped to
// [0, maxReported] as it is read, so that a negative or absurd number can
// neither refund a user's quota nor wrap a sum round to a negative charge.
const maxReported = 1 << 40

func reported(n int64) int64 { return min(max(n, 0), maxReported) }

// usageJSON covers OpenAI's, Mistral's and Anthropic's usage objects.
type usageJSON struct {
	PromptTokens             int64 `json:"prompt_tokens"`
	CompletionTokens         int64 `json:"completion_tokens"`
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// openAI reads usage as OpenAI and Mistral report it: chat and legacy
// completions, embeddings (prompt_tokens only) and the Responses API and
// images (input_tokens, output_tokens).
func (u *usageJSON) openAI() usage {
	return usage{input: reported(u.PromptTokens) + reported(u.InputTokens), output: reported(u.CompletionTokens) + reported(u.OutputTokens)}
}

// anthropic counts cached prompt tokens too: they were part of the
// prompt, only billed differently.
func (u *usageJSON) anthropic() usage {
	return usage{input: reported(u.InputTokens) + reported(u.CacheCreationInputTokens) + reported(u.CacheReadInputTokens), output: reported(u.OutputTokens)}
}

type googleUsageJSON struct {
	PromptTokenCount        int64  `json:"promptTokenCount"`
	ToolUsePromptTokenCount int64  `json:"toolUsePromptTokenCount"`
	CandidatesTokenCount    *int64 `json:"candidatesTokenCount"`
	ThoughtsTokenCount      int64  `json:"thoughtsTokenCount"`
}

func (u *googleUsageJSON) usage() usage {
	out := reported(u.ThoughtsTokenCount)
	if u.CandidatesTokenCount != nil {
		out += reported(*u.CandidatesTokenCount)
	}
	return usage{input: reported(u.PromptTokenCount) + reported(u.ToolUsePromptTokenCount), output: out}
}

// topMember decodes one top-level member of a JSON answer into v without
// decoding the rest (answers may carry megabytes of base64 images). The
// usage structs are read without reflection (usagejson.go).
func topMember(body []byte, key string, v any) bool {
	b := memberValue(body, key)
	if b == nil {
		return false
	}
	switch v := v.(type) {
	case *usageJSON:
		return v.decode(b)
	case *googleUsageJSON:
		return v.decode(b)
	}
	return json.Unmarshal(b, v) == nil
}

func openAIUsage(body []byte) (usage, bool) {
	var u usageJSON
	if !topMember(body, "usage", &u) {
		return usage{}, false
	}
	return u.openAI(), true
}

func anthropicUsage(body []byte) (usage, bool) {
	var u usageJSON
	if !topMember(body, "usage", &u) {
		return usage{}, false
	}
	return u.anthropic(), true
}

func googleUsage(body []byte) (usage, bool) {
	var u googleUsageJSON
	if !topMember(body, "usageMetadata", &u) {
		return usage{}, false
	}
	return u.usage(), true
}

// streamState follows a stream as it is relayed.
type streamState struct {
	hideUsage bool
	u         usage
	haveIn    bool // the input count was reported
	haveOut   bool // the final output count was reported
	text      int64
	done      bool // the stream's own end passed
}

// tokens is the charge: the reported usage for a finished stream, else an
// estimate of what was relayed (reported counts where known, the prompt
// estimate and a quarter of the relayed text bytes otherwise).
func (st *streamState) tokens(promptEstimate int64) int64 {
	if st.done && st.haveIn && st.haveOut {
		return st.u.total()
	}
	in := promptEstimate
	if st.haveIn {
		in = st.u.input
	}
	out := (st.text + 3) / 4
	if st.u.output > out {
		out = st.u.output
	}
	return in + out
}

var doneData = []byte("[DONE]")

// Stream events are read without decoding them whole: a JSON decode per
// chunk would cost more than the rest of the relay. Text is measured by
// the string members that carry it; only events that carry usage are
// decoded, and then only their usage member.

// stringFields sums the lengths of the string values of members named by
// keys, anywhere in the JSON text data.
func stringFields(data []byte, keys ...string) int64 {
	var n int64
	for _, key := range keys {
		pat := make([]byte, 0, len(key)+2)
		pat = append(append(append(pat, '"'), key...), '"')
		for i := 0; ; {
			j := bytes.Index(data[i:], pat)
			if j < 0 {
				break
			}
			i += j + len(pat)
			v := valueAfterColon(data, i)
			if v < 0 || data[v] != '"' {
				continue
			}
			s := &scanner{b: data, i: v}
			if s.str(false) != nil {
				break
			}
			n += int64(s.i - v - 2)
			i = s.i
		}
	}
	return n
}

// valueAfterColon returns where the value after ":" begins at data[i:],
// or -1 when no colon follows (the match was a value, not a key).
func valueAfterColon(data []byte, i int) int {
	s := &scanner{b: data, i: i}
	s.ws()
	if s.i >= len(data) || data[s.i] != ':' {
		return -1
	}
	s.i++
	s.ws()
	if s.i >= len(data) {
		return -1
	}
	return s.i
}

// hasObject reports whether a member named key holds an object.
func hasObject(data []byte, key string) bool {
	pat := []byte(`"` + key + `"`)
	for i := 0; ; {
		j := bytes.Index(data[i:], pat)
		if j < 0 {
			return false
		}
		i += j + len(pat)
		if v := valueAfterColon(data, i); v >= 0 && data[v] == '{' {
			return true
		}
	}
}

// eventType is the "type" member of an event's data, for streams relayed
// without their event: lines.
func eventType(data []byte) string {
	obj, _, err := scanObject(data, 0, true)
	if err != nil {
		return ""
	}
	m, ok := obj.get("type")
	if !ok {
		return ""
	}
	t, _ := unquote(data[m.start:m.end])
	return t
}

// chatEvent reads OpenAI chat and legacy completion chunks, and Mistral's.
func chatEvent(st *streamState, _, data []byte) bool {
	if bytes.Equal(data, doneData) {
		st.done = true
		return true
	}
	st.text += stringFields(data, "content", "reasoning_content", "reasoning", "refusal", "arguments", "text")
	if !hasObject(data, "usage") {
		return true
	}
	u, noChoices, ok := chatChunkUsage(data)
	if !ok || u == nil {
		return true // not ours to judge: relayed as is
	}
	st.u = u.openAI()
	st.haveIn, st.haveOut = true, true
	// The usage-only chunk the proxy asked for is not the client's.
	return !(st.hideUsage && noChoices)
}

// responsesEvent reads Responses API events: text deltas, and usage in
// the final response.completed (or .incomplete / .failed) event.
func responsesEvent(st *streamState, name, data []byte) bool {
	typ := string(name)
	if typ == "" {
		typ = eventType(data)
	}
	switch typ {
	case "response.completed", "response.incomplete", "response.failed":
		st.done = true
		if u, ok := nestedUsage(memberValue(data, "response")); ok && u != nil {
			st.u = u.openAI()
			st.haveIn, st.haveOut = true, true
		}
	default:
		if strings.HasSuffix(typ, ".delta") {
			st.text += stringFields(data, "delta")
		}
	}
	return true
}

// anthropicEvent reads Messages stream events: input tokens in
// message_start, the output total in message_delta, text in
// content_block_delta, the end in message_stop.
func anthropicEvent(st *streamState, name, data []byte) bool {
	typ := string(name)
	if typ == "" {
		typ = eventType(data)
	}
	switch typ {
	case "content_block_delta":
		st.text += stringFields(data, "text", "partial_json", "thinking")
	case "message_stop":
		st.done = true
	case "message_start":
		if u, ok := nestedUsage(memberValue(data, "message")); ok && u != nil {
			st.u = u.anthropic()
			st.haveIn = true
		}
	case "message_delta":
		var u usageJSON
		if topMember(data, "usage", &u) {
			if in := u.anthropic().input; in > 0 {
				st.u.input, st.haveIn = in, true
			}
			st.u.output, st.haveOut = reported(u.OutputTokens), true
		}
	}
	return true
}

// googleEvent reads one GenerateContentResponse of a stream (an SSE event
// or a JSON array element).
func googleEvent(st *streamState, _, data []byte) bool {
	st.text += stringFields(data, "text")
	var u googleUsageJSON
	if topMember(data, "usageMetadata", &u) {
		st.u = u.usage()
		st.haveIn = true
		st.haveOut = u.CandidatesTokenCount != nil
	}
	return true
}
