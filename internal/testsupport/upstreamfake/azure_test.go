package upstreamfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// The Azure fake refuses what Azure refuses: a wrong api-version or
// resource (404), a wrong key (401), a deployment that does not exist
// (404 DeploymentNotFound), an operation the deployment's model lacks (400
// OperationNotSupported); it answers with the deployment's model, and
// streams open with a chunk that names none.
func TestAzure(t *testing.T) {
	f := Start(t, Azure)
	east := AzureResources["tollgate-east"].Key
	chat := `{"model":"anything","messages":[]}`
	cases := []struct {
		name, path, key, body string
		status                int
		want                  string
	}{
		{"chat", "/tollgate-east/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", east, chat, 200, `"model":"gpt-4o-2024-08-06"`},
		{"no api-version", "/tollgate-east/openai/deployments/prod-4o/chat/completions", east, chat, 404, "Resource not found"},
		{"unknown api-version", "/tollgate-east/openai/deployments/prod-4o/chat/completions?api-version=2023-01-01", east, chat, 404, "Resource not found"},
		{"unknown resource", "/nowhere/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", east, chat, 404, "Resource not found"},
		{"no key", "/tollgate-east/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21", "", chat, 401, "Access denied"},
		{"other resource's key", "/tollgate-west/openai/deployments/west-4o/chat/completions?api-version=2024-10-21", east, chat, 401, "Access denied"},
		{"unknown deployment", "/tollgate-east/openai/deployments/gone/chat/completions?api-version=2024-10-21", east, chat, 404, "DeploymentNotFound"},
		{"chat on dall-e", "/tollgate-east/openai/deployments/dalle3/chat/completions?api-version=2024-10-21", east, chat, 400, "OperationNotSupported"},
		{"OpenAI's path", "/tollgate-east/v1/chat/completions?api-version=2024-10-21", east, chat, 404, "Resource not found"},
		{"stream", "/tollgate-east/openai/deployments/prod-4o/chat/completions?api-version=2025-04-01-preview", east,
			`{"stream":true,"stream_options":{"include_usage":true}}`, 200, `"usage":{"completion_tokens":7`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, f, req{tc.path, tc.body, map[string]string{"api-key": tc.key}})
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
				t.Errorf("%d %s; want %d with %s", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
	_, body := send(t, f, req{cases[len(cases)-1].path, `{"stream":true}`, map[string]string{"api-key": east}})
	first, _, _ := strings.Cut(strings.TrimPrefix(string(body), "data: "), "\n")
	var chunk map[string]any
	if err := json.Unmarshal([]byte(first), &chunk); err != nil || chunk["model"] != "" || chunk["prompt_filter_results"] == nil {
		t.Errorf("first chunk %s", first)
	}
	if strings.Contains(string(body), `"usage"`) || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Errorf("stream without usage asked: %s", body)
	}
	hr, _ := http.NewRequest(http.MethodGet, f.URL+"/tollgate-west/openai/models?api-version=2024-10-21", nil)
	hr.Header.Set("api-key", AzureResources["tollgate-west"].Key)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Data []struct{ ID string } }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Data) != 3 || list.Data[0].ID != "o3-2025-04-16" || !strings.Contains(list.Data[2].ID, ".ft-") {
		t.Errorf("model list %+v", list)
	}
}
