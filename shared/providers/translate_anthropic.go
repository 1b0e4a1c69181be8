package providers

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// AnthropicChat serves OpenAI chat completions from Anthropic's Messages
// API (POST /v1/messages), on every mount that speaks it (Anthropic,
// Bedrock's and Vertex's Claude): a route line
//
//	{Method: "POST", Pattern: "/v1/chat/completions", Format: OpenAIChat, Translate: AnthropicChat}
var AnthropicChat = &Translation{
	Native:    func(string, bool) (string, string) { return "/v1/messages", "" },
	Request:   anthropicChatRequest(true),
	Response:  anthropicChatResponse,
	ErrorBody: openAIErrorBody,
}

// anthropicDefaultMaxTokens is sent when the client names no limit (or
// 0; the clamp Parse added is not the client's): the Messages API
// requires one. The operator's clamp still applies.
const anthropicDefaultMaxTokens = 4096

// anthropicImageTypes are the image types Claude reads.
var anthropicImageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// anthropicThinking are the thinking budgets of reasoning_effort levels.
var anthropicThinking = map[string]int64{"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}

// anthropicTurn is a turn as Messages takes it.
type anthropicTurn struct {
	Role   string `json:"role"`
	Blocks []any  `json:"content"`
}

func asAnthropic(turns []turn) []anthropicTurn {
	var out []anthropicTurn
	for _, t := range turns {
		out = append(out, anthropicTurn(t))
	}
	return out
}

// anthropicText is a text content block.
func anthropicText(text string) any { return map[string]any{"type": "text", "text": text} }

// anthropicDialect spells content blocks as Messages does; fetchesURLs:
// the service fetches https image URLs itself.
func anthropicDialect(fetchesURLs bool) *dialect {
	return &dialect{
		modelRole: "assistant",
		text:      anthropicText,
		image: func(url string, img dataURL, remote bool, at string) (any, error) {
			if remote {
				if !fetchesURLs {
					return nil, invalid("%s.image_url.url: Claude on this service cannot fetch image URLs; send the image as a data URL.", at)
				}
				if !strings.HasPrefix(url, "https://") {
					return nil, invalid("%s.image_url.url: Claude fetches https URLs only.", at)
				}
				return map[string]any{"type": "image", "source": map[string]any{"type": "url", "url": url}}, nil
			}
			if !anthropicImageTypes[img.MediaType] {
				return nil, invalid("%s.image_url.url: Claude reads image/jpeg, image/png, image/gif and image/webp, not %s.", at, img.MediaType)
			}
			return map[string]any{"type": "image", "source": map[string]any{"type": "base64", "media_type": img.MediaType, "data": img.Data}}, nil
		},
		toolCall: func(id, name string, args json.RawMessage) any {
			return map[string]any{"type": "tool_use", "id": id, "name": name, "input": args}
		},
		toolResult: func(id, _, text string) any {
			return map[string]any{"type": "tool_result", "tool_use_id": id, "content": text}
		},
	}
}

// anthropicChatRequest translates an OpenAI chat request to Messages;
// fetchesURLs: the service fetches https image URLs itself (Anthropic's
// API does; Bedrock and Vertex AI take image data only).
func anthropicChatRequest(fetchesURLs bool) func(rq *Request) ([]byte, error) {
	d := anthropicDialect(fetchesURLs)
	return func(rq *Request) ([]byte, error) { return anthropicMessagesBody(rq, d) }
}

func anthropicMessagesBody(rq *Request, d *dialect) ([]byte, error) {
	c, err := readChatRequest(rq)
	if err != nil {
		return nil, err
	}
	if rq.Model == "" {
		return nil, invalid("model is required.")
	}
	out := map[string]any{"model": rq.Model, "stream": c.Stream}
	maxTokens := c.MaxTokens
	if maxTokens <= 0 || rq.LimitAdded {
		// Claude requires a limit: the default, under the operator's clamp.
		maxTokens = anthropicDefaultMaxTokens
		if rq.Limit > 0 {
			maxTokens = min(maxTokens, rq.Limit)
		}
	}
	out["max_tokens"] = maxTokens
	// The limit sent is the one the quota reserves and a stream cut short
	// is charged, even when the translation chose it.
	rq.MaxOut, rq.HasMaxOut, rq.ZeroLimit = maxTokens, true, false
	system, turns, err := anthropicTurns(c.Messages, d)
	if err != nil {
		return nil, err
	}
	if len(system) > 0 {
		out["system"] = system
	}
	out["messages"] = turns
	if err := anthropicSampling(c, out, maxTokens, inToolLoop(turns)); err != nil {
		return nil, err
	}
	if err := anthropicTools(c, out); err != nil {
		return nil, err
	}
	return plainJSON(out), nil
}

// anthropicSampling writes the sampling members. toolLoop: the request
// sends tool results back (see inToolLoop).
func anthropicSampling(c *chatRequest, out map[string]any, maxTokens int64, toolLoop bool) error {
	if t := c.Temperature; t != nil {
		if *t < 0 || *t > 1 {
			return invalid("temperature must be between 0 and 1 for Claude.")
		}
		out["temperature"] = *t
	}
	if p := c.TopP; p != nil {
		if *p < 0 || *p > 1 {
			return invalid("top_p must be between 0 and 1.")
		}
		out["top_p"] = *p
	}
	if len(c.Stop) > 0 {
		out["stop_sequences"] = c.Stop
	}
	for name, v := range map[string]*float64{"presence_penalty": c.Presence, "frequency_penalty": c.Frequency} {
		if v != nil && *v != 0 {
			return invalid("%s is not supported by Claude.", name)
		}
	}
	if c.JSON {
		return invalid("response_format: Claude has no JSON mode; ask for JSON in the prompt or use a tool.")
	}
	if budget, ok := anthropicThinking[c.ReasoningLevel]; ok {
		if maxTokens <= budget {
			return invalid("reasoning_effort %s needs max_tokens above %d.", c.ReasoningLevel, budget)
		}
		if !toolLoop {
			out["thinking"] = map[string]any{"type": "enabled", "budget_tokens": budget}
		}
	}
	return nil
}

// inToolLoop reports a conversation whose last assistant turn called
// tools: Claude thinks in such a turn only if it is sent back the
// thinking block that began it, signed, which an OpenAI client has no
// place to keep. The turn is answered without thinking, as Anthropic
// advises, rather than refused.
func inToolLoop(turns []anthropicTurn) bool {
	for i := len(turns) - 1; i >= 0; i-- {
		if turns[i].Role != "assistant" {
			continue
		}
		for _, b := range turns[i].Blocks {
			if m, ok := b.(map[string]any); ok && m["type"] == "tool_use" {
				return true
			}
		}
		return false
	}
	return false
}

func anthropicTools(c *chatRequest, out map[string]any) error {
	tools, err := declareTools(c.Tools, func(t chatTool) map[string]any {
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		return map[string]any{"name": t.Function.Name, "input_schema": schema}
	})
	if err != nil {
		return err
	}
	if tools != nil {
		out["tools"] = tools
	}
	var choice map[string]any
	if tc := c.ToolChoice; tc != nil {
		switch tc.Mode {
		case "none":
			choice = map[string]any{"type": "none"}
		case "auto":
			choice = map[string]any{"type": "auto"}
		case "required":
			choice = map[string]any{"type": "any"}
		case "function":
			choice = map[string]any{"type": "tool", "name": tc.Name}
		}
	}
	if c.Parallel != nil && !*c.Parallel && len(c.Tools) > 0 {
		if choice == nil {
			choice = map[string]any{"type": "auto"}
		}
		if choice["type"] != "none" {
			choice["disable_parallel_tool_use"] = true
		}
	}
	if choice != nil {
		if len(c.Tools) == 0 {
			return invalid("tool_choice needs tools.")
		}
		out["tool_choice"] = choice
	}
	return nil
}

// anthropicTurns turns OpenAI messages into the system prompt and
// alternating turns (see dialect.turns).
func anthropicTurns(msgs []chatMessage, d *dialect) (system []any, turns []anthropicTurn, err error) {
	system, native, err := d.turns(msgs)
	if err != nil {
		return nil, nil, err
	}
	// The API refuses a final assistant turn (a prefill) that ends in
	// whitespace.
	if last := &native[len(native)-1]; last.Role == "assistant" {
		if b, ok := last.Blocks[len(last.Blocks)-1].(map[string]any); ok && b["type"] == "text" {
			b["text"] = strings.TrimRight(b["text"].(string), " \t\r\n")
			if b["text"] == "" {
				last.Blocks = last.Blocks[:len(last.Blocks)-1]
				if len(last.Blocks) == 0 {
					native = native[:len(native)-1]
				}
			}
		}
	}
	if len(native) == 0 {
		return nil, nil, invalid("messages must hold at least one user or assistant message.")
	}
	return system, asAnthropic(native), nil
}

// anthropicFinish maps stop reasons to OpenAI's finish reasons.
func anthropicFinish(reason string) string {
	switch reason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

type anthropicBlock struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Thinking string          `json:"thinking"`
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Input    json.RawMessage `json:"input"`
}

// messagesAnswer is a whole Messages answer, as the translations read it.
type messagesAnswer struct {
	ID         string           `json:"id"`
	Model      string           `json:"model"`
	Content    []anthropicBlock `json:"content"`
	StopReason string           `json:"stop_reason"`
}

// translateMessages translates a 2xx Messages answer: a stream event by
// event as it arrives (it has an end event; event reads its usage into
// st), a whole answer by whole, given the answer (read into an A: a
// messagesAnswer, or one that embeds it and reads more) and its body.
func translateMessages[A any](resp *http.Response, rq *Request, st *StreamState, event func(c *chunks, name, data []byte) bool, whole func(m *A, body []byte) []byte) error {
	if strings.HasPrefix(resp.Header.Get("Content-Type"), ContentSSE) {
		newNativeStream(resp, rq, st, event, func(*chunks) bool { return false })
		return nil
	}
	var m A
	body, err := readNativeJSON(resp, &m)
	if err != nil {
		return err
	}
	setJSON(resp, whole(&m, body))
	return nil
}

func anthropicChatResponse(resp *http.Response, rq *Request) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return translateError(resp)
	}
	st := new(StreamState)
	return translateMessages(resp, rq, st, anthropicChatEvent(st), func(m *messagesAnswer, body []byte) []byte {
		var text, reasoning strings.Builder
		var tools []chatOutTool
		for _, b := range m.Content {
			switch b.Type {
			case "text":
				text.WriteString(b.Text)
			case "thinking":
				reasoning.WriteString(b.Thinking)
			case "tool_use":
				tools = append(tools, outTool(b.ID, b.Name, string(b.Input)))
			}
		}
		if m.Model == "" {
			m.Model = rq.Model
		}
		return wholeAnswer(m.ID, m.Model, text.String(), reasoning.String(), tools, anthropicFinish(m.StopReason), reportedUsage(anthropicUsage(body)))
	})
}

func outTool(id, name, args string) chatOutTool {
	t := chatOutTool{ID: id, Type: "function"}
	t.Function.Name, t.Function.Arguments = name, args
	return t
}

// anthropicChatEvent translates Messages stream events as they come,
// reading their usage into st as for native streams.
func anthropicChatEvent(st *StreamState) func(c *chunks, name, data []byte) bool {
	// A tool's empty input streams as no piece (or an empty one), where
	// OpenAI sends "{}": a client parsing the arguments must get an object.
	inTool, gotArgs := false, false
	return func(c *chunks, name, data []byte) bool {
		anthropicEvent(st, name, data)
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				ID    string `json:"id"`
				Model string `json:"model"`
			} `json:"message"`
			ContentBlock anthropicBlock `json:"content_block"`
			Delta        struct {
				Type        string `json:"type"`
				Text        string `json:"text"`
				Thinking    string `json:"thinking"`
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			} `json:"delta"`
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &ev) != nil {
			return false // not an event: skipped
		}
		switch eventName(name, data) {
		case "message_start":
			if ev.Message.ID != "" {
				c.id = ev.Message.ID
			}
			if ev.Message.Model != "" {
				c.model = ev.Message.Model
			}
			c.delta(chatOut{Content: new(string)}, "")
		case "content_block_start":
			switch ev.ContentBlock.Type {
			case "text":
				c.text(ev.ContentBlock.Text)
			case "tool_use":
				c.toolStart(ev.ContentBlock.ID, ev.ContentBlock.Name, "")
				inTool, gotArgs = true, false
			}
		case "content_block_stop":
			if inTool && !gotArgs {
				c.toolArgs("{}")
			}
			inTool = false
		case "content_block_delta":
			switch ev.Delta.Type {
			case "text_delta":
				c.text(ev.Delta.Text)
			case "thinking_delta":
				c.reasoning(ev.Delta.Thinking)
			case "input_json_delta":
				c.toolArgs(ev.Delta.PartialJSON)
				gotArgs = gotArgs || ev.Delta.PartialJSON != ""
			}
		case "message_delta":
			if ev.Delta.StopReason != "" {
				c.delta(chatOut{}, anthropicFinish(ev.Delta.StopReason))
			}
		case "message_stop":
			c.end(reportedUsage(st.U, st.HaveIn && st.HaveOut))
			return true
		case "error":
			c.error(http.StatusBadGateway, ev.Error.Message)
			return true
		}
		return false
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// CloudAnthropicChat is AnthropicChat for Claude on Bedrock and Vertex AI,
// which take images as data only: an image URL is refused naming its
// field, before anything is sent.
var CloudAnthropicChat = &Translation{
	Native:    AnthropicChat.Native,
	Request:   anthropicChatRequest(false),
	Response:  anthropicChatResponse,
	ErrorBody: openAIErrorBody,
}
