package providers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/internal/jsonscan"
	"tollgate.dev/tollgate/shared/models"
)

// AzureAPIVersion is the api-version sent when AZURE_OPENAI_API_VERSION
// is not set: the last dated version of Azure OpenAI's data-plane API,
// which serves every model of the azure- families (o-series and GPT-5
// reasoning parameters included).
const AzureAPIVersion = "2025-04-01-preview"

// Azure OpenAI: OpenAI's API served by deployments. Each credential is
// one deployment (resource:deployment:key, as the original takes them):
// requests go to {base}/openai/deployments/{deployment}/{operation}
// ?api-version=… with the key in api-key, and the deployment, not the
// request's "model", decides which model answers: Inbound (streams) and
// AnswerModel (whole answers) read it from the answer, so that the request
// is counted in its family. Bodies, usage, streams and errors are OpenAI's.
func azureProvider() *Provider {
	p := openAICompatible(&Provider{
		ID:   models.AzureOpenAI,
		Name: "Azure OpenAI",
		Env: Env{Key: "AZURE_CREDENTIALS", BaseURL: "AZURE_OPENAI_BASE_URL", MaxOutput: "MAX_OUTPUT_TOKENS_AZURE",
			DefaultBaseURL: "https://{resource}.openai.azure.com",
			Settings:       []Setting{{Name: "AZURE_OPENAI_API_VERSION", Default: AzureAPIVersion, Check: checkAzureAPIVersion}},
			CheckKey: func(entry string) error {
				_, err := ParseAzureCredential(entry)
				return err
			}},
		SDKPath:  "/v1",
		Outbound: azureOutbound,
		Inbound:  azureInbound,
		// An answer naming no model (DALL-E's) leaves the request's own.
		AnswerModel: azureAnswerModel,
		KeyDead:     azureKeyDead,
		// A deployment runs an OpenAI model.
		UnlimitedOutput: openAIUnlimitedOutput,
		ImageTokens:     openAIImageTokens,
		// A chat request on a DALL-E deployment, an image request on a
		// chat one: another deployment of the pool may serve it.
		Elsewhere: func(status int, body []byte) bool {
			return status == http.StatusBadRequest && bytes.Contains(body, []byte(`"OperationNotSupported"`))
		},
	}, azureServed(openAIOperations())...)
	p.Routes = withUnversioned(p.Routes)
	return p
}

// azureServed keeps the OpenAI routes that a deployment has an operation
// for (the Responses API is not one).
func azureServed(routes []Route) []Route {
	var served []Route
	for _, r := range routes {
		if r.Format == OpenAIImages {
			r.Format = azureImages
		}
		if azureOperations[strings.TrimPrefix(r.Pattern, "/v1")] != "" {
			served = append(served, r)
		}
	}
	return served
}

// azureImages is OpenAI's image API where the deployment, not the body,
// names the model: no model is written into the body, and a body naming
// none (dall-e-2 assumed) is priced as DALL-E 3, the DALL-E Azure serves.
var azureImages = OpenAIImages.variant(func(f *Format) {
	f.SendModel = false
	f.Price = func(body []byte, model string) int64 {
		return dallEPrice(body, strings.Replace(model, "dall-e-2", "dall-e-3", 1))
	}
})

// withUnversioned serves each route also without /v1, as the original's
// Azure routes are.
func withUnversioned(routes []Route) []Route {
	var out []Route
	for _, r := range routes {
		alias := r
		alias.Pattern, alias.Unlisted = strings.TrimPrefix(r.Pattern, "/v1"), true
		out = append(out, r, alias)
	}
	return out
}

// azureOperations maps the paths under the mount (without /v1) to the
// deployment's operations.
var azureOperations = map[string]string{
	"/chat/completions":   "/chat/completions",
	"/completions":        "/completions",
	"/embeddings":         "/embeddings",
	"/images/generations": "/images/generations",
}

// AzureCredential is one entry of AZURE_CREDENTIALS.
type AzureCredential struct {
	Resource, Deployment, Key string
}

// Resource names become host names and deployment names path segments:
// nothing else may reach the URL. Every attempt parses its credential, so
// these are loops, not regexps.
func azureName(s string, max int, extra string) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || strings.IndexByte(extra, c) < 0) {
			return false
		}
	}
	return true
}

func azureResource(s string) bool   { return azureName(s, 63, "-") }
func azureDeployment(s string) bool { return azureName(s, 64, "._-") }

// ParseAzureCredential reads resource:deployment:key. Its errors never
// quote the key.
func ParseAzureCredential(s string) (AzureCredential, error) {
	parts := strings.SplitN(strings.TrimSpace(s), ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return AzureCredential{}, errors.New("must be resource:deployment:key")
	}
	c := AzureCredential{Resource: parts[0], Deployment: parts[1], Key: parts[2]}
	// The names are not quoted: in an entry written in another order, the
	// key stands where a name should.
	if !azureResource(c.Resource) {
		return AzureCredential{}, errors.New("must be resource:deployment:key with a resource name of at most 63 letters, digits and hyphens")
	}
	if !azureDeployment(c.Deployment) {
		return AzureCredential{}, errors.New("must be resource:deployment:key with a deployment name of at most 64 letters, digits and . _ -")
	}
	return c, nil
}

var azureVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)

func checkAzureAPIVersion(v string) error {
	if !azureVersion.MatchString(v) {
		return errors.New("an Azure OpenAI api-version such as " + AzureAPIVersion + " or 2024-10-21")
	}
	return nil
}

// azureOutbound sends the request to the credential's deployment: the
// resource fills the base URL's {resource}, the route's operation follows
// the deployment, and the model list (the key check too) is the
// resource's.
func azureOutbound(_ context.Context, req *http.Request, c *Call) ([]byte, error) {
	cred, err := ParseAzureCredential(c.Cred)
	if err != nil {
		return nil, fmt.Errorf("AZURE_CREDENTIALS entry: %w", err)
	}
	base, err := url.Parse(strings.ReplaceAll(c.Base, "{resource}", cred.Resource))
	if err != nil || base.Host == "" {
		return nil, errors.New("AZURE_OPENAI_BASE_URL does not make a URL for resource " + cred.Resource)
	}
	op := strings.TrimPrefix(c.Path, "/v1")
	var path string
	switch {
	case op == "/models" || strings.HasPrefix(op, "/models/"):
		path = "/openai" + op
	case azureOperations[op] != "":
		path = "/openai/deployments/" + cred.Deployment + azureOperations[op]
	default:
		return nil, errors.New("no Azure OpenAI operation for " + c.Path)
	}
	version := c.Settings["AZURE_OPENAI_API_VERSION"]
	if version == "" {
		version = AzureAPIVersion
	}
	u := *base
	u.Path = strings.TrimRight(base.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = "api-version=" + url.QueryEscape(version)
	req.URL, req.Host = &u, ""
	req.Header.Del("Authorization")
	req.Header.Set("Api-Key", cred.Key)
	return c.Body, nil
}

// azureKeyDead: 401 is Azure's answer to a wrong key or a key of another
// resource; DeploymentNotFound names the credential's own deployment (a
// request cannot choose another). A 403 (a content or network policy), a
// 400 and a 429 are about the request or the moment, and are relayed.
func azureKeyDead(status int, body []byte) bool {
	return status == http.StatusUnauthorized ||
		status == http.StatusNotFound && errorCode(body, "error.code") == "DeploymentNotFound"
}

// maxModelPeek bounds how much of a stream is held to find the model that
// answers: Azure's first chunk (the prompt's filter results) names none,
// the next one does.
const maxModelPeek = 64 << 10

// azureInbound finds the model that answered a stream (the
// deployment's), for the family the request is counted in: Azure's first
// chunk (the prompt's filter results) names none, so the first chunks are
// held back (at most maxModelPeek bytes) until one names it. Whole
// answers name it beside their usage (AnswerModel).
func azureInbound(resp *http.Response, c *Call) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 && !c.Check && c.Stream &&
		strings.HasPrefix(resp.Header.Get("Content-Type"), ContentSSE) {
		c.Answered = peekStreamModel(resp)
	}
	return nil
}

// peekStreamModel reads a stream's first events until one names its
// model, then puts every byte read back in front of the rest.
func peekStreamModel(resp *http.Response) string {
	var (
		held  []byte
		sse   framing.SSE
		model string
		done  bool
	)
	buf := make([]byte, 4096)
	for model == "" && !done && len(held) < maxModelPeek {
		n, err := resp.Body.Read(buf)
		held = append(held, buf[:n]...)
		sse.Feed(buf[:n], func(_, _, data []byte) {
			switch {
			case model != "" || done:
			case bytes.Equal(data, doneData):
				done = true
			default:
				model = modelOf(data)
			}
		})
		if err != nil {
			break // the relay meets the same error
		}
	}
	resp.Body = replay(held, resp.Body)
	return model
}

// modelOf is the top-level "model" string of a JSON object ("" if none).
func modelOf(b []byte) string {
	v := jsonscan.MemberValue(b, "model")
	if v == nil {
		return ""
	}
	s, err := jsonscan.Unquote(v)
	if err != nil {
		return ""
	}
	return s
}

// azureAnswerModel is the model a whole answer names. Image answers name
// none, but of the image models only gpt-image reports usage (in
// input_tokens, where the text routes say prompt_tokens): an image
// answer that does is gpt-image's, whatever model the request named (the
// deployment chose it).
func azureAnswerModel(b []byte) string {
	if m := modelOf(b); m != "" {
		return m
	}
	if u := jsonscan.MemberValue(b, "usage"); len(u) > 0 && u[0] == '{' && jsonscan.MemberValue(u, "input_tokens") != nil &&
		jsonscan.MemberValue(b, "data") != nil {
		return azureImageModel
	}
	return ""
}

// azureImageModel stands for the gpt-image model of a deployment whose
// answer does not name it: any of them counts in azure-gpt-image.
const azureImageModel = "gpt-image-1"

// replay is a body that gives read again, then the rest of body.
func replay(read []byte, body io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(read), body), body}
}
