package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

func TestServiceInfo(t *testing.T) {
	e := newEnv(t, map[string]string{"MISTRAL_AI_KEY": "", "ALLOWED_MODEL_FAMILIES": "gpt4o,gpt5,claude,gemini-flash"})
	type info struct {
		Service    string `json:"service"`
		Gatekeeper string `json:"gatekeeper"`
		Providers  []struct {
			Provider string   `json:"provider"`
			BaseURL  string   `json:"baseUrl"`
			Families []string `json:"families"`
		} `json:"providers"`
		AllowedFamilies []string `json:"allowedFamilies"`
		Lookup          string   `json:"lookup"`
	}
	get := func(path string, header map[string]string) info {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.Host = "tollgate.example"
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var i info
		if err := json.NewDecoder(resp.Body).Decode(&i); err != nil {
			t.Fatal(err)
		}
		return i
	}

	i := get("/proxy/", map[string]string{"X-Forwarded-Proto": "https"})
	if i.Gatekeeper != "user_token" || strings.Join(i.AllowedFamilies, ",") != "claude,gemini-flash,gpt4o,gpt5" {
		t.Errorf("info: %+v", i)
	}
	want := map[string]string{
		"openai":       "https://tollgate.example/proxy/openai/v1",
		"anthropic":    "https://tollgate.example/proxy/anthropic",
		"google-ai":    "https://tollgate.example/proxy/google-ai",
		"openai-image": "https://tollgate.example/proxy/openai-image/v1", // OpenAI's keys
	}
	if len(i.Providers) != len(want) {
		t.Errorf("providers %+v; want only the four served", i.Providers)
	}
	for _, p := range i.Providers {
		if p.BaseURL != want[p.Provider] {
			t.Errorf("%s base URL %q, want %q", p.Provider, p.BaseURL, want[p.Provider])
		}
		if p.Provider == "openai" && strings.Join(p.Families, ",") != "gpt4o,gpt5" {
			t.Errorf("openai families %v", p.Families)
		}
		if p.Provider == "openai-image" && len(p.Families) != 0 {
			t.Errorf("image mount families %v; no image family is allowed", p.Families)
		}
	}
	if i.Lookup != "https://tollgate.example/proxy/user/lookup" {
		t.Errorf("lookup %q", i.Lookup)
	}
	// At the function's own root (its function URL), plain http.
	i = get("/", nil)
	if len(i.Providers) == 0 || i.Providers[0].BaseURL != "http://tollgate.example/openai/v1" {
		t.Errorf("at the root: %+v", i.Providers)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/proxy/health", "/health"} {
		a := e.do(call{method: http.MethodGet, path: path})
		if a.status != 200 || string(a.body) != `{"status":"ok"}` {
			t.Errorf("%s: %d %s", path, a.status, a.body)
		}
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+"/proxy/anthropic/v1/messages", nil)
	req.Header.Set("Origin", "http://localhost:8000")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "x-api-key,anthropic-version,content-type,x-stainless-os")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "x-api-key", "x-goog-api-key", "content-type", "anthropic-version", "anthropic-beta", "x-stainless-os"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
		}
	}
	if m := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
		t.Errorf("Access-Control-Allow-Methods %q", m)
	}

	// A browser client's real request: the answer is readable cross-origin,
	// and the browser's Origin does not reach the upstream (Anthropic
	// refuses browser requests that do not opt in).
	tk := e.user(users.Patch{})
	pc := provCases[1]
	h := pc.auth(tk)
	h["Origin"] = "http://localhost:8000"
	a := e.do(call{path: pc.path, body: pc.body, header: h})
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("proxied answer: %d, Allow-Origin %q", a.status, a.header.Get("Access-Control-Allow-Origin"))
	}
	if vals := a.header.Values("Access-Control-Allow-Origin"); len(vals) != 1 {
		t.Errorf("Allow-Origin sent %d times", len(vals))
	}
	if o := e.fake(pc.kind).Last(t).Header.Get("Origin"); o != "" {
		t.Errorf("upstream saw Origin %q", o)
	}

	// A POST without Origin comes from no browser: no CORS headers. GET
	// answers carry them whoever asks (a browser may reuse a cached one).
	a = e.do(call{path: pc.path, body: pc.body, header: pc.auth(tk)})
	if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "" || a.header.Get("Access-Control-Expose-Headers") != "" {
		t.Errorf("POST without Origin: %d, CORS headers %v", a.status, a.header)
	}
	for _, path := range []string{"/", "/health"} {
		if a := e.do(call{method: http.MethodGet, path: path}); a.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET %s without Origin: Allow-Origin %q", path, a.header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// One log line per request, with route, token tail, family and tokens,
// and never a whole token or key.
func TestRequestLog(t *testing.T) {
	e := newEnv(t, nil)
	tk := e.user(users.Patch{})
	pc := provCases[0]
	if a := e.do(call{path: pc.path + "?key=" + tk, body: pc.body}); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	e.logs.waitLines(t, `"httpRequest"`, 1)
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		if strings.Contains(l, `"httpRequest"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["route"] != "POST /openai/v1/chat/completions" || line["token"] != "…"+tk[len(tk)-4:] ||
		line["family"] != "gpt4o" || line["tokens"] != float64(18) {
		t.Errorf("log line %v", line)
	}
	logs := e.logs.String()
	for _, secret := range []string{tk, openAIKey, adminKey} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows %q", secret)
		}
	}
}

// The self-service page is mounted under the proxy, without CORS.
func TestLookupMounted(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/proxy/user/lookup", "/user/lookup"} {
		a := e.do(call{method: http.MethodGet, path: path})
		if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %s", path, a.status, a.header.Get("Content-Type"))
		}
		if a.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET %s: the lookup page allows any origin", path)
		}
	}
}
