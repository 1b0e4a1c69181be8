package providers

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// GoogleChat serves OpenAI chat completions from Gemini's generateContent
// API of the given version (v1beta), on every mount that speaks it
// (Google AI, Vertex's Gemini): a route line
//
//	{Method: "POST", Pattern: "/v1/chat/completions", Format: OpenAIChat, Translate: GoogleChat("v1beta")}
//
// Streams ask for SSE (alt=sse).
func GoogleChat(version string) *Translation {
	return &Translation{
		Native: func(model string, stream bool) (string, string) {
			base := "/" + version + "/models/" + url.PathEscape(model)
			if stream {
				return base + ":streamGenerateContent", "alt=sse"
			}
			return base + ":generateContent", ""
		},
		Request:   googleChatRequest,
		Response:  googleChatResponse,
		ErrorBody: openAIErrorBody,
	}
}

// googleThinking are the thinking budgets of reasoning_effort levels.
var googleThinking = map[string]int64{"none": 0, "minimal": 512, "low": 2048, "medium": 8192, "high": 24576}

// googleModel checks a model named in the body, which goes into the
// native path: a plain name (models/ prefix allowed), nothing that could
// reach another route.
func googleModel(model string) (string, error) {
	m := strings.TrimPrefix(model, "models/")
	if m == "" {
		return "", invalid("model is required.")
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '-' && c != '.' && c != '_') {
			return "", invalid("model %q is not a Gemini model name (a letter or digit, then letters, digits, '-', '.', '_').", model)
		}
	}
	return m, nil
}

// googleContent is a turn as Gemini takes it: its blocks are parts.
type googleContent struct {
	Role   string `json:"role,omitempty"`
	Blocks []any  `json:"parts"`
}

// googleDialect spells parts as Gemini does: the model's turns are
// "model"'s, a tool result is a functionResponse named after the call it
// answers.
var googleDialect = &dialect{
	modelRole: "model",
	text:      func(text string) any { return map[string]any{"text": text} },
	image: func(_ string, img dataURL, remote bool, at string) (any, error) {
		if remote {
			return nil, invalid("%s.image_url.url: Gemini cannot fetch image URLs; send the image as a base64 data URL.", at)
		}
		return map[string]any{"inlineData": map[string]any{"mimeType": img.MediaType, "data": img.Data}}, nil
	},
	toolCall: func(_, name string, args json.RawMessage) any {
		return map[string]any{"functionCall": map[string]any{"name": name, "args": args}}
	},
	toolResult: func(_, name, text string) any {
		var response any = map[string]any{"content": text}
		if isJSONObject(text) {
			response = json.RawMessage(text)
		}
		return map[string]any{"functionResponse": map[string]any{"name": name, "response": response}}
	},
}

func googleChatRequest(rq *Request) ([]byte, error) {
	c, err := readChatRequest(rq)
	if err != nil {
		return nil, err
	}
	if rq.Model, err = googleModel(rq.Model); err != nil {
		return nil, err
	}
	system, contents, err := googleContents(c.Messages)
	if err != nil {
		return nil, err
	}
	if googleSignsCalls(rq.Model) {
		signCallsSentBack(contents)
	}
	out := map[string]any{"contents": contents}
	if len(system) > 0 {
		out["systemInstruction"] = googleContent{Blocks: system}
	}
	gen, err := googleGeneration(c)
	if err != nil {
		return nil, err
	}
	if len(gen) > 0 {
		out["generationConfig"] = gen
	}
	if err := googleTools(c, out); err != nil {
		return nil, err
	}
	return plainJSON(out), nil
}

func googleGeneration(c *chatRequest) (map[string]any, error) {
	gen := map[string]any{}
	if c.MaxTokens > 0 {
		gen["maxOutputTokens"] = c.MaxTokens
	}
	if t := c.Temperature; t != nil {
		if *t < 0 || *t > 2 {
			return nil, invalid("temperature must be between 0 and 2.")
		}
		gen["temperature"] = *t
	}
	if p := c.TopP; p != nil {
		if *p < 0 || *p > 1 {
			return nil, invalid("top_p must be between 0 and 1.")
		}
		gen["topP"] = *p
	}
	if len(c.Stop) > 0 {
		gen["stopSequences"] = c.Stop
	}
	if v := c.Presence; v != nil {
		gen["presencePenalty"] = *v
	}
	if v := c.Frequency; v != nil {
		gen["frequencyPenalty"] = *v
	}
	if c.Seed != nil {
		gen["seed"] = *c.Seed
	}
	if c.JSON {
		gen["responseMimeType"] = "application/json"
		if c.Schema != nil {
			gen["responseJsonSchema"] = c.Schema
		}
	}
	if budget, ok := googleThinking[c.ReasoningLevel]; ok {
		gen["thinkingConfig"] = map[string]any{"thinkingBudget": budget, "includeThoughts": budget > 0}
	}
	return gen, nil
}

func googleTools(c *chatRequest, out map[string]any) error {
	decls, err := declareTools(c.Tools, func(t chatTool) map[string]any {
		d := map[string]any{"name": t.Function.Name}
		if p := t.Function.Parameters; len(p) > 0 && string(p) != "null" {
			d["parametersJsonSchema"] = p
		}
		return d
	})
	if err != nil {
		return err
	}
	if decls != nil {
		out["tools"] = []any{map[string]any{"functionDeclarations": decls}}
	}
	if tc := c.ToolChoice; tc != nil {
		if len(c.Tools) == 0 {
			return invalid("tool_choice needs tools.")
		}
		cfg := map[string]any{}
		switch tc.Mode {
		case "none":
			cfg["mode"] = "NONE"
		case "auto":
			cfg["mode"] = "AUTO"
		case "required":
			cfg["mode"] = "ANY"
		case "function":
			cfg["mode"], cfg["allowedFunctionNames"] = "ANY", []string{tc.Name}
		}
		out["toolConfig"] = map[string]any{"functionCallingConfig": cfg}
	}
	return nil
}

// googleContents turns OpenAI messages into the system instruction and
// contents (see dialect.turns).
func googleContents(msgs []chatMessage) (system []any, contents []googleContent, err error) {
	system, turns, err := googleDialect.turns(msgs)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range turns {
		contents = append(contents, googleContent(t))
	}
	return system, contents, nil
}

// skipSignature is the thought signature Google documents for a function
// call the model did not sign in this conversation
// (https://ai.google.dev/gemini-api/docs/thought-signatures).
const skipSignature = "skip_thought_signature_validator"

// googleSignsCalls reports Gemini 3 and later models (gemini-N…, N ≥ 3):
// they sign their function calls and refuse a call of the turn in
// progress sent back without its signature.
func googleSignsCalls(model string) bool {
	v, ok := strings.CutPrefix(model, "gemini-")
	if !ok {
		return false
	}
	major, digits := 0, 0
	for ; digits < len(v) && digits < 4 && v[digits] >= '0' && v[digits] <= '9'; digits++ {
		major = major*10 + int(v[digits]-'0')
	}
	return digits > 0 && major >= 3
}

// signCallsSentBack gives the function calls sent back the placeholder
// signature: an OpenAI client keeps no signature (its messages have no
// place for one), and without one Gemini 3 refuses the turn that sends a
// tool's result back.
func signCallsSentBack(contents []googleContent) {
	for _, c := range contents {
		for _, p := range c.Blocks {
			if part, ok := p.(map[string]any); ok && part["functionCall"] != nil {
				part["thoughtSignature"] = skipSignature
			}
		}
	}
}

// googleFinish maps finish reasons to OpenAI's.
func googleFinish(reason string, tools bool) string {
	switch reason {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY":
		return "content_filter"
	case "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL":
		return "stop"
	}
	if tools {
		return "tool_calls"
	}
	return "stop"
}

type googleAnswer struct {
	Candidates []struct {
		Content struct {
			Parts []struct {
				Text         string `json:"text"`
				Thought      bool   `json:"thought"`
				FunctionCall *struct {
					ID   string          `json:"id"`
					Name string          `json:"name"`
					Args json.RawMessage `json:"args"`
				} `json:"functionCall"`
			} `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	ModelVersion string `json:"modelVersion"`
	ResponseID   string `json:"responseId"`
	Error        *struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
	} `json:"error"`
}

// read reads an answer's first candidate: text, thoughts, calls (calls
// made before in its stream: the answer calls tools if any), and its
// finish reason ("" when not finished).
func (a *googleAnswer) read(calls int) (text, thoughts string, tools []chatOutTool, finish string) {
	if len(a.Candidates) == 0 {
		if a.PromptFeedback.BlockReason != "" {
			return "", "", nil, "content_filter"
		}
		return "", "", nil, ""
	}
	cand := a.Candidates[0]
	var tb, th strings.Builder
	for _, p := range cand.Content.Parts {
		switch {
		case p.FunctionCall != nil:
			id := p.FunctionCall.ID
			if id == "" {
				// Unique, as OpenAI's are: clients match results to calls
				// by id across the turns of a conversation.
				id = "call_" + rand.Text()
			}
			args := string(p.FunctionCall.Args)
			if args == "" || args == "null" {
				args = "{}"
			}
			tools = append(tools, outTool(id, p.FunctionCall.Name, args))
		case p.Thought:
			th.WriteString(p.Text)
		default:
			tb.WriteString(p.Text)
		}
	}
	if cand.FinishReason != "" {
		finish = googleFinish(cand.FinishReason, calls+len(tools) > 0)
	}
	return tb.String(), th.String(), tools, finish
}

func googleChatResponse(resp *http.Response, rq *Request) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return translateError(resp)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), ContentSSE) {
		st := new(StreamState)
		event, eof := googleChatStream(st)
		newNativeStream(resp, rq, st, event, eof)
		return nil
	}
	var a googleAnswer
	body, err := readNativeJSON(resp, &a)
	if err != nil {
		return err
	}
	text, thoughts, tools, finish := a.read(0)
	if finish == "" {
		finish = "stop"
	}
	model := a.ModelVersion
	if model == "" {
		model = rq.Model
	}
	id := "chatcmpl-" + a.ResponseID
	setJSON(resp, wholeAnswer(id, model, text, thoughts, tools, finish, reportedUsage(googleUsage(body))))
	return nil
}

// googleChatStream translates Gemini stream chunks as they come; the
// chunk that finishes the answer with its complete usage ends it, else
// the clean end of the body after a finishing chunk does (Gemini streams
// have no end event); a body that ends before any is a stream cut short.
// A finishing chunk has a finish reason, or no candidate at all and the
// reason the prompt was blocked. The usage is read into st as for native
// streams.
func googleChatStream(st *StreamState) (event func(c *chunks, name, data []byte) bool, eof func(c *chunks) bool) {
	finished := false
	eof = func(c *chunks) bool {
		if !finished {
			return false // no chunk finished the answer: it was cut short
		}
		// The usage of the finishing chunk is complete, candidates or not
		// (a blocked prompt, an answer all thinking).
		c.end(reportedUsage(st.U, st.HaveIn))
		return true
	}
	event = func(c *chunks, name, data []byte) bool {
		googleEvent(st, name, data)
		var a googleAnswer
		if json.Unmarshal(data, &a) != nil {
			return false // not a chunk: skipped
		}
		if a.Error != nil {
			c.error(a.Error.Code, a.Error.Message)
			return true
		}
		if a.ModelVersion != "" {
			c.model = a.ModelVersion
		}
		text, thoughts, tools, finish := a.read(c.tools)
		c.reasoning(thoughts)
		c.text(text)
		for _, t := range tools {
			c.toolStart(t.ID, t.Function.Name, t.Function.Arguments)
		}
		if !c.role {
			c.delta(chatOut{Content: new(string)}, "")
		}
		if finish != "" {
			c.delta(chatOut{}, finish)
			finished = true
		}
		if st.Done {
			c.end(reportedUsage(st.U, true))
			return true
		}
		return false
	}
	return event, eof
}
