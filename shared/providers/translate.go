package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/shared/users"
)

// What the OpenAI chat translations share: reading the client's request
// into typed values (every field checked, each error naming it), writing
// chat completions and chunks, and relaying a native stream event by event.

// chatRequest is an OpenAI chat request as the translations read it.
type chatRequest struct {
	Messages       []chatMessage
	Stream         bool
	MaxTokens      int64 // 0: none asked
	Temperature    *float64
	TopP           *float64
	Stop           []string
	Tools          []chatTool
	ToolChoice     *toolChoice
	Parallel       *bool
	JSON           bool            // response_format json_object or json_schema
	Schema         json.RawMessage // json_schema's schema (nil: none)
	Presence       *float64
	Frequency      *float64
	Seed           *int64
	ReasoningLevel string // reasoning_effort: "" when none asked
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  []chatToolCall  `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
	Refusal    *string         `json:"refusal"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

// toolChoice is tool_choice: Mode none, auto or required; Name a function.
type toolChoice struct {
	Mode string
	Name string
}

// chatPart is one part of a message's content.
type chatPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	} `json:"image_url"`
}

// ignoredFields are accepted and have no native counterpart worth
// sending: they change nothing the client sees in the answer.
var ignoredFields = map[string]bool{
	"model": true, "user": true, "store": true, "metadata": true, "service_tier": true,
	"stream_options": true, "safety_identifier": true, "prompt_cache_key": true,
}

func invalid(format string, args ...any) error {
	return users.Errorf(users.CodeInvalid, format, args...)
}

// readChatRequest reads rq.Body, an OpenAI chat request already parsed by
// the proxy (its limit clamped into rq.MaxOut). Every member is checked:
// one that cannot be translated is refused by name, as OpenAI refuses
// unknown arguments. Member names are matched exactly, as the proxy's own
// reading of the limits is.
func readChatRequest(rq *Request) (*chatRequest, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rq.Body, &top); err != nil || top == nil {
		return nil, invalid("The request body is not a valid JSON object.")
	}
	if err := reserve(rq, top["messages"], top["tools"]); err != nil {
		return nil, err
	}
	c := &chatRequest{Stream: rq.Stream}
	if rq.HasMaxOut {
		c.MaxTokens = rq.MaxOut
	}
	for name, raw := range top {
		if err := c.member(name, raw); err != nil {
			return nil, err
		}
	}
	if len(c.Messages) == 0 {
		return nil, invalid("messages must hold at least one message.")
	}
	return c, nil
}

// maxItems bounds the messages, content parts, tool calls and tools of a
// translated request (Claude's own limit is 100,000 messages). Each
// becomes Go values and a native block, some hundreds of bytes: unbounded,
// a 32 MiB body of tiny messages took 850 MiB to translate.
const maxItems = 100_000

// Translating a request allocates, all told, at most about
// translationByteCost bytes for each byte of the body and
// translationItemCost for each message, content part, tool call and tool
// (measured: 5–14 times the body, 750–1,450 bytes an item, on the
// costliest shapes: TestTranslationCostCoversItsAllocations; JSON text in
// a string, whose escaped quotes survive decoding, takes 13.6).
const (
	translationByteCost = 16
	translationItemCost = 2048
)

// costOfTranslating is what translating body, of items items, may
// allocate. Its bytes are counted as the native body may spell them
// (nativeSize): a byte the translation writes as several costs as many.
func costOfTranslating(body []byte, items int64) int64 {
	return translationByteCost*nativeSize(body) + translationItemCost*items
}

// nativeSize bounds the bytes body's strings take once decoded and
// encoded again (plainJSON): a byte that is not UTF-8 is decoded as
// U+FFFD, three bytes; U+2028 and U+2029, three bytes, are encoded as
// six (\u2028). Each of these took some twenty times its size to
// translate, past translationByteCost. Every other byte stays one, or
// was already escaped in body and takes no more.
func nativeSize(body []byte) int64 {
	n := int64(len(body))
	n += 3 * int64(bytes.Count(body, lineSeparator)+bytes.Count(body, paragraphSeparator))
	if !utf8.Valid(body) {
		for b := body; len(b) > 0; {
			r, size := utf8.DecodeRune(b)
			if r == utf8.RuneError && size == 1 {
				n += 2
			}
			b = b[size:]
		}
	}
	return n
}

var (
	lineSeparator      = []byte("\u2028")
	paragraphSeparator = []byte("\u2029")
)

// reserve bounds the request's items (boundItems) and asks rq.Reserve for
// what its translation may take, before anything is decoded.
func reserve(rq *Request, messages, tools json.RawMessage) error {
	n, err := boundItems(messages, tools)
	if err != nil {
		return err
	}
	if rq.Reserve != nil {
		return rq.Reserve(costOfTranslating(rq.Body, n))
	}
	return nil
}

// boundItems counts the items of a request's messages and tools (the
// values the decoder will read: the last of a repeated member) before
// they are decoded; past maxItems the request is refused. Within a
// message every member the decoder may read as content or tool_calls
// (any casing, any repetition) is counted.
func boundItems(messages, tools json.RawMessage) (int64, error) {
	n := int64(0)
	count := func(arr gjson.Result) {
		if arr.IsArray() {
			arr.ForEach(func(_, _ gjson.Result) bool { n++; return n <= maxItems })
		}
	}
	count(gjson.ParseBytes(tools))
	if msgs := gjson.ParseBytes(messages); msgs.IsArray() {
		msgs.ForEach(func(_, m gjson.Result) bool {
			n++
			m.ForEach(func(k, v gjson.Result) bool {
				if strings.EqualFold(k.Str, "content") || strings.EqualFold(k.Str, "tool_calls") {
					count(v)
				}
				return n <= maxItems
			})
			return n <= maxItems
		})
	}
	if n > maxItems {
		return n, invalid("messages: at most %d messages, content parts, tool calls and tools in one request on this route.", maxItems)
	}
	return n, nil
}

func (c *chatRequest) member(name string, raw json.RawMessage) error {
	null := string(raw) == "null"
	decode := func(dst any) error {
		if err := json.Unmarshal(raw, dst); err != nil {
			return fieldError(name, err)
		}
		return nil
	}
	switch name {
	case "messages":
		return decode(&c.Messages)
	case "max_tokens", "max_completion_tokens", "stream", "n":
		return nil // read by the proxy, clamped: rq.MaxOut, rq.Stream; n is 1 (Single)
	case "temperature":
		return decode(&c.Temperature)
	case "top_p":
		return decode(&c.TopP)
	case "presence_penalty":
		return decode(&c.Presence)
	case "frequency_penalty":
		return decode(&c.Frequency)
	case "seed":
		return decode(&c.Seed)
	case "stop":
		return c.readStop(raw)
	case "tools":
		return decode(&c.Tools)
	case "tool_choice":
		return c.readToolChoice(raw)
	case "parallel_tool_calls":
		return decode(&c.Parallel)
	case "response_format":
		return c.readResponseFormat(raw)
	case "reasoning_effort":
		if null {
			return nil
		}
		if err := decode(&c.ReasoningLevel); err != nil {
			return err
		}
		switch c.ReasoningLevel {
		case "none", "minimal", "low", "medium", "high":
			return nil
		}
		return invalid("reasoning_effort must be one of none, minimal, low, medium, high.")
	case "logprobs":
		var b *bool
		if err := decode(&b); err != nil || b == nil || !*b {
			return err
		}
		return invalid("logprobs is not supported on this route.")
	case "top_logprobs", "logit_bias", "modalities", "audio", "web_search_options", "functions", "function_call", "verbosity", "prediction":
		if null || string(raw) == "{}" || string(raw) == "[]" {
			return nil
		}
		return invalid("%s is not supported on this route.", name)
	}
	if ignoredFields[name] {
		return nil
	}
	return invalid("Unrecognized request argument supplied: %s.", name)
}

// fieldError names the member a value of the wrong type was found in.
func fieldError(name string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := name
		if te.Field != "" {
			field = name + "." + te.Field
		}
		return invalid("%s: expected a %s, got a JSON %s.", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	return invalid("%s is not valid.", name)
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "float"), strings.HasPrefix(goKind, "uint"):
		return "number"
	case goKind == "slice":
		return "array"
	case goKind == "struct", goKind == "map":
		return "object"
	case goKind == "bool":
		return "boolean"
	}
	return goKind
}

func (c *chatRequest) readStop(raw json.RawMessage) error {
	var one *string
	if json.Unmarshal(raw, &one) == nil {
		if one != nil && *one != "" {
			c.Stop = []string{*one}
		}
		return nil
	}
	if err := json.Unmarshal(raw, &c.Stop); err != nil {
		return invalid("stop must be a string or an array of strings.")
	}
	return nil
}

func (c *chatRequest) readToolChoice(raw json.RawMessage) error {
	var mode *string
	if json.Unmarshal(raw, &mode) == nil {
		if mode == nil {
			return nil
		}
		switch *mode {
		case "none", "auto", "required":
			c.ToolChoice = &toolChoice{Mode: *mode}
			return nil
		}
		return invalid("tool_choice must be none, auto, required or a function.")
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return invalid("tool_choice must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":…}}.")
	}
	c.ToolChoice = &toolChoice{Mode: "function", Name: obj.Function.Name}
	return nil
}

func (c *chatRequest) readResponseFormat(raw json.RawMessage) error {
	var rf *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		return fieldError("response_format", err)
	}
	switch {
	case rf == nil || rf.Type == "text":
	case rf.Type == "json_object":
		c.JSON = true
	case rf.Type == "json_schema" && rf.JSONSchema != nil:
		c.JSON = true
		if s := rf.JSONSchema.Schema; len(s) > 0 && string(s) != "null" {
			if s[0] != '{' {
				return invalid("response_format.json_schema.schema must be an object.")
			}
			c.Schema = s
		}
	default:
		return invalid("response_format.type must be text, json_object or json_schema (with json_schema).")
	}
	return nil
}

// contentParts reads a message's content: a string, an array of parts,
// or null (none).
func contentParts(raw json.RawMessage, at string) ([]chatPart, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []chatPart{{Type: "text", Text: s}}, nil
	}
	var parts []chatPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, invalid("%s must be a string or an array of content parts.", at)
	}
	for i, p := range parts {
		switch p.Type {
		case "text":
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, invalid("%s[%d].image_url.url is required.", at, i)
			}
		default:
			return nil, invalid("%s[%d].type %q is not supported on this route (text and image_url are).", at, i, p.Type)
		}
	}
	return parts, nil
}

// textOf joins the text parts of a content that may hold text only.
func textOf(raw json.RawMessage, at string) (string, error) {
	parts, err := contentParts(raw, at)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", invalid("%s[%d]: only text is accepted here.", at, i)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// dataURL is an image given inline: data:image/png;base64,….
type dataURL struct {
	MediaType, Data string
}

// readImage reads an image_url: a base64 data URL, or (remote) an http(s)
// URL. Anything else is refused by name.
func readImage(url, at string) (img dataURL, remote bool, err error) {
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return dataURL{}, true, nil
	}
	rest, ok := strings.CutPrefix(url, "data:")
	meta, data, ok2 := strings.Cut(rest, ",")
	mediaType, b64 := strings.CutSuffix(meta, ";base64")
	if !ok || !ok2 || !b64 || !strings.HasPrefix(mediaType, "image/") || !isBase64(data) {
		return dataURL{}, false, invalid("%s must be an https URL or a base64 data URL of an image (data:image/png;base64,…).", at)
	}
	return dataURL{MediaType: mediaType, Data: data}, false, nil
}

func isBase64(s string) bool {
	if s == "" || len(s)%4 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		case c == '=' && i >= len(s)-2:
		default:
			return false
		}
	}
	return true
}

// toolArguments reads a tool call's arguments: a JSON object ("" is {}).
func toolArguments(args, at string) (json.RawMessage, error) {
	if strings.TrimSpace(args) == "" {
		return json.RawMessage("{}"), nil
	}
	if !isJSONObject(args) {
		return nil, invalid("%s must be a JSON object.", at)
	}
	return json.RawMessage(args), nil
}

// isJSONObject reports whether s is one JSON object. It is checked, not
// decoded: decoding an object of many small members into a map took some
// ten times its size.
func isJSONObject(s string) bool {
	return strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{") && json.Valid([]byte(s))
}

// checkTools checks the declared functions.
func checkTools(tools []chatTool) error {
	for i, t := range tools {
		if t.Type != "function" {
			return invalid("tools[%d].type must be function.", i)
		}
		if t.Function.Name == "" {
			return invalid("tools[%d].function.name is required.", i)
		}
		if p := t.Function.Parameters; len(p) > 0 && string(p) != "null" && p[0] != '{' {
			return invalid("tools[%d].function.parameters must be an object.", i)
		}
	}
	return nil
}

// declareTools checks the declared functions and spells each as declare
// does, with its description when it has one (nil: none declared).
func declareTools(tools []chatTool, declare func(t chatTool) map[string]any) ([]any, error) {
	if err := checkTools(tools); err != nil {
		return nil, err
	}
	if len(tools) == 0 {
		return nil, nil
	}
	decls := make([]any, 0, len(tools))
	for _, t := range tools {
		d := declare(t)
		if t.Function.Description != "" {
			d["description"] = t.Function.Description
		}
		decls = append(decls, d)
	}
	return decls, nil
}

// The answer, in OpenAI's chat shape.

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *chatUsage   `json:"usage,omitempty"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      *chatMessageOut `json:"message,omitempty"`
	Delta        *chatOut        `json:"delta,omitempty"`
	Logprobs     *struct{}       `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// chatMessageOut is a whole answer's message. Content and refusal are
// always there, null when none, as in OpenAI's answers: clients test them
// against null (in JavaScript, a member left out is not null).
type chatMessageOut struct {
	Role             string        `json:"role"`
	Content          *string       `json:"content"`
	Refusal          *string       `json:"refusal"`
	ReasoningContent string        `json:"reasoning_content,omitempty"`
	ToolCalls        []chatOutTool `json:"tool_calls,omitempty"`
	Annotations      []struct{}    `json:"annotations"`
}

func newMessageOut() *chatMessageOut {
	return &chatMessageOut{Role: "assistant", Annotations: []struct{}{}}
}

// chatOut is a delta of a chunk.
type chatOut struct {
	Role             string        `json:"role,omitempty"`
	Content          *string       `json:"content,omitempty"`
	ReasoningContent string        `json:"reasoning_content,omitempty"`
	ToolCalls        []chatOutTool `json:"tool_calls,omitempty"`
	Refusal          *string       `json:"refusal,omitempty"`
}

type chatOutTool struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

func newChatUsage(u Usage) *chatUsage {
	return &chatUsage{PromptTokens: u.Input, CompletionTokens: u.Output, TotalTokens: u.Input + u.Output}
}

// reportedUsage is the usage to show: nil when the upstream reported
// none (a gateway that drops it). Zeros shown instead would be charged as
// reported; without usage the proxy charges its estimate, as on the
// native route.
func reportedUsage(u Usage, ok bool) *chatUsage {
	if !ok {
		return nil
	}
	return newChatUsage(u)
}

// nowUnix stamps translated answers.
func nowUnix() int64 { return time.Now().Unix() }

// wholeAnswer builds a chat.completion from what a native answer said.
func wholeAnswer(id, model, text, reasoning string, tools []chatOutTool, finish string, u *chatUsage) []byte {
	msg := newMessageOut()
	msg.ReasoningContent, msg.ToolCalls = reasoning, tools
	if text != "" || len(tools) == 0 {
		msg.Content = &text
	}
	return plainJSON(chatCompletion{ID: id, Object: "chat.completion", Created: nowUnix(), Model: model,
		Choices: []chatChoice{{Message: msg, FinishReason: &finish}}, Usage: u})
}

// chunks writes chat.completion.chunk events.
type chunks struct {
	id, model string
	created   int64
	out       []byte
	role      bool // the role has been sent
	tools     int  // tool calls started
}

func (c *chunks) event(v any) {
	c.out = append(c.out, "data: "...)
	c.out = append(c.out, plainJSON(v)...)
	c.out = append(c.out, "\n\n"...)
}

// delta sends one delta; finish may be "" (none yet).
func (c *chunks) delta(d chatOut, finish string) {
	if !c.role {
		d.Role, c.role = "assistant", true
	}
	ch := chatChoice{Delta: &d}
	if finish != "" {
		ch.FinishReason = &finish
	}
	c.event(chatCompletion{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model, Choices: []chatChoice{ch}})
}

func (c *chunks) text(s string) {
	if s != "" {
		c.delta(chatOut{Content: &s}, "")
	}
}

func (c *chunks) reasoning(s string) {
	if s != "" {
		c.delta(chatOut{ReasoningContent: s}, "")
	}
}

// toolStart opens a tool call; its arguments may follow in pieces.
func (c *chunks) toolStart(id, name, args string) {
	i := c.tools
	c.tools++
	t := chatOutTool{Index: &i, ID: id, Type: "function"}
	t.Function.Name, t.Function.Arguments = name, args
	c.delta(chatOut{ToolCalls: []chatOutTool{t}}, "")
}

func (c *chunks) toolArgs(s string) {
	if c.tools == 0 || s == "" {
		return
	}
	i := c.tools - 1
	t := chatOutTool{Index: &i}
	t.Function.Arguments = s
	c.delta(chatOut{ToolCalls: []chatOutTool{t}}, "")
}

// end sends the usage chunk (the proxy drops it when the client did not
// ask for it; none when the upstream reported none) and [DONE].
func (c *chunks) end(u *chatUsage) {
	if u != nil {
		c.event(chatCompletion{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model, Choices: []chatChoice{}, Usage: u})
	}
	c.out = append(c.out, "data: [DONE]\n\n"...)
}

func (c *chunks) error(status int, msg string) {
	c.event(openAIError(status, msg))
}

// openAIError is an upstream's error told in OpenAI's shape.
func openAIError(status int, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": openAIErrorType(status, ""), "code": nil, "param": nil}}
}

// translatedAnswerWeight is what translating a whole native answer
// allocates, at most, per byte of it: the answer read, its decoded
// values, the client's answer (7.2 times a text answer's size,
// measured: TestTranslatedAnswerWithinItsCost; answers of many small
// blocks cost more a byte, but the output limit keeps them small).
const translatedAnswerWeight = 12

// TranslatedAnswerCost is what translating the bytes p of a whole native
// answer may allocate, for the proxy's memory budget to weigh as the
// answer is read. U+2028 and U+2029, three bytes, are written as six
// (\u2028): each counts as three bytes more (an answer of them took 18
// times its size; one cut between two reads is counted as plain bytes).
func TranslatedAnswerCost(p []byte) int64 {
	n := int64(len(p)) + 3*int64(bytes.Count(p, lineSeparator)+bytes.Count(p, paragraphSeparator))
	return translatedAnswerWeight * n
}

// maxNative bounds the native answer (whole) or event held to translate.
const maxNative = 64 << 20

// translateError turns a native error answer into OpenAI's shape: the
// native message, else the body's text.
func translateError(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	msg := upstreamErrorMessage(body)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	setJSON(resp, MustJSON(openAIError(resp.StatusCode, msg)))
	return nil
}

// upstreamErrorMessage finds the message of a native error body
// (Anthropic's error.message, Google's error.message), else its text.
func upstreamErrorMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		if e.Error.Message != "" {
			return e.Error.Message
		}
		if e.Message != "" {
			return e.Message
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

func setJSON(resp *http.Response, body []byte) {
	resp.Header.Set("Content-Type", ContentJSON)
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.ContentLength = int64(len(body))
	resp.Body = io.NopCloser(bytes.NewReader(body))
}

// readNative reads a whole native answer, bounded.
func readNative(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxNative+1))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > maxNative {
		return nil, fmt.Errorf("the native answer is larger than %d MiB", maxNative>>20)
	}
	return body, nil
}

// readNativeJSON reads a whole native answer, bounded, into v; it returns
// the body too, for the usage readers. An answer that is not v's JSON is
// an error (a 502).
func readNativeJSON(resp *http.Response, v any) ([]byte, error) {
	body, err := readNative(resp)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, err
	}
	return body, nil
}

// nativeStream is the translated body of a native SSE stream: each native
// event is translated as it arrives, and nothing is held but the event
// being read and its translation.
type nativeStream struct {
	src   io.ReadCloser
	split framing.SSE
	// event translates one native event into c; it reports the end of
	// the answer (nothing after it is translated).
	event func(c *chunks, name, data []byte) bool
	// eof ends a stream whose body ended cleanly: it reports whether
	// that is a proper end (else the client is told it broke).
	eof   func(c *chunks) bool
	st    *StreamState // the native usage, read by event
	c     chunks
	done  bool
	err   error
	pos   int
	chunk []byte
}

// newNativeStream translates resp's stream; st is the native usage its
// event reads, given to the exchange through rq (a stream cut short is
// charged it).
func newNativeStream(resp *http.Response, rq *Request, st *StreamState, event func(*chunks, []byte, []byte) bool, eof func(*chunks) bool) {
	rq.Native = st
	s := &nativeStream{src: resp.Body, event: event, eof: eof, st: st,
		c: chunks{id: "chatcmpl-" + strconv.FormatInt(time.Now().UnixNano(), 36), model: rq.Model, created: nowUnix()}}
	resp.Body = s
	resp.Header.Set("Content-Type", ContentSSE)
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
}

// Read returns after each read of the native stream, with nothing (0,
// nil) when its events translate to nothing: the reader then sees the
// native stream's state (Request.Native) as it moves, such as the end of
// the answer's last block, which Claude tells before its usage.
func (s *nativeStream) Read(p []byte) (int, error) {
	if s.pos == len(s.c.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.c.out, s.pos = s.c.out[:0], 0
		if s.chunk == nil {
			s.chunk = make([]byte, 16<<10)
		}
		n, err := s.src.Read(s.chunk)
		if n > 0 {
			s.split.Feed(s.chunk[:n], s.emit)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			s.err = io.EOF
			if !s.done && !s.eof(&s.c) {
				s.err = io.ErrUnexpectedEOF // the proxy tells the client
			}
		default:
			s.err = err
		}
		if len(s.c.out) == 0 {
			return 0, s.err
		}
	}
	n := copy(p, s.c.out[s.pos:])
	s.pos += n
	return n, nil
}

func (s *nativeStream) emit(_, name, data []byte) {
	if !s.done && string(name) == framing.Cut {
		// Its usage (and its end) cannot be read: not the last count.
		s.st.HaveOut, s.st.Unread = false, true
		return
	}
	if s.done || len(data) == 0 {
		return
	}
	s.done = s.event(&s.c, name, data)
}

func (s *nativeStream) Close() error { return s.src.Close() }
