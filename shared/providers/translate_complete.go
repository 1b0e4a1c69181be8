package providers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"tollgate.dev/tollgate/internal/jsonscan"
)

// Anthropic's legacy text completions (POST /v1/complete: a
// "\n\nHuman: …\n\nAssistant:" prompt) are served from the Messages API,
// which every current Claude model speaks, as the original does. The
// answers carry a "usage" member besides the legacy ones, so that they are
// charged as Messages answers are.

// AnthropicComplete is the legacy completions format.
var AnthropicComplete = &Format{
	Name: "anthropic-complete", Body: true, Admitted: true, Charged: true,
	MaxTokens:   [][]string{{"max_tokens_to_sample"}},
	Usage:       anthropicUsage,
	Event:       completeEvent,
	StreamError: anthropicStreamError,
	Fake:        fakeComplete,
}

// AnthropicLegacy translates legacy completions to Messages.
var AnthropicLegacy = &Translation{
	Native:   func(string, bool) (string, string) { return "/v1/messages", "" },
	Request:  completeRequest,
	Response: completeResponse,
}

var (
	humanMark     = "\n\nHuman:"
	assistantMark = "\n\nAssistant:"
)

func completeRequest(rq *Request) ([]byte, error) {
	var in struct {
		Prompt      *string         `json:"prompt"`
		Stop        []string        `json:"stop_sequences"`
		Temperature *float64        `json:"temperature"`
		TopP        *float64        `json:"top_p"`
		TopK        *int64          `json:"top_k"`
		Metadata    json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(rq.Body, &in); err != nil {
		return nil, fieldError("request", err)
	}
	if rq.Model == "" {
		return nil, invalid("model is required.")
	}
	if in.Prompt == nil || strings.TrimSpace(*in.Prompt) == "" {
		return nil, invalid("prompt is required.")
	}
	if !rq.HasMaxOut || rq.MaxOut == 0 {
		return nil, invalid("max_tokens_to_sample is required.")
	}
	// Splitting the prompt allocates about a KiB a turn: the turns are
	// bounded as a chat route's items are (maxItems), and what they may
	// take is asked for before they are made (reserve).
	items := int64(strings.Count(*in.Prompt, humanMark) + strings.Count(*in.Prompt, assistantMark) + 1)
	if items > maxItems {
		return nil, invalid("prompt: at most %d Human: and Assistant: turns in one request on this route.", maxItems)
	}
	if rq.Reserve != nil {
		if err := rq.Reserve(costOfTranslating(rq.Body, items)); err != nil {
			return nil, err
		}
	}
	system, turns := promptTurns(*in.Prompt)
	if len(turns) == 0 || turns[0].Role != "user" {
		return nil, invalid("prompt must hold a Human: turn before any Assistant: one.")
	}
	out := map[string]any{"model": rq.Model, "max_tokens": rq.MaxOut, "messages": turns, "stream": rq.Stream}
	if system != "" {
		out["system"] = system
	}
	if len(in.Stop) > 0 {
		out["stop_sequences"] = in.Stop
	}
	if in.Temperature != nil {
		out["temperature"] = *in.Temperature
	}
	if in.TopP != nil {
		out["top_p"] = *in.TopP
	}
	if in.TopK != nil {
		out["top_k"] = *in.TopK
	}
	return plainJSON(out), nil
}

// promptTurns splits a legacy prompt at its Human: and Assistant: marks:
// what comes before the first is the system prompt, the empty Assistant:
// that ends it is the cue for the answer, and a final Assistant: text is
// a prefill. A prompt without marks is one user turn.
func promptTurns(prompt string) (system string, turns []anthropicTurn) {
	var native []turn
	add := func(role, text string) {
		if text != "" {
			native = appendTurn(native, role, anthropicText(text))
		}
	}
	// The next of each mark is searched for again only once passed: one
	// pass over the prompt (searching the rest for both marks at every
	// turn took a minute for 100,000 turns of one kind).
	from := func(at int, mark string) int {
		if i := strings.Index(prompt[at:], mark); i >= 0 {
			return at + i
		}
		return len(prompt)
	}
	at, role := 0, ""
	h, a := from(0, humanMark), from(0, assistantMark)
	for h < len(prompt) || a < len(prompt) {
		next, mark, nextRole := h, humanMark, "user"
		if a < h {
			next, mark, nextRole = a, assistantMark, "assistant"
		}
		text := strings.TrimSpace(prompt[at:next])
		if role == "" {
			system = text
		} else {
			add(role, text)
		}
		at, role = next+len(mark), nextRole
		if h < at {
			h = from(at, humanMark)
		}
		if a < at {
			a = from(at, assistantMark)
		}
	}
	rest := prompt[at:]
	switch role {
	case "":
		add("user", strings.TrimSpace(rest))
	default:
		add(role, strings.TrimSpace(rest))
	}
	if system != "" && (len(native) == 0 || native[0].Role != "user") {
		// The API starts with the user: a text before any Human: turn
		// is then the question, not a system prompt.
		native = append([]turn{{Role: "user", Blocks: []any{anthropicText(system)}}}, native...)
		system = ""
	}
	return system, asAnthropic(native)
}

// completeStop maps Messages stop reasons to the legacy ones.
func completeStop(reason string) string {
	if reason == "max_tokens" {
		return "max_tokens"
	}
	return "stop_sequence"
}

func completion(id, model, text string, stop, stopSeq any, u *usageJSON) map[string]any {
	out := map[string]any{"type": "completion", "id": id, "completion": text, "stop_reason": stop, "model": model, "stop": stopSeq}
	if u != nil {
		out["usage"] = map[string]any{"input_tokens": u.anthropic().Input, "output_tokens": u.anthropic().Output}
	}
	return out
}

func completeResponse(resp *http.Response, rq *Request) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil // Anthropic's error shape is the legacy API's too
	}
	type answer struct {
		messagesAnswer
		StopSequence *string `json:"stop_sequence"`
	}
	st := new(StreamState)
	return translateMessages(resp, rq, st, completeStreamEvent(rq.Model, st), func(m *answer, body []byte) []byte {
		var text strings.Builder
		for _, b := range m.Content {
			if b.Type == "text" {
				text.WriteString(b.Text)
			}
		}
		u, _ := topUsage(body)
		return plainJSON(completion(m.ID, m.Model, text.String(), completeStop(m.StopReason), m.StopSequence, u))
	})
}

// completeStreamEvent translates Messages events to legacy completion
// events: one per text delta, the last with the stop reason and usage
// (read into st as for native streams).
func completeStreamEvent(model string, st *StreamState) func(c *chunks, name, data []byte) bool {
	var id, stop string
	var stopSeq *string
	return func(c *chunks, name, data []byte) bool {
		anthropicEvent(st, name, data)
		var ev struct {
			Message struct {
				ID    string `json:"id"`
				Model string `json:"model"`
			} `json:"message"`
			Delta struct {
				Type         string  `json:"type"`
				Text         string  `json:"text"`
				StopReason   string  `json:"stop_reason"`
				StopSequence *string `json:"stop_sequence"`
			} `json:"delta"`
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(data, &ev) != nil {
			return false
		}
		send := func(name string, v any) {
			c.out = append(c.out, "event: "+name+"\ndata: "...)
			c.out = append(c.out, plainJSON(v)...)
			c.out = append(c.out, "\n\n"...)
		}
		switch eventName(name, data) {
		case "message_start":
			id = ev.Message.ID
			if ev.Message.Model != "" {
				model = ev.Message.Model
			}
		case "content_block_delta":
			if ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
				send("completion", completion(id, model, ev.Delta.Text, nil, nil, nil))
			}
		case "message_delta":
			stop, stopSeq = ev.Delta.StopReason, ev.Delta.StopSequence
		case "message_stop":
			var u *usageJSON // none when the upstream reported none: the proxy estimates
			if st.HaveIn && st.HaveOut {
				u = &usageJSON{InputTokens: st.U.Input, OutputTokens: st.U.Output}
			}
			send("completion", completion(id, model, "", completeStop(stop), stopSeq, u))
			return true
		case "error":
			c.out = append(c.out, "event: error\ndata: "...)
			c.out = append(c.out, data...)
			c.out = append(c.out, "\n\n"...)
			return true
		}
		return false
	}
}

// completeEvent reads the translated legacy stream: text in completion,
// the end and usage in the event with a stop reason.
func completeEvent(st *StreamState, _, data []byte) bool {
	st.Text += jsonscan.StringFields(data, "completion")
	if bytes.Contains(data, []byte(`"stop_reason":"`)) {
		st.Final = true
		if u, ok := topUsage(data); ok && u != nil {
			st.U = u.anthropic()
			st.HaveIn, st.HaveOut = true, true
		}
		st.Done = true
	}
	return true
}

func fakeComplete(f FakeAnswer) (string, []byte) {
	if !f.Stream {
		return ContentJSON, MustJSON(completion("compl_tollgate_error", f.Model, f.Text, "stop_sequence", nil, nil))
	}
	return ContentSSE, sse(false,
		"completion", completion("compl_tollgate_error", f.Model, f.Text, nil, nil, nil),
		"completion", completion("compl_tollgate_error", f.Model, "", "stop_sequence", nil, nil))
}
