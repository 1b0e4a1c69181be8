package proxy

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// /openai-image serves OpenAI's image API and, for chat-only front ends,
// a chat route whose last "Image:" message is the prompt, as the
// original does; both count in OpenAI's image families.
func TestOpenAIImageMount(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "dall-e,gpt-image,gpt4o", "IMAGE_MODEL_RATE_LIMIT": "0"})
	token := e.user(users.Patch{})
	up := e.fake(upstreamfake.OpenAI)
	client := openai.NewClient(option.WithBaseURL(e.srv.URL+"/proxy/openai-image/v1"), option.WithAPIKey(token), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	img, err := client.Images.Generate(ctx, openai.ImageGenerateParams{Model: "gpt-image-1", Prompt: "a cat"})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Data) != 1 || img.Data[0].B64JSON == "" {
		t.Errorf("images %s", img.RawJSON())
	}
	if last := up.Last(t); last.Path != "/v1/images/generations" || last.Header.Get("Authorization") != "Bearer "+openAIKey {
		t.Errorf("upstream saw %s with %q", last.Path, last.Header.Get("Authorization"))
	}
	if u := e.get(token); u.TokenCounts["gpt-image"] != 18 {
		t.Errorf("charged %v", u.TokenCounts)
	}

	chat := func(model, text string) (*openai.ChatCompletion, error) {
		return client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You draw."), openai.UserMessage("ignored"), openai.UserMessage(text)}})
	}
	resp, err := chat("gpt-image-1", `Alice: "Image: a red fox in snow"`)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; !strings.HasPrefix(got, "![](data:image/png;base64,iVBOR") || !strings.HasSuffix(got, ")") {
		t.Errorf("content %q", got)
	}
	if resp.Choices[0].Message.JSON.Refusal.Raw() != "null" {
		t.Errorf("no refusal: null, as OpenAI's messages have: %s", resp.RawJSON())
	}
	sent := up.Last(t).JSON()
	if up.Last(t).Path != "/v1/images/generations" || sent["prompt"] != `a red fox in snow"` || sent["model"] != "gpt-image-1" || sent["response_format"] != nil {
		t.Errorf("native request %v", sent)
	}
	if u := e.get(token); u.TokenCounts["gpt-image"] != 36 || resp.Usage.TotalTokens != 18 {
		t.Errorf("charged %v, usage %+v", u.TokenCounts, resp.Usage)
	}

	// A chat model named by the front end draws with DALL-E 3, counted
	// in its family.
	if _, err := chat("gpt-4o", "Image: a boat"); err != nil {
		t.Fatal(err)
	}
	if sent := up.Last(t).JSON(); sent["model"] != "dall-e-3" || sent["response_format"] != "url" {
		t.Errorf("native request %v", sent)
	}
	if u := e.get(token); u.TokenCounts["dall-e"] <= 0 || u.TokenCounts["gpt4o"] != 0 {
		t.Errorf("charged %v", u.TokenCounts)
	}

	before := up.Count()
	_, err = chat("dall-e-3", "a boat, please")
	mustContain(t, "refusal", asAPIError(t, err, http.StatusBadRequest).Message, "Image:")
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "dall-e-3",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Image: a boat")}})
	for stream.Next() {
	}
	mustContain(t, "refusal", asAPIError(t, stream.Err(), http.StatusBadRequest).Message, "stream")
	if up.Count() != before {
		t.Errorf("refused requests reached the upstream %d times", up.Count()-before)
	}

	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 0 {
		t.Errorf("chat models listed on the image mount: %s", page.RawJSON())
	}

	// The service info lists the mount with its image families only.
	a := e.do(call{method: http.MethodGet, path: "/proxy/"})
	found := false
	for _, p := range a.json(t)["providers"].([]any) {
		if pm := asMap(p); pm["provider"] == "openai-image" {
			found = true
			if got := string(mustJSON(pm["families"])); got != `["gpt-image","dall-e"]` && got != `["dall-e","gpt-image"]` {
				t.Errorf("image mount families %s", got)
			}
		}
	}
	if !found {
		t.Errorf("the image mount is not listed: %s", a.body)
	}
	e.neverSaw(token)
}

// OpenAI's image API draws with gpt-image-1 when the body names no model
// but passes a gpt-image-only parameter: the model the request is counted
// as (dall-e-2, DefaultModel) is the one written into the forwarded body,
// so that a user allowed only dall-e never reaches gpt-image.
func TestImageDefaultModelIsForwarded(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "dall-e", "IMAGE_MODEL_RATE_LIMIT": "0"})
	tk := e.user(users.Patch{})
	for _, body := range []string{
		`{"prompt":"a red fox","output_format":"webp","background":"transparent","quality":"high"}`,
		`{"model":null,"prompt":"a red fox","output_format":"webp"}`,
		`{"model":"","prompt":"a red fox","output_format":"webp"}`,
	} {
		a := e.do(call{path: "/proxy/openai/v1/images/generations", header: bearerH(tk), body: body})
		if a.status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", body, a.status, a.body)
		}
		if m := e.fake(upstreamfake.OpenAI).Last(t).JSON(); m["model"] != "dall-e-2" || m["prompt"] != "a red fox" {
			t.Errorf("%s forwarded as %v; want model dall-e-2, counted %v", body, m, e.get(tk).TokenCounts)
		}
	}
	if u := e.get(tk); u.TokenCounts["dall-e"] <= 0 || len(u.TokenCounts) != 1 {
		t.Errorf("counted %v; want dall-e only", u.TokenCounts)
	}
}

// Streamed images (gpt-image's partial_image and completed events) carry
// their usage in events the image format does not read: a stream is
// refused on both image routes before anything is sent, not relayed
// charged its prompt alone.
func TestImageStreamsRefused(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "dall-e,gpt-image", "IMAGE_MODEL_RATE_LIMIT": "0"})
	tk := e.user(users.Patch{})
	for _, path := range []string{"/proxy/openai/v1/images/generations", "/proxy/openai-image/v1/images/generations"} {
		a := e.do(call{path: path, header: bearerH(tk), body: `{"model":"gpt-image-1","prompt":"a red fox","stream":true,"partial_images":2}`})
		if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "stream") {
			t.Errorf("%s: %d %.300s; want 400 naming stream", path, a.status, a.body)
		}
	}
	if n := e.fake(upstreamfake.OpenAI).Count(); n != 0 {
		t.Errorf("the upstream was asked %d times", n)
	}
	if u := e.get(tk); len(u.TokenCounts) != 0 {
		t.Errorf("charged %v", u.TokenCounts)
	}
}

// DALL-E's answers report no usage: each image is charged its price in
// tokens of the image family (100,000 a dollar, as the original), by
// model, size, quality and n, and the quota check counts that price
// before anything is sent. Charged only the prompt's estimate, a tiny
// quota drew images without end.
func TestDallEImagesChargedAtTheirPrice(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "dall-e,gpt-image,gpt4o", "IMAGE_MODEL_RATE_LIMIT": "0", "TOKEN_QUOTA_DALL_E": "20000"})
	up := e.fake(upstreamfake.OpenAI)
	tk := e.user(users.Patch{})
	spent := int64(0)
	for _, tc := range []struct {
		path, body string
		price      int64
	}{
		{"/proxy/openai/v1/images/generations", `{"model":"dall-e-3","prompt":"a red fox","quality":"hd","size":"1792x1024"}`, 12000},
		{"/proxy/openai/v1/images/generations", `{"model":"dall-e-2","prompt":"a red fox","n":3,"size":"256x256"}`, 4800},
		{"/proxy/openai/v1/images/generations", `{"prompt":"a red fox"}`, 2000}, // dall-e-2, 1024x1024
	} {
		a := e.do(call{path: tc.path, header: bearerH(tk), body: tc.body})
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.body, a.status, a.body)
		}
		got := e.get(tk).TokenCounts["dall-e"] - spent
		if got < tc.price || got > tc.price+10 { // the price and the prompt's few tokens
			t.Errorf("%s: charged %d, want %d and the prompt", tc.body, got, tc.price)
		}
		spent += got
	}
	// 18,800 and some of 20,000 used: a standard DALL-E 3 image (4,000)
	// does not fit, and is not sent.
	before := up.Count()
	if a := e.do(call{path: "/proxy/openai/v1/images/generations", header: bearerH(tk), body: `{"model":"dall-e-3","prompt":"a red fox"}`}); a.status == http.StatusOK || up.Count() != before {
		t.Errorf("over the quota: %d, upstream called %d times", a.status, up.Count()-before)
	}
	// The chat route of the image mount draws one standard DALL-E 3 image.
	tk = e.user(users.Patch{})
	a := e.do(call{path: "/proxy/openai-image/v1/chat/completions", header: bearerH(tk),
		body: `{"model":"gpt-4o","messages":[{"role":"user","content":"Image: a boat"}]}`})
	if got := e.get(tk).TokenCounts["dall-e"]; a.status != http.StatusOK || got < 4000 || got > 4010 {
		t.Errorf("image chat: %d, charged %d, want 4000 and the prompt", a.status, got)
	}
	// gpt-image reports its usage, which is what it is charged.
	tk = e.user(users.Patch{})
	if a := e.do(call{path: "/proxy/openai/v1/images/generations", header: bearerH(tk), body: `{"model":"gpt-image-1","prompt":"a red fox","n":2}`}); a.status != http.StatusOK || e.get(tk).TokenCounts["gpt-image"] != 18 {
		t.Errorf("gpt-image: %d, charged %v", a.status, e.get(tk).TokenCounts)
	}
}

// A gpt-image request is reserved the output tokens its images are billed
// (n times the table's count for its size and quality), not the text
// clamp: with the clamp (1,024) a user with 10,000 tokens left could ask
// for ten large images of high quality and be charged 62,400.
func TestGPTImageReservesItsImages(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "gpt-image", "IMAGE_MODEL_RATE_LIMIT": "0", "TOKEN_QUOTA_GPT_IMAGE": "10000"})
	up := e.fake(upstreamfake.OpenAI)
	up.Set(upstreamfake.Behavior{InputTokens: 10, OutputTokens: 62400})
	tk := e.user(users.Patch{})
	a := e.do(call{path: "/proxy/openai/v1/images/generations", header: bearerH(tk),
		body: `{"model":"gpt-image-1","prompt":"a red fox","n":10,"quality":"high","size":"1024x1536"}`})
	if a.status != http.StatusTooManyRequests || up.Count() != 0 {
		t.Fatalf("ten large images on 10,000 tokens: %d, upstream called %d times, charged %v; want 429 before the upstream",
			a.status, up.Count(), e.get(tk).TokenCounts)
	}
	// Two low-quality squares (544) fit, and are charged their usage.
	up.Set(upstreamfake.Behavior{InputTokens: 10, OutputTokens: 544})
	a = e.do(call{path: "/proxy/openai/v1/images/generations", header: bearerH(tk),
		body: `{"model":"gpt-image-1","prompt":"a red fox","n":2,"quality":"low","size":"1024x1024"}`})
	if got := e.get(tk).TokenCounts["gpt-image"]; a.status != http.StatusOK || got != 554 {
		t.Errorf("two small images: %d %s, charged %d, want 200 and 554", a.status, a.body, got)
	}
	// Quality auto may be high: three images (18,720) do not fit.
	before := up.Count()
	a = e.do(call{path: "/proxy/openai/v1/images/generations", header: bearerH(tk), body: `{"model":"gpt-image-1","prompt":"a red fox","n":3}`})
	if a.status != http.StatusTooManyRequests || up.Count() != before {
		t.Errorf("three images of quality auto: %d, upstream called %d times; want 429", a.status, up.Count()-before)
	}
}

// With only dall-e allowed, the GPT Image alias chatgpt-image-latest is
// gpt-image's: refused, not forwarded and counted as dall-e.
func TestGPTImageAliasIsGPTImage(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "dall-e", "IMAGE_MODEL_RATE_LIMIT": "0"})
	tk := e.user(users.Patch{})
	for _, path := range []string{"/proxy/openai/v1/images/generations", "/proxy/openai-image/v1/images/generations"} {
		a := e.do(call{path: path, header: bearerH(tk), body: `{"model":"chatgpt-image-latest","prompt":"a red fox","quality":"high"}`})
		if a.status != http.StatusForbidden {
			sent := e.fake(upstreamfake.OpenAI).Last(t).JSON()
			t.Errorf("%s: status %d, upstream was sent model %v, counted %v; want 403 (gpt-image not allowed)", path, a.status, sent["model"], e.get(tk).TokenCounts)
		}
	}
}

// With the default allow-list (every text family, no image family),
// Gemini's image-generation models are refused: they are image
// generation, though named on a text route; so are they under their code
// names (nano-banana-pro-preview is Gemini 3 Pro Image), which name no
// "image" but "pro": counted as gemini-pro, a user could make images.
func TestGeminiImageModelsAreImages(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	for _, model := range []string{"gemini-2.5-flash-image", "nano-banana-pro-preview"} {
		a := e.do(call{path: "/proxy/google-ai/v1beta/models/" + model + ":generateContent", header: map[string]string{"x-goog-api-key": tk},
			body: `{"contents":[{"role":"user","parts":[{"text":"draw a red fox"}]}],"generationConfig":{"responseModalities":["IMAGE"]}}`})
		if a.status != http.StatusForbidden {
			t.Errorf("%s: status %d, counted %v; want 403 (image families are not allowed by default)", model, a.status, e.get(tk).TokenCounts)
		}
	}
}
