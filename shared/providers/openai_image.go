package providers

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"tollgate.dev/tollgate/shared/models"
)

// OpenAI images on a mount of their own, as the original serves them: the
// image API itself, and a chat route for chat-only front ends whose last
// user message ("Image: a red fox") becomes the prompt and whose answer
// shows the images as Markdown. It uses OpenAI's keys (one pool), base
// URL and error shape, and counts in OpenAI's image families.
var openAIImage = newProvider(openAIImageProvider())

func openAIImageProvider() *Provider {
	p := openAIProvider()
	return &Provider{
		ID: models.OpenAIImage, Name: "OpenAI images", Env: p.Env,
		Routes: []Route{
			{Method: http.MethodGet, Pattern: "/v1/models", Format: List, Translate: imageModels},
			{Method: http.MethodPost, Pattern: "/v1/images/generations", Format: OpenAIImages},
			{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: ImageChat, Translate: imageChat},
		},
		SDKPath: p.SDKPath, SetKey: p.SetKey, Headers: p.Headers,
		ErrorBody: p.ErrorBody, KeyDead: p.KeyDead, CheckPath: p.CheckPath,
	}
}

// ImageChat is OpenAI chat on the image mount: an image request, limited
// and counted as one; it is never streamed.
var ImageChat = OpenAIChat.variant(func(f *Format) {
	f.Name, f.Kind, f.AskUsage, f.Thinking, f.DefaultModel = "openai-image-chat", models.Image, nil, nil, "dall-e-3"
	f.AddMaxTokens = nil // an image has no output limit
	f.Price = dallEPrice // of the native request
})

// imageModels keeps the image models of OpenAI's list.
var imageModels = &Translation{Response: func(resp *http.Response, _ *Request) error {
	return editList(resp, func(body []byte) ([]byte, error) {
		keep := []json.RawMessage{}
		for _, m := range gjson.GetBytes(body, "data").Array() {
			if models.ImageFamilyOf(models.OpenAI, m.Get("id").String()) == models.FamilyOf(models.OpenAI, m.Get("id").String()) {
				keep = append(keep, json.RawMessage(m.Raw))
			}
		}
		return sjson.SetBytes(body, "data", keep)
	})
}}

var imageChat = &Translation{
	Native:    func(string, bool) (string, string) { return "/v1/images/generations", "" },
	Request:   imageChatRequest,
	Response:  imageChatResponse,
	ErrorBody: openAIErrorBody,
}

// imageChatRequest takes the prompt from the last user message, after
// "Image:" (front ends prefix names or quotes), as the original does.
func imageChatRequest(rq *Request) ([]byte, error) {
	if rq.Stream {
		return nil, invalid("stream: image generation answers are not streamed.")
	}
	var top struct {
		Messages json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(rq.Body, &top); err != nil {
		return nil, fieldError("request", err)
	}
	if err := reserve(rq, top.Messages, nil); err != nil {
		return nil, err
	}
	var in struct{ Messages []chatMessage }
	if len(top.Messages) > 0 {
		if err := json.Unmarshal(top.Messages, &in.Messages); err != nil {
			return nil, fieldError("messages", err)
		}
	}
	var prompt string
	found := false
	for i := len(in.Messages) - 1; i >= 0 && !found; i-- {
		if in.Messages[i].Role == "user" {
			text, err := textOf(in.Messages[i].Content, "messages["+itoa(i)+"].content")
			if err != nil {
				return nil, err
			}
			prompt, found = text, true
		}
	}
	at := strings.Index(strings.ToLower(prompt), "image:")
	if at < 0 || strings.TrimSpace(prompt[at+6:]) == "" {
		return nil, invalid("Start your last message with 'Image:' followed by a description of the image you want.")
	}
	if models.ImageFamilyOf(models.OpenAI, rq.Model) != models.FamilyOf(models.OpenAI, rq.Model) {
		rq.Model = "dall-e-3" // a chat model named by the front end
	}
	out := map[string]any{"model": rq.Model, "prompt": strings.TrimSpace(prompt[at+6:]), "n": 1, "size": "1024x1024"}
	if strings.HasPrefix(rq.Model, "dall-e") {
		out["response_format"] = "url"
	}
	return plainJSON(out), nil
}

// imageChatResponse shows the images as Markdown in a chat completion;
// usage where the image API reports it (gpt-image), else none (the
// proxy then estimates, as for the image API itself).
func imageChatResponse(resp *http.Response, rq *Request) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil // OpenAI's error shape already
	}
	var a struct {
		Data []struct {
			URL           string `json:"url"`
			B64JSON       string `json:"b64_json"`
			RevisedPrompt string `json:"revised_prompt"`
		} `json:"data"`
	}
	body, err := readNativeJSON(resp, &a)
	if err != nil {
		return err
	}
	var parts []string
	for _, d := range a.Data {
		alt := strings.NewReplacer("[", "(", "]", ")", "\n", " ").Replace(d.RevisedPrompt)
		src := d.URL
		if d.B64JSON != "" {
			src = "data:image/png;base64," + d.B64JSON
		}
		parts = append(parts, "!["+alt+"]("+src+")")
	}
	text, stop := strings.Join(parts, "\n\n"), "stop"
	msg := newMessageOut()
	msg.Content = &text
	out := chatCompletion{ID: "chatcmpl-image", Object: "chat.completion", Created: nowUnix(), Model: rq.Model,
		Choices: []chatChoice{{Message: msg, FinishReason: &stop}}}
	if u, ok := openAIUsage(body); ok {
		out.Usage = newChatUsage(u)
	}
	setJSON(resp, MustJSON(out))
	return nil
}
