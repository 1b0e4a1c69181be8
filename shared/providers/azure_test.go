package providers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

const azureKey = "0123456789abcdef0123456789abcdef"

// azureLongKey has the length of the keys Azure issues today.
var azureLongKey = strings.Repeat("Ab9", 28)

func azureRequest(t *testing.T) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/chat/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// Each route goes to the credential's deployment (or, for the model
// list, its resource), the base URL's {resource} filled in, with the
// configured api-version and the key in api-key only.
func TestAzureOutbound(t *testing.T) {
	cases := []struct {
		base, path, version, want string
	}{
		{"https://{resource}.openai.azure.com", "/v1/chat/completions", "", "https://east.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=" + AzureAPIVersion},
		{"https://{resource}.openai.azure.com", "/chat/completions", "2024-10-21", "https://east.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"},
		{"https://{resource}.openai.azure.com", "/v1/completions", "", "https://east.openai.azure.com/openai/deployments/gpt4o-prod/completions?api-version=" + AzureAPIVersion},
		{"https://{resource}.openai.azure.com", "/v1/embeddings", "", "https://east.openai.azure.com/openai/deployments/gpt4o-prod/embeddings?api-version=" + AzureAPIVersion},
		{"https://{resource}.openai.azure.com", "/v1/images/generations", "", "https://east.openai.azure.com/openai/deployments/gpt4o-prod/images/generations?api-version=" + AzureAPIVersion},
		{"https://{resource}.openai.azure.com", "/v1/models", "", "https://east.openai.azure.com/openai/models?api-version=" + AzureAPIVersion},
		{"http://127.0.0.1:8080/{resource}/", "/v1/models/gpt-4o", "", "http://127.0.0.1:8080/east/openai/models/gpt-4o?api-version=" + AzureAPIVersion},
		// A gateway in front of one resource: no placeholder to fill.
		{"https://gateway.example/azure", "/v1/chat/completions", "", "https://gateway.example/azure/openai/deployments/gpt4o-prod/chat/completions?api-version=" + AzureAPIVersion},
	}
	for _, tc := range cases {
		req := azureRequest(t)
		req.Header.Set("Authorization", "Bearer leftover")
		body := []byte(`{"model":"gpt-4o"}`)
		c := &Call{Upstream: Upstream{Base: tc.base, Settings: map[string]string{"AZURE_OPENAI_API_VERSION": tc.version}},
			Cred: "east:gpt4o-prod:" + azureKey, Path: tc.path, Body: body}
		got, err := azureOpenAI.Outbound(context.Background(), req, c)
		if err != nil {
			t.Errorf("%s %s: %v", tc.base, tc.path, err)
			continue
		}
		if req.URL.String() != tc.want {
			t.Errorf("%s %s: URL %s, want %s", tc.base, tc.path, req.URL, tc.want)
		}
		if req.Header.Get("Api-Key") != azureKey || req.Header.Get("Authorization") != "" || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", req.Header)
		}
		if !bytes.Equal(got, body) {
			t.Errorf("body %s", got)
		}
	}
}

// A credential that is not resource:deployment:key, or whose names could
// change the URL, is refused without quoting the key.
func TestAzureCredentials(t *testing.T) {
	good, err := ParseAzureCredential(" my-resource:gpt-4o.2024_08:" + azureKey + " ")
	if err != nil || good != (AzureCredential{"my-resource", "gpt-4o.2024_08", azureKey}) {
		t.Errorf("good credential: %+v, %v", good, err)
	}
	for _, bad := range []string{
		azureKey,
		"east:" + azureKey,
		"east::" + azureKey,
		":dep:" + azureKey,
		"east:dep:",
		"evil.com/x:dep:" + azureKey,
		"east@evil.com:dep:" + azureKey,
		"east:../../admin:" + azureKey,
		"east:dep?x=1:" + azureKey,
		"east:dep/chat:" + azureKey,
		"-east:dep:" + azureKey,
		// Written in another order, with a key of today's length (84
		// characters): the key stands where a name should.
		azureLongKey + ":east:dep",
		"east:" + azureLongKey + ":dep",
	} {
		_, err := ParseAzureCredential(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), azureKey) || strings.Contains(err.Error(), azureLongKey) {
			t.Errorf("error quotes the key: %v", err)
		}
		req := azureRequest(t)
		if _, err := azureOpenAI.Outbound(context.Background(), req, &Call{Upstream: Upstream{Base: "https://{resource}.openai.azure.com"}, Cred: bad, Path: "/v1/chat/completions"}); err == nil {
			t.Errorf("%q: Outbound built %s", bad, req.URL)
		}
	}
	if err := checkAzureAPIVersion("2025-04-01-preview"); err != nil {
		t.Error(err)
	}
	for _, v := range []string{"", "latest", "2024-10-21&x=1", "24-10-21"} {
		if checkAzureAPIVersion(v) == nil {
			t.Errorf("api-version %q accepted", v)
		}
	}
}

func FuzzAzureCredential(f *testing.F) {
	for _, s := range []string{"east:dep:" + azureKey, "a:b:c:d", "::", "east:dep/..:k", "é:dep:k", "east:dep:k\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseAzureCredential(s)
		if err != nil {
			return
		}
		if !azureResource(c.Resource) || !azureDeployment(c.Deployment) || c.Key == "" {
			t.Fatalf("accepted %q as %+v", s, c)
		}
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/", nil)
		if _, err := azureOutbound(context.Background(), req, &Call{Upstream: Upstream{Base: "https://{resource}.openai.azure.com"}, Cred: s, Path: "/v1/embeddings"}); err != nil {
			t.Fatal(err)
		}
		if req.URL.Host != c.Resource+".openai.azure.com" || req.URL.Path != "/openai/deployments/"+c.Deployment+"/embeddings" {
			t.Fatalf("%q sent to %s", s, req.URL)
		}
	})
}

func TestAzureKeyDead(t *testing.T) {
	cases := []struct {
		status int
		body   string
		dead   bool
	}{
		{401, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`, true},
		{404, `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`, true},
		{404, `{"error":{"code":"404","message":"Resource not found"}}`, false},
		{404, `{"error":{"code":"404","message":"Resource not found","param":"DeploymentNotFound"}}`, false},
		{400, `{"error":{"code":"content_filter","message":"The response was filtered"}}`, false},
		{400, `{"error":{"code":"OperationNotSupported","message":"The chatCompletion operation does not work with the specified model"}}`, false},
		{403, `{"error":{"code":"403","message":"Access denied due to Virtual Network/Firewall rules."}}`, false},
		{429, `{"error":{"code":"429","message":"Requests have exceeded token rate limit"}}`, false},
	}
	for _, tc := range cases {
		if got := azureOpenAI.KeyDead(tc.status, []byte(tc.body)); got != tc.dead {
			t.Errorf("%d %s: dead %v, want %v", tc.status, tc.body, got, tc.dead)
		}
	}
}

// Inbound finds the model that answered, in a whole answer or in a
// stream's first chunks (Azure's first names none), and leaves every
// byte for the relay.
func TestAzureInbound(t *testing.T) {
	filter := `data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}` + "\n\n"
	role := `data: {"choices":[{"delta":{"role":"assistant"}}],"model":"gpt-4o-2024-08-06","object":"chat.completion.chunk"}` + "\n\n"
	text := `data: {"choices":[{"delta":{"content":"hi"}}],"model":"gpt-4o-2024-08-06"}` + "\n\n" + "data: [DONE]\n\n"
	long := strings.Repeat(`data: {"choices":[],"model":""}`+"\n\n", maxModelPeek/20)
	cases := []struct {
		name, ct, body, want string
		stream, check        bool
		status               int
	}{
		{"stream", ContentSSE, filter + role + text, "gpt-4o-2024-08-06", true, false, 200},
		{"stream without a model", ContentSSE, filter + "data: [DONE]\n\n", "", true, false, 200},
		{"stream naming its model too late", ContentSSE, long + role, "", true, false, 200},
		{"error", ContentSSE, filter + role, "", true, false, 401},
		{"key check", ContentSSE, filter + role, "", true, true, 200},
		{"whole (AnswerModel reads it)", ContentJSON, `{"choices":[],"model":"gpt-35-turbo"}`, "", false, false, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {tc.ct}},
				Body: io.NopCloser(&trickle{s: tc.body})}
			c := &Call{Body: []byte(`{}`), Stream: tc.stream, Check: tc.check}
			if err := azureOpenAI.Inbound(resp, c); err != nil {
				t.Fatal(err)
			}
			if c.Answered != tc.want {
				t.Errorf("answered %q, want %q", c.Answered, tc.want)
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != tc.body {
				t.Errorf("relayed %d bytes (%v), want the %d sent", len(got), err, len(tc.body))
			}
		})
	}
}

// A whole answer names its model at the top level, or not at all.
func TestAzureAnswerModel(t *testing.T) {
	for body, want := range map[string]string{
		`{"choices":[{"message":{"content":"hi","model":"x"}}],"model":"gpt-35-turbo","usage":{}}`: "gpt-35-turbo",
		`{"object":"list","data":[{"embedding":[0.1]}],"model":"text-embedding-3-small"}`:          "text-embedding-3-small",
		`{"created":1,"data":[{"url":"https://x"}]}`:                                               "",
		// gpt-image answers name no model but report usage: gpt-image's.
		`{"created":1,"data":[{"b64_json":"x"}],"usage":{"input_tokens":1,"output_tokens":2}}`: "gpt-image-1",
		// Usage in the text routes' shape is not an image model's.
		`{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":1}}`:                   "",
		`{"created":1,"data":[{"url":"https://x","revised_prompt":"\"usage\":{\"input_tokens\":1}"}]}`: "",
		`{"model":null}`: "",
		`{"model":42}`:   "",
		`not json`:       "",
	} {
		if got := azureOpenAI.AnswerModel([]byte(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

// trickle reads a few bytes at a time, as a network does.
type trickle struct{ s string }

func (r *trickle) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 7)], r.s)
	r.s = r.s[n:]
	return n, nil
}

// Whatever a stream holds, the peek finds at most a model and relays
// every byte as it came.
func FuzzAzureStreamPeek(f *testing.F) {
	f.Add([]byte("data: {\"model\":\"\"}\n\ndata: {\"model\":\"gpt-4o\"}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("data: [DONE]\r\n\r\n"))
	f.Add([]byte("data: {\"model\":\"a\\u0062\"}\n\n"))
	f.Add([]byte("event: x\ndata: {\"model\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ContentSSE}}, Body: io.NopCloser(&trickle{s: string(b)})}
		c := &Call{Body: []byte(`{}`), Stream: true}
		if err := azureInbound(resp, c); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("relayed %q, want %q", got, b)
		}
	})
}

// Every attempt of an Azure request builds its URL from the credential.
func BenchmarkAzureOutbound(b *testing.B) {
	req, _ := http.NewRequest(http.MethodPost, "http://upstream.invalid/v1/chat/completions", nil)
	c := &Call{Upstream: Upstream{Base: "https://{resource}.openai.azure.com", Settings: map[string]string{}},
		Cred: "contoso-east:gpt4o-prod:" + azureKey, Path: "/v1/chat/completions", Body: []byte(`{}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := azureOutbound(context.Background(), req, c); err != nil {
			b.Fatal(err)
		}
	}
}
