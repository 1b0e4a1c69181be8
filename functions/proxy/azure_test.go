package proxy

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
)

// azureCred is an AZURE_CREDENTIALS entry for a deployment of the fake.
func azureCred(resource, deployment string) string {
	return resource + ":" + deployment + ":" + upstreamfake.AzureResources[resource].Key
}

// newAzureEnv is newEnv with the Azure fake serving AZURE_CREDENTIALS
// (default: the east resource's gpt-4o deployment).
func newAzureEnv(t *testing.T, vars map[string]string) (*env, *upstreamfake.Fake) {
	t.Helper()
	az := upstreamfake.Start(t, upstreamfake.Azure)
	all := map[string]string{
		"AZURE_CREDENTIALS":     azureCred("tollgate-east", "prod-4o"),
		"AZURE_OPENAI_BASE_URL": az.URL + "/{resource}",
	}
	for k, v := range vars {
		all[k] = v
	}
	e := newEnv(t, all)
	e.fakes[upstreamfake.Azure] = az
	return e, az
}

func azureClient(e *env, token string) *openai.Client {
	c := openai.NewClient(
		option.WithBaseURL(e.srv.URL+"/proxy/azure/openai/v1"),
		option.WithAPIKey(token),
		option.WithMaxRetries(0),
	)
	return &c
}

// The official OpenAI SDK talks to Azure deployments through the mount:
// the deployment's path, api-version and api-key upstream, the user's
// token never; exact charges in the family of the model that answered,
// whatever model the request named.
func TestAzureSDK(t *testing.T) {
	e, up := newAzureEnv(t, nil)
	token := e.user(users.Patch{})
	client := azureClient(e, token)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// The deployment runs gpt-4o; the request names another model.
	params := openai.ChatCompletionNewParams{
		Model:     "gpt-35-turbo",
		MaxTokens: openai.Int(5000),
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	}

	t.Run("non-streamed", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Choices[0].Message.Content; got != "Hello from the fake upstream!" {
			t.Errorf("content %q", got)
		}
		if resp.Model != "gpt-4o-2024-08-06" || resp.Usage.TotalTokens != 18 {
			t.Errorf("answer model %q usage %+v", resp.Model, resp.Usage)
		}
		last := up.Last(t)
		if last.Path != "/tollgate-east/openai/deployments/prod-4o/chat/completions" {
			t.Errorf("upstream path %s", last.Path)
		}
		if v := last.Query.Get("api-version"); v != "2025-04-01-preview" {
			t.Errorf("api-version %q", v)
		}
		if last.Header.Get("Api-Key") != upstreamfake.AzureResources["tollgate-east"].Key || last.Header.Get("Authorization") != "" {
			t.Errorf("upstream auth: api-key %q, Authorization %q", last.Header.Get("Api-Key"), last.Header.Get("Authorization"))
		}
		if got := last.JSON()["max_tokens"]; got != float64(1024) {
			t.Errorf("max_tokens upstream %v, want the MAX_OUTPUT_TOKENS_AZURE clamp 1024", got)
		}
		u := e.get(token)
		if u.PromptCount != 1 || u.TokenCounts["azure-gpt4o"] != 18 || u.TokenCounts["azure-turbo"] != 0 {
			t.Errorf("charged: promptCount %d, counts %v; want 1 and azure-gpt4o=18", u.PromptCount, u.TokenCounts)
		}
		e.logs.waitLines(t, `"family":"azure-gpt4o"`, 1)
	})

	t.Run("streamed", func(t *testing.T) {
		hold := make(chan struct{})
		up.Set(upstreamfake.Behavior{HoldAfterFirst: hold, InputTokens: 20, OutputTokens: 9})
		defer up.Set(upstreamfake.Behavior{})
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		sawUsage, sawFilterChunk, released := false, false, false
		for stream.Next() {
			chunk := stream.Current()
			if len(chunk.Choices) == 0 && chunk.JSON.Usage.Valid() {
				sawUsage = true
			}
			if len(chunk.Choices) == 0 && chunk.Model == "" {
				sawFilterChunk = true // Azure's first chunk reaches the client as sent
			}
			for _, c := range chunk.Choices {
				text.WriteString(c.Delta.Content)
			}
			if !released && text.Len() > 0 {
				if up.InFlight() != 1 {
					t.Errorf("upstream in flight %d while the first chunk was read", up.InFlight())
				}
				close(hold)
				released = true
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if !released || text.String() != "Hello from the fake upstream!" {
			t.Errorf("streamed text %q", text.String())
		}
		if sawUsage || !sawFilterChunk {
			t.Errorf("usage chunk relayed %v (the client did not ask), filter chunk relayed %v", sawUsage, sawFilterChunk)
		}
		if dig(up.Last(t).JSON(), "stream_options", "include_usage") != true {
			t.Error("upstream request did not ask for usage")
		}
		u := e.get(token)
		if u.PromptCount != 2 || u.TokenCounts["azure-gpt4o"] != 18+29 || u.TokenCounts["azure-turbo"] != 0 {
			t.Errorf("charged: promptCount %d, counts %v; want 2 and azure-gpt4o=47", u.PromptCount, u.TokenCounts)
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if strings.Join(ids, ",") != "gpt-35-turbo,dall-e-3,text-embedding-3-small,gpt-35-turbo-instruct,gpt-4o-2024-08-06" {
			t.Errorf("models %v", ids)
		}
		if p := up.Last(t).Path; p != "/tollgate-east/openai/models" {
			t.Errorf("model list upstream at %s", p)
		}
	})

	e.neverSaw(token)
}

// Embeddings, legacy completions and images go to their deployments; each
// is counted in the family of its deployment's model.
func TestAzureOtherRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	t.Run("embeddings", func(t *testing.T) {
		e, up := newAzureEnv(t, map[string]string{"AZURE_CREDENTIALS": azureCred("tollgate-east", "embed")})
		token := e.user(users.Patch{})
		resp, err := azureClient(e, token).Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "text-embedding-3-small",
			Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 1 || len(resp.Data[0].Embedding) != 3 {
			t.Errorf("embeddings %+v", resp.Data)
		}
		if p := up.Last(t).Path; p != "/tollgate-east/openai/deployments/embed/embeddings" {
			t.Errorf("upstream path %s", p)
		}
		if u := e.get(token); u.TokenCounts["azure-turbo"] != 11 || u.PromptCount != 1 {
			t.Errorf("charged %v (%d prompts); want azure-turbo=11", u.TokenCounts, u.PromptCount)
		}
		e.neverSaw(token)
	})

	t.Run("completions", func(t *testing.T) {
		e, up := newAzureEnv(t, map[string]string{"AZURE_CREDENTIALS": azureCred("tollgate-east", "instruct")})
		token := e.user(users.Patch{})
		resp, err := azureClient(e, token).Completions.New(ctx, openai.CompletionNewParams{
			Model:  "gpt-3.5-turbo-instruct",
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Say hello.")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Text != "Hello from the fake upstream!" {
			t.Errorf("text %q", resp.Choices[0].Text)
		}
		if p := up.Last(t).Path; p != "/tollgate-east/openai/deployments/instruct/completions" {
			t.Errorf("upstream path %s", p)
		}
		if u := e.get(token); u.TokenCounts["azure-turbo"] != 18 {
			t.Errorf("charged %v; want azure-turbo=18", u.TokenCounts)
		}
	})

	t.Run("images", func(t *testing.T) {
		e, up := newAzureEnv(t, map[string]string{"AZURE_CREDENTIALS": azureCred("tollgate-east", "dalle3"),
			"ALLOWED_MODEL_FAMILIES": "azure-dall-e", "IMAGE_MODEL_RATE_LIMIT": "0"})
		token := e.user(users.Patch{})
		resp, err := azureClient(e, token).Images.Generate(ctx, openai.ImageGenerateParams{Model: "dall-e-3", Prompt: "a red square"})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 1 || resp.Data[0].URL == "" {
			t.Errorf("images %+v", resp.Data)
		}
		if p := up.Last(t).Path; p != "/tollgate-east/openai/deployments/dalle3/images/generations" {
			t.Errorf("upstream path %s", p)
		}
		// DALL-E on Azure reports no usage and names no model: the
		// request's image family, charged the image's price (a standard
		// 1024x1024 DALL-E 3 image: 4,000) and the prompt.
		if u := e.get(token); u.TokenCounts["azure-dall-e"] < 4000 || u.TokenCounts["azure-dall-e"] > 4010 || len(u.TokenCounts) != 1 {
			t.Errorf("charged %v; want azure-dall-e only, 4000 and the prompt", u.TokenCounts)
		}
		// A body naming no model is priced as DALL-E 3, the one Azure serves.
		a := e.do(call{path: "/proxy/azure/openai/v1/images/generations", header: bearerH(token), body: `{"prompt":"a red square","size":"1792x1024"}`})
		if got := e.get(token).TokenCounts["azure-dall-e"]; a.status != http.StatusOK || got < 12000 || got > 12020 {
			t.Errorf("no model named: %d, charged %d in all, want 4000 + 8000 and the prompts", a.status, got)
		}
	})
}

// The request's model does not decide which model answers: a user whose
// quota of the deployment's family is used up, or a family the operator
// does not allow, is refused before anything of the answer is relayed,
// whatever the request named, and is not charged.
func TestAzureAnswerFamilyChecked(t *testing.T) {
	const body = `{"model":"gpt-35-turbo","messages":[{"role":"user","content":"hi"}]%s}`
	t.Run("quota", func(t *testing.T) {
		e, up := newAzureEnv(t, nil)
		token := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{"azure-gpt4o": 10}), TokenCounts: setOpt(map[string]int64{"azure-gpt4o": 10})})
		for _, stream := range []string{"", `,"stream":true`} {
			a := e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: fmtBody(body, stream), header: bearerH(token)})
			if a.status != http.StatusTooManyRequests || !strings.Contains(string(a.body), "azure-gpt4o") || strings.Contains(string(a.body), "Hello") {
				t.Errorf("stream %q: %d %s; want a 429 quota refusal of azure-gpt4o", stream, a.status, a.body)
			}
		}
		if up.Count() != 2 {
			t.Errorf("upstream asked %d times", up.Count())
		}
		u := e.get(token)
		if u.TokenCounts["azure-gpt4o"] != 10 || u.TokenCounts["azure-turbo"] != 0 {
			t.Errorf("charged a refused answer: %v", u.TokenCounts)
		}
		// With quota left in the deployment's family, the same request passes.
		token2 := e.user(users.Patch{TokenLimits: setOpt(map[string]int64{"azure-gpt4o": 1 << 20})})
		if a := e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: fmtBody(body, ""), header: bearerH(token2)}); a.status != 200 {
			t.Errorf("with quota: %d %s", a.status, a.body)
		}
		if u := e.get(token2); u.TokenCounts["azure-gpt4o"] != 18 {
			t.Errorf("charged %v; want azure-gpt4o=18", u.TokenCounts)
		}
	})
	t.Run("allowed families", func(t *testing.T) {
		e, _ := newAzureEnv(t, map[string]string{"ALLOWED_MODEL_FAMILIES": "azure-turbo"})
		token := e.user(users.Patch{})
		a := e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: fmtBody(body, `,"stream":true`), header: bearerH(token)})
		if a.status != http.StatusForbidden || !strings.Contains(string(a.body), "azure-gpt4o") || strings.Contains(string(a.body), "Hello") {
			t.Errorf("%d %s; want 403 for azure-gpt4o", a.status, a.body)
		}
		if u := e.get(token); len(u.TokenCounts) != 0 || u.PromptCount != 0 {
			t.Errorf("charged a refused answer: %v", u.TokenCounts)
		}
	})
}

// A gpt-image deployment's answer names no model, as DALL-E's does, but
// it reports usage, which no DALL-E answer does: it is counted in
// azure-gpt-image whatever model the request named, so naming dall-e-3
// (or nothing) does not get gpt-image's images under azure-dall-e's
// allow-list and quota.
func TestAzureImageAnswerFamily(t *testing.T) {
	e, up := newAzureEnv(t, map[string]string{"AZURE_CREDENTIALS": azureCred("tollgate-images", "gptimage"),
		"ALLOWED_MODEL_FAMILIES": "azure-dall-e", "IMAGE_MODEL_RATE_LIMIT": "0"})
	token := e.user(users.Patch{})
	for _, body := range []string{`{"model":"dall-e-3","prompt":"a red square"}`, `{"prompt":"a red square"}`} {
		a := e.do(call{path: "/proxy/azure/openai/v1/images/generations", header: bearerH(token), body: body})
		if a.status != http.StatusForbidden || !strings.Contains(string(a.body), "azure-gpt-image") || strings.Contains(string(a.body), "b64_json") {
			t.Errorf("%s: %d %s; want 403 for azure-gpt-image", body, a.status, a.body)
		}
	}
	if up.Count() != 2 {
		t.Errorf("upstream asked %d times, want 2", up.Count())
	}
	if u := e.get(token); len(u.TokenCounts) != 0 {
		t.Errorf("charged a refused answer: %v", u.TokenCounts)
	}
	// A streamed image answer names no model in any event: it is not
	// served, whatever model the request named.
	for _, body := range []string{`{"model":"dall-e-3","prompt":"a red square","stream":true}`, `{"prompt":"a red square","stream":true,"partial_images":1}`} {
		a := e.do(call{path: "/proxy/azure/openai/v1/images/generations", header: bearerH(token), body: body})
		if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), "stream") {
			t.Errorf("%s: %d %.300s; want 400 naming stream", body, a.status, a.body)
		}
	}
	if up.Count() != 2 {
		t.Errorf("upstream asked %d times, want 2", up.Count())
	}
	if u := e.get(token); len(u.TokenCounts) != 0 {
		t.Errorf("charged a refused request: %v", u.TokenCounts)
	}
	// Allowed, the image is charged its reported usage in azure-gpt-image.
	e2, _ := newAzureEnv(t, map[string]string{"AZURE_CREDENTIALS": azureCred("tollgate-images", "gptimage"),
		"ALLOWED_MODEL_FAMILIES": "azure-dall-e,azure-gpt-image", "IMAGE_MODEL_RATE_LIMIT": "0"})
	token2 := e2.user(users.Patch{})
	if a := e2.do(call{path: "/proxy/azure/openai/v1/images/generations", header: bearerH(token2), body: `{"model":"dall-e-3","prompt":"x"}`}); a.status != http.StatusOK {
		t.Fatalf("allowed: %d %s", a.status, a.body)
	}
	if u := e2.get(token2); len(u.TokenCounts) != 1 || u.TokenCounts["azure-gpt-image"] != 18 {
		t.Errorf("charged %v; want azure-gpt-image=18 only", u.TokenCounts)
	}
}

func fmtBody(format, extra string) string { return strings.Replace(format, "%s", extra, 1) }

// A credential Azure refuses (401: wrong key; DeploymentNotFound) is set
// aside and the request served by the next one; a rate-limited one (429)
// is passed over for this request only.
func TestAzureKeyRotation(t *testing.T) {
	const body = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	eastKey := upstreamfake.AzureResources["tollgate-east"].Key
	for _, tc := range []struct {
		name, first string
		aside       bool
	}{
		{"wrong key", "tollgate-east:prod-4o:00000000000000000000000000000000", true},
		{"deployment gone", azureCred("tollgate-east", "deleted-deployment"), true},
		{"rate limited", azureCred("tollgate-east", "prod-4o"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, up := newAzureEnv(t, map[string]string{"AZURE_CREDENTIALS": tc.first + "," + azureCred("tollgate-west", "west-4o")})
			if !tc.aside {
				up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{eastKey: http.StatusTooManyRequests}})
			}
			token := e.user(users.Patch{})
			for i := range 3 {
				a := e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: body, header: bearerH(token)})
				if a.status != 200 || !strings.Contains(string(a.body), "gpt-4o-2024-11-20") {
					t.Fatalf("request %d: %d %s", i, a.status, a.body)
				}
			}
			var paths []string
			for _, r := range up.Requests() {
				paths = append(paths, strings.SplitN(r.Path, "/", 3)[1])
			}
			// Turns: east (refused) then west; west; east again unless set aside, then west.
			want := "tollgate-east,tollgate-west,tollgate-west,tollgate-east,tollgate-west"
			if tc.aside {
				want = "tollgate-east,tollgate-west,tollgate-west,tollgate-west"
			}
			if got := strings.Join(paths, ","); got != want {
				t.Errorf("upstream resources %s, want %s", got, want)
			}
			if got := strings.Contains(e.logs.String(), "set aside"); got != tc.aside {
				t.Errorf("set aside logged: %v", got)
			}
			if u := e.get(token); u.TokenCounts["azure-gpt4o"] != 3*18 {
				t.Errorf("charged %v", u.TokenCounts)
			}
			if strings.Contains(e.logs.String(), eastKey) {
				t.Error("a key reached the log")
			}
			if !tc.aside {
				return
			}
			info := string(e.do(call{method: "GET", path: "/proxy/"}).body)
			mustContain(t, "info", info, `"baseUrl":"`+e.srv.URL+`/proxy/azure/openai/v1"`)
			mustContain(t, "info", info, `"keys":{"inService":1,"setAside":1}`)
			// The recheck asks the resource's model list with the
			// credential: a wrong key stays aside; a deployment gone
			// comes back (the list cannot tell), to be set aside again by
			// the next request it fails, which the next key serves.
			e.clock.Advance(6 * time.Minute)
			e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: body, header: bearerH(token)})
			if !up.WaitFor(5*time.Second, func(f *upstreamfake.Fake) bool {
				for _, r := range f.Requests() {
					if r.Method == "GET" && r.Path == "/tollgate-east/openai/models" && r.Header.Get("Api-Key") == strings.Split(tc.first, ":")[2] {
						return f.InFlight() == 0
					}
				}
				return false
			}) {
				t.Fatal("no recheck of the credential set aside")
			}
			wantBack := tc.name == "deployment gone"
			for deadline := time.Now().Add(5 * time.Second); ; {
				info := string(e.do(call{method: "GET", path: "/proxy/"}).body)
				if back := strings.Contains(info, `"keys":{"inService":2,"setAside":0}`); back == wantBack {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the recheck: %s (want back: %v)", info, wantBack)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// Azure names the operator's region and deployment in every answer's
// headers (x-ms-region, x-ms-deployment-name): neither reaches the
// client, on a whole answer, a stream or an error.
func TestAzureAnswersHideTheDeployment(t *testing.T) {
	e, up := newAzureEnv(t, nil)
	tk := e.user(users.Patch{})
	chat := `{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`
	stream := `{"model":"gpt-4o","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	check := func(name string, a answer, status int) {
		t.Helper()
		if a.status != status {
			t.Fatalf("%s: %d %s", name, a.status, a.body)
		}
		for k, vs := range a.header {
			for _, v := range vs {
				if strings.Contains(v, upstreamfake.AzureRegion) || strings.Contains(v, "prod-4o") {
					t.Errorf("%s: header %s: %s names the operator's region or deployment", name, k, v)
				}
			}
		}
		if a.header.Get("Apim-Request-Id") == "" {
			t.Errorf("%s: Azure's request id, which names nothing of the operator's, is dropped too", name)
		}
	}
	check("whole", e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: chat, header: bearerH(tk)}), http.StatusOK)
	check("stream", e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: stream, header: bearerH(tk)}), http.StatusOK)
	up.Set(upstreamfake.Behavior{Status: http.StatusBadRequest})
	check("error", e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: chat, header: bearerH(tk)}), http.StatusBadRequest)
}

// Errors reach clients in OpenAI's shape, or as a fake completion with
// ERROR_FORMAT=completion; an upstream error quoting the key is relayed
// with the key scrubbed.
func TestAzureErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	eastKey := upstreamfake.AzureResources["tollgate-east"].Key
	params := openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}

	t.Run("native", func(t *testing.T) {
		e, up := newAzureEnv(t, nil)
		up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{eastKey: http.StatusTooManyRequests}})
		token := e.user(users.Patch{})
		_, err := azureClient(e, token).Chat.Completions.New(ctx, params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("error %v; want the upstream's 429", err)
		}
		if strings.Contains(apiErr.RawJSON(), eastKey) || !strings.Contains(apiErr.RawJSON(), "[redacted]") {
			t.Errorf("error body %s: the key must be scrubbed", apiErr.RawJSON())
		}
	})

	t.Run("completion", func(t *testing.T) {
		e, up := newAzureEnv(t, map[string]string{"ERROR_FORMAT": "completion"})
		up.Set(upstreamfake.Behavior{Status: http.StatusBadRequest})
		token := e.user(users.Patch{})
		client := azureClient(e, token)
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if c := resp.Choices[0].Message.Content; !strings.Contains(c, "400 from Azure OpenAI") || !strings.Contains(c, "told to fail") {
			t.Errorf("fake completion %q", c)
		}
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		for stream.Next() {
			for _, c := range stream.Current().Choices {
				text.WriteString(c.Delta.Content)
			}
		}
		if err := stream.Err(); err != nil || !strings.Contains(text.String(), "400 from Azure OpenAI") {
			t.Errorf("streamed fake completion %q, %v", text.String(), err)
		}
		if u := e.get(token); len(u.TokenCounts) != 0 {
			t.Errorf("an error was charged: %v", u.TokenCounts)
		}
	})

	t.Run("bad credential", func(t *testing.T) {
		// A malformed entry stops the configuration, naming the variable
		// and never the key; a Secret Manager reference waits for its value.
		for _, bad := range []string{"tollgate-east:" + eastKey, azureCred("tollgate-east", "prod-4o") + ",evil.example/x:dep:" + eastKey} {
			_, err := config.FromMap(map[string]string{"AZURE_CREDENTIALS": bad})
			if err == nil || !strings.Contains(err.Error(), "AZURE_CREDENTIALS") || !strings.Contains(err.Error(), "must be resource:deployment:key") || strings.Contains(err.Error(), eastKey) {
				t.Errorf("config error %v", err)
			}
		}
		if _, err := config.FromMap(map[string]string{"AZURE_CREDENTIALS": "sm://azure-credentials"}); err != nil {
			t.Errorf("a reference refused before it is resolved: %v", err)
		}
		// A reference resolving to a malformed entry: never sent anywhere,
		// the request answered 502, the log says what is wrong.
		e, up := newAzureEnv(t, nil)
		cfg := *e.d.Config
		cfg.ProviderKeys = maps.Clone(cfg.ProviderKeys)
		cfg.ApplySecrets(map[string]string{"AZURE_CREDENTIALS": "tollgate-east:" + eastKey})
		srv := httptest.NewServer(New(Deps{Config: &cfg, Store: e.d.Store, Log: logging.New(e.logs, "info"), Now: e.d.Now}))
		defer srv.Close()
		token := e.user(users.Patch{})
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/proxy/azure/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "could not be authorised") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
		mustContain(t, "log", e.logs.String(), "AZURE_CREDENTIALS entry: must be resource:deployment:key")
		if strings.Contains(e.logs.String(), eastKey) || strings.Contains(string(body), eastKey) || up.Count() != 0 {
			t.Error("a malformed credential was shown or sent")
		}
	})
}

// AZURE_OPENAI_API_VERSION chooses the api-version; a value that is not
// one stops the configuration, naming the variable.
func TestAzureAPIVersion(t *testing.T) {
	e, up := newAzureEnv(t, map[string]string{"AZURE_OPENAI_API_VERSION": "2024-10-21"})
	token := e.user(users.Patch{})
	if a := e.do(call{path: "/proxy/azure/openai/chat/completions", body: `{"model":"gpt-4o","messages":[]}`, header: bearerH(token)}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if v := up.Last(t).Query.Get("api-version"); v != "2024-10-21" {
		t.Errorf("api-version %q", v)
	}
	_, err := config.FromMap(map[string]string{"AZURE_OPENAI_API_VERSION": "latest; drop"})
	if err == nil || !strings.Contains(err.Error(), "AZURE_OPENAI_API_VERSION") {
		t.Errorf("config error %v", err)
	}
}

// Deployments of different kinds share the pool: a request that lands on
// a deployment without its operation (Azure's OperationNotSupported) is
// tried on the next one, and neither is set aside.
func TestAzureMixedDeployments(t *testing.T) {
	e, up := newAzureEnv(t, map[string]string{
		"AZURE_CREDENTIALS":      azureCred("tollgate-east", "dalle3") + "," + azureCred("tollgate-east", "prod-4o"),
		"ALLOWED_MODEL_FAMILIES": "azure-gpt4o,azure-dall-e", "IMAGE_MODEL_RATE_LIMIT": "0",
	})
	token := e.user(users.Patch{})
	for i, c := range []struct{ path, body, deployment string }{
		{"/proxy/azure/openai/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, "prod-4o"},   // dalle3's turn
		{"/proxy/azure/openai/v1/images/generations", `{"model":"dall-e-3","prompt":"x"}`, "dalle3"}, // prod-4o's turn
		{"/proxy/azure/openai/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, "prod-4o"},   // dalle3's turn again
	} {
		a := e.do(call{path: c.path, body: c.body, header: bearerH(token)})
		if a.status != 200 {
			t.Fatalf("request %d: %d %s", i, a.status, a.body)
		}
		if p := up.Last(t).Path; !strings.Contains(p, "/deployments/"+c.deployment+"/") {
			t.Errorf("request %d answered by %s", i, p)
		}
	}
	if up.Count() != 6 {
		t.Errorf("%d upstream requests, want 6 (each tried on both deployments)", up.Count())
	}
	if strings.Contains(e.logs.String(), "set aside") {
		t.Error("a deployment was set aside")
	}
	u := e.get(token)
	if u.TokenCounts["azure-gpt4o"] != 2*18 || u.TokenCounts["azure-dall-e"] <= 0 {
		t.Errorf("charged %v", u.TokenCounts)
	}
}
