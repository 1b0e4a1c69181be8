package providers

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/jwt"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// Google Vertex AI: Claude (Anthropic Messages in, rawPredict /
// streamRawPredict out) and Gemini (Google AI's routes in,
// generateContent / streamGenerateContent out) in the operator's Google
// Cloud project. Every request carries an OAuth2 access token minted from
// the credential (a service account's key, or the function's own identity)
// and kept until shortly before it expires. Usage, streams and errors are
// Anthropic's and Gemini's own: Vertex passes them through.
func vertexClaudeProvider(a *vertexAuth) *Provider {
	return &Provider{
		ID:   models.GCPClaude,
		Name: "Vertex AI (Claude)",
		Env:  vertexEnv(),
		Routes: []Route{
			{Method: http.MethodPost, Pattern: "/v1/messages", Format: AnthropicMessages},
			{Method: http.MethodPost, Pattern: "/v1/messages/count_tokens", Format: AnthropicCountTokens},
			{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: OpenAIChat, Translate: CloudAnthropicChat},
			{Method: http.MethodGet, Pattern: cloudModelsPath, Format: List, Query: vertexPage, Translate: vertexModels("anthropic")},
		},
		Outbound:  a.outbound("anthropic", vertexClaudeTarget),
		Inbound:   vertexClaudeInbound,
		Headers:   []string{"Anthropic-Beta"},
		ErrorBody: anthropicErrorBody,
		KeyDead:   vertexKeyDead,
		CheckPath: vertexCheckPath,
		// Anthropic's Messages: max_tokens is required.
		ImageTokens: anthropicImageTokens,
	}
}

func vertexGeminiProvider(a *vertexAuth) *Provider {
	var routes []Route
	// Vertex lists its models in a shape of its own: Google AI's list
	// routes are not served, OpenAI's /v1/models is.
	for _, r := range append(googleRoutes("v1beta", false), googleRoutes("v1", true)...) {
		if r.Method == http.MethodPost {
			routes = append(routes, r)
		}
	}
	routes = append(routes, Route{Method: http.MethodPost, Pattern: "/v1/chat/completions", Format: OpenAIChat, Translate: GoogleChat("v1beta")},
		Route{Method: http.MethodGet, Pattern: cloudModelsPath, Format: List, Query: vertexPage, Translate: vertexModels("google")})
	return &Provider{
		ID:        models.GCPGemini,
		Name:      "Vertex AI (Gemini)",
		Env:       vertexEnv(),
		Routes:    routes,
		Outbound:  a.outbound("google", vertexGeminiTarget),
		Inbound:   vertexGeminiInbound,
		ErrorBody: googleErrorBody,
		KeyDead:   vertexKeyDead,
		CheckPath: vertexCheckPath,
		// Gemini's generateContent, as on Google AI.
		UnlimitedOutput: googleUnlimitedOutput,
		ImageTokens:     googleImageTokens,
		Framing: Framing{
			SSE:       altSSE,
			EndsAtEOF: true,
		},
	}
}

// vertexPage pages the publisher model list.
var vertexPage = map[string][]string{"pageSize": nil, "pageToken": nil}

// Both mounts share the credentials (and which of them are set aside),
// the base URL, the region and the output clamp.
func vertexEnv() Env {
	return Env{Key: "GCP_CREDENTIALS", BaseURL: "GCP_VERTEX_BASE_URL", MaxOutput: "MAX_OUTPUT_TOKENS_GCP",
		DefaultBaseURL: "https://{region}-aiplatform.googleapis.com",
		Settings:       []Setting{{Name: vertexRegionVar, Default: "us-east5", Check: checkVertexRegion}}}
}

const (
	vertexRegionVar = "GCP_REGION"
	// vertexCheckPath marks a key check: Outbound turns it into a GET of
	// the project's endpoint list, free and allowed to roles/aiplatform.user.
	vertexCheckPath = "/endpoints"
	// vertexADC names the function's own identity as the credential.
	vertexADC = "adc"
	// vertexAnthropicVersion is the only version Vertex accepts, in the body.
	vertexAnthropicVersion = "vertex-2023-10-16"
	vertexScope            = "https://www.googleapis.com/auth/cloud-platform"
)

// A region names a host: global, a multi-region or region-zone digits.
var vertexRegion = regexp.MustCompile(`^(global|us|eu|[a-z]+-[a-z]+[0-9]{1,2})$`)

func checkVertexRegion(v string) error {
	if !vertexRegion.MatchString(v) {
		return errors.New("a Vertex AI region such as us-east5, europe-west1 or global")
	}
	return nil
}

// vertexClaudeTarget maps an Anthropic Messages request to Vertex: the
// model moves from the body to the path, the version into the body.
func vertexClaudeTarget(c *Call) (model, method string, body []byte, err error) {
	switch c.Path {
	case "/v1/messages":
		method = "rawPredict"
		if c.Stream {
			method = "streamRawPredict"
		}
		if body, err = sjson.DeleteBytes(c.Body, "model"); err != nil {
			return "", "", nil, err
		}
		model = vertexClaudeModel(c.Model)
	case "/v1/messages/count_tokens":
		// Vertex counts at a model of its own, the model named in the body.
		model, method = "count-tokens", "rawPredict"
		if body, err = sjson.SetBytes(c.Body, "model", vertexClaudeModel(c.Model)); err != nil {
			return "", "", nil, err
		}
	default:
		return "", "", nil, fmt.Errorf("no Vertex AI route for %s", c.Path)
	}
	body, err = sjson.SetBytes(body, "anthropic_version", vertexAnthropicVersion)
	return model, method, body, err
}

// anthropicDated is a model ID as Anthropic's API names it, with its date.
var anthropicDated = regexp.MustCompile(`^(claude-[a-z0-9.-]+)-([0-9]{8})$`)

// vertexClaudeModel names a model as Vertex does: Anthropic's
// claude-sonnet-4-5-20250929 is claude-sonnet-4-5@20250929 there, so the
// IDs Anthropic's SDKs know work too. Vertex IDs pass as they are.
func vertexClaudeModel(m string) string { return anthropicDated.ReplaceAllString(m, "$1@$2") }

// vertexGeminiTarget maps a Gemini request (…/models/{model}:{method}) to
// the same method of Google's publisher model on Vertex.
func vertexGeminiTarget(c *Call) (model, method string, body []byte, err error) {
	i := strings.LastIndexByte(c.Path, ':')
	if i < 0 {
		return "", "", nil, fmt.Errorf("no Vertex AI route for %s", c.Path)
	}
	switch method = c.Path[i+1:]; method {
	case "generateContent", "streamGenerateContent", "countTokens":
	default:
		return "", "", nil, fmt.Errorf("no Vertex AI route for %s", c.Path)
	}
	return c.Model, method, c.Body, nil
}

// outbound builds the Vertex request of publisher's model for a
// credential: host from the region, project path, bearer token. A token
// request is bounded by its own client, not by the request it serves: the
// token is kept for the requests after it.
func (a *vertexAuth) outbound(publisher string, target func(*Call) (string, string, []byte, error)) func(context.Context, *http.Request, *Call) ([]byte, error) {
	return func(_ context.Context, req *http.Request, c *Call) ([]byte, error) {
		cred, err := a.credential(c.Cred)
		if err != nil {
			return nil, err
		}
		region := cred.region
		if region == "" {
			region = c.Settings[vertexRegionVar]
		}
		base, err := url.Parse(vertexBase(c.Base, region))
		if err != nil || base.Host == "" {
			return nil, fmt.Errorf("GCP_VERTEX_BASE_URL %q does not make a URL for region %s", c.Base, region)
		}
		location := "/v1/projects/" + url.PathEscape(cred.project) + "/locations/" + url.PathEscape(region)
		var body []byte
		query := ""
		switch {
		case c.Check:
			req.Method = http.MethodGet
			location += "/endpoints"
			query = "pageSize=1"
		case c.Path == cloudModelsPath:
			// The publisher's models: a list of no project.
			location = "/v1beta1/publishers/" + publisher + "/models"
			query = c.Query
		default:
			model, method, b, err := target(c)
			if err != nil {
				return nil, err
			}
			if model == "" {
				return nil, users.Errorf(users.CodeInvalid, "The request names no model.")
			}
			location += "/publishers/" + publisher + "/models/" + url.PathEscape(model) + ":" + method
			body, query = b, c.Query
		}
		tok, err := cred.tokens.Token()
		if err != nil {
			return nil, fmt.Errorf("GCP_CREDENTIALS (%s): no access token: %w", cred.name, err)
		}
		raw := strings.TrimRight(base.EscapedPath(), "/") + location
		u := *base
		u.RawPath = raw
		if u.Path, err = url.PathUnescape(raw); err != nil {
			return nil, err
		}
		u.RawQuery = query
		req.URL, req.Host = &u, ""
		req.Header.Set("Authorization", tok.Type()+" "+tok.AccessToken)
		if body != nil {
			req.Header.Set("Content-Type", ContentJSON) // Vertex refuses a body of no type
		}
		return body, nil
	}
}

// vertexBase fills the region into the base URL template; the global
// region has a host without a region prefix.
func vertexBase(base, region string) string {
	if region == "global" {
		base = strings.ReplaceAll(base, "{region}-", "")
	}
	return strings.ReplaceAll(base, "{region}", region)
}

// vertexAuth keeps one token source per credential, so that a token is
// asked for once and reused by every request until near its expiry. The
// credentials are the operator's list: the map is as small as it is.
type vertexAuth struct {
	client   *http.Client // for token endpoints and the metadata server
	tokenURL string       // where the original's colon form gets tokens
	// findDefault finds the function's own credentials (ADC).
	findDefault func(ctx context.Context, scopes ...string) (*google.Credentials, error)

	mu    sync.Mutex
	creds map[string]*vertexCred
}

// tokenTimeout bounds one token request.
const tokenTimeout = 15 * time.Second

// tokenEarly renews a token this long before it expires, so no request
// leaves with a token that expires on the way.
const tokenEarly = 2 * time.Minute

func newVertexAuth() *vertexAuth {
	return &vertexAuth{client: &http.Client{Timeout: tokenTimeout}, tokenURL: google.JWTTokenURL,
		findDefault: google.FindDefaultCredentials, creds: map[string]*vertexCred{}}
}

type vertexCred struct {
	name    string // for logs: the account, never the key
	project string
	region  string // "" when GCP_REGION decides
	tokens  oauth2.TokenSource
}

// credential parses cred once and keeps its token source. A credential
// that fails (ADC not found yet) is tried again on the next request.
func (a *vertexAuth) credential(cred string) (*vertexCred, error) {
	key := cred
	if cred == vertexADC {
		// What ADC find depends on this variable (unset on GCP).
		key += "\x00" + os.Getenv("GOOGLE_APPLICATION_CREDENTIALS")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.creds[key]; ok {
		return c, nil
	}
	// The token source outlives any request: it is given a context of its
	// own, whose client bounds every token request.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, a.client)
	c, err := a.parse(ctx, cred)
	if err != nil {
		return nil, err
	}
	c.tokens = oauth2.ReuseTokenSourceWithExpiry(nil, c.tokens, tokenEarly)
	a.creds[key] = c
	return c, nil
}

// parse reads one GCP_CREDENTIALS entry: "adc", the original's
// project:email:region:privateKey, or a base64 service-account JSON.
func (a *vertexAuth) parse(ctx context.Context, cred string) (*vertexCred, error) {
	switch {
	case cred == vertexADC:
		dc, err := a.findDefault(ctx, vertexScope)
		if err != nil {
			return nil, fmt.Errorf("GCP_CREDENTIALS=adc: no Application Default Credentials: %w", err)
		}
		if dc.ProjectID == "" {
			return nil, errors.New("GCP_CREDENTIALS=adc: the Application Default Credentials name no project")
		}
		return &vertexCred{name: "application default credentials", project: dc.ProjectID, tokens: dc.TokenSource}, nil
	case strings.Count(cred, ":") >= 3:
		return a.parseColon(ctx, cred)
	}
	return parseServiceAccount(ctx, cred)
}

func (a *vertexAuth) parseColon(ctx context.Context, cred string) (*vertexCred, error) {
	parts := strings.SplitN(cred, ":", 4)
	project, email, region, key := parts[0], parts[1], parts[2], parts[3]
	if project == "" || !strings.Contains(email, "@") || key == "" {
		return nil, errors.New("GCP_CREDENTIALS: an entry is not project:email:region:privateKey")
	}
	if err := checkVertexRegion(region); err != nil {
		// Not quoted: in an entry written in another order, the key is in
		// the region's place.
		return nil, fmt.Errorf("GCP_CREDENTIALS (%s): an entry's third part is not a region: expected %w", email, err)
	}
	der, err := vertexPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("GCP_CREDENTIALS (%s): %w", email, err)
	}
	conf := &jwt.Config{Email: email, PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Scopes: []string{vertexScope}, TokenURL: a.tokenURL}
	return &vertexCred{name: email, project: project, region: region, tokens: conf.TokenSource(ctx)}, nil
}

// pemArmor is what the original strips from a stored private key: the PEM
// lines, real newlines and the \n escapes it stores them as.
var pemArmor = strings.NewReplacer("-----BEGIN PRIVATE KEY-----", "", "-----END PRIVATE KEY-----", "",
	`\n`, "", "\n", "", "\r", "", " ", "")

// vertexPrivateKey reads the original's private key: a PKCS#8 RSA key in
// base64, with or without its PEM lines.
func vertexPrivateKey(key string) ([]byte, error) {
	der, err := base64.StdEncoding.DecodeString(pemArmor.Replace(key))
	if err != nil {
		return nil, errors.New("the private key is not base64 (a service account's PKCS#8 key, PEM lines optional)")
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, errors.New("the private key is not a PKCS#8 key")
	}
	if _, ok := k.(*rsa.PrivateKey); !ok {
		return nil, errors.New("the private key is not an RSA key")
	}
	return der, nil
}

// parseServiceAccount reads a base64 service-account JSON; its token_uri
// is honoured.
func parseServiceAccount(ctx context.Context, cred string) (*vertexCred, error) {
	unknown := errors.New("GCP_CREDENTIALS: an entry is neither adc, project:email:region:privateKey nor a base64 service-account JSON")
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(cred, "=")); err != nil {
			return nil, unknown
		}
	}
	var sa struct {
		Type      string `json:"type"`
		ProjectID string `json:"project_id"`
		Email     string `json:"client_email"`
	}
	if err := json.Unmarshal(raw, &sa); err != nil {
		return nil, unknown
	}
	if sa.Type != "service_account" {
		return nil, errors.New("GCP_CREDENTIALS: a base64 entry is not a service-account JSON key (type service_account)")
	}
	if sa.ProjectID == "" {
		return nil, fmt.Errorf("GCP_CREDENTIALS (%s): the service-account JSON has no project_id", sa.Email)
	}
	conf, err := google.JWTConfigFromJSON(raw, vertexScope)
	if err != nil {
		return nil, fmt.Errorf("GCP_CREDENTIALS (%s): %w", sa.Email, err)
	}
	if _, err := vertexPEMKey(conf.PrivateKey); err != nil {
		return nil, fmt.Errorf("GCP_CREDENTIALS (%s): %w", sa.Email, err)
	}
	return &vertexCred{name: sa.Email, project: sa.ProjectID, tokens: conf.TokenSource(ctx)}, nil
}

func vertexPEMKey(p []byte) ([]byte, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, errors.New("the service-account JSON's private_key is not PEM")
	}
	return vertexPrivateKey(base64.StdEncoding.EncodeToString(block.Bytes))
}

// vertexKeyDead: 401 is a token Google refused; a 403 is the credential's
// when Google names a billing or API reason, or an IAM one about the
// call itself (aiplatform.endpoints.predict, or no permission named). An
// IAM denial of another permission is about a resource the request named
// (someone else's cachedContent): were it the credential's, any user
// could set every credential aside. Any other 403 or 404 (a model not
// enabled in the project) is the request's.
func vertexKeyDead(status int, body []byte) bool {
	if status == http.StatusUnauthorized {
		return true
	}
	if status != http.StatusForbidden {
		return false
	}
	return googleDetail(body, func(d gjson.Result) bool {
		switch reason := d.Get("reason").String(); {
		case reason == "IAM_PERMISSION_DENIED":
			perm := d.Get("metadata.permission").String()
			return perm == "" || perm == "aiplatform.endpoints.predict"
		default:
			return slices.Contains(vertexKeyReasons, reason)
		}
	})
}

var vertexKeyReasons = []string{"BILLING_DISABLED", "SERVICE_DISABLED", "CONSUMER_SUSPENDED", "CONSUMER_INVALID"}

// vertexGeminiInbound keeps the operator's project out of Vertex's errors.
func vertexGeminiInbound(resp *http.Response, _ *Call) error {
	if resp.StatusCode < 400 {
		return nil
	}
	body, err := vertexErrorBody(resp)
	if err != nil {
		return err
	}
	setErrorBody(resp, body)
	return nil
}

// vertexErrorBody reads an error answer, the operator's project hidden.
func vertexErrorBody(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	return vertexProject.ReplaceAll(body, []byte("${1}<project>")), nil
}

// vertexProject matches a project in a resource name: Vertex names a
// model the project cannot call (any user can name one) as
// projects/{project}/locations/…/models/{model}, and quota errors name
// their consumer (projects/{number}).
var vertexProject = regexp.MustCompile("(projects/)[^/\\s\"'`\\\\]+")

func setErrorBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// vertexClaudeInbound gives Vertex's own errors (Google's shape: a token
// refused, a quota, a model not enabled) the Anthropic shape clients of
// the mount read; Claude's errors pass as they are. The operator's
// project is hidden in both.
func vertexClaudeInbound(resp *http.Response, _ *Call) error {
	if resp.StatusCode < 400 {
		return nil
	}
	body, err := vertexErrorBody(resp)
	if err != nil {
		return err
	}
	g := gjson.GetBytes(body, "error")
	if !g.IsObject() {
		g = gjson.GetBytes(body, "0.error") // a streamed error comes in an array
	}
	if g.IsObject() && g.Get("status").Type == gjson.String {
		body = anthropicErrorBody(resp.StatusCode, &users.Error{Message: g.Get("message").String()})
		resp.Header.Set("Content-Type", ContentJSON)
	}
	setErrorBody(resp, body)
	return nil
}
