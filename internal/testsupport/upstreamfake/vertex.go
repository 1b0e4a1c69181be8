package upstreamfake

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Vertex imitates Google Vertex AI with its OAuth2 token endpoint: POST
// /token takes a service account's signed JWT (RFC 7523) and answers an
// access token; generation requests must carry one it issued, for the
// project of the account that asked for it. Claude answers as Anthropic
// does (rawPredict, streamRawPredict), Gemini as Google AI does.
//
// KeyStatus is keyed by the service account's email: a request made with
// that account's token gets the error as Vertex words it (401
// UNAUTHENTICATED, 403 IAM_PERMISSION_DENIED, 429 RESOURCE_EXHAUSTED).
const Vertex Kind = "gcp"

// VertexTokenPath is where the fake serves its token endpoint.
const VertexTokenPath = "/token"

const (
	vertexScope      = "https://www.googleapis.com/auth/cloud-platform"
	vertexJWTGrant   = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	vertexAPIVersion = "vertex-2023-10-16"
)

// vertexKey is the private key of every service account the fake makes:
// generated once per test binary (an RSA key takes a while to make).
var vertexKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// ServiceAccountEmail is the email of account name in project.
func ServiceAccountEmail(name, project string) string {
	return name + "@" + project + ".iam.gserviceaccount.com"
}

// ServiceAccountJSON is a service-account key file for account name of
// project, whose token_uri is the fake's token endpoint.
func (f *Fake) ServiceAccountJSON(name, project string) []byte {
	raw, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "fake-key-1",
		"private_key": string(VertexPrivateKeyPEM()), "client_email": ServiceAccountEmail(name, project),
		"client_id": "1234567890", "token_uri": f.URL + VertexTokenPath,
		"auth_uri": "https://accounts.google.com/o/oauth2/auth",
	})
	return raw
}

// VertexPrivateKeyPEM is the service accounts' private key, PKCS#8 PEM.
func VertexPrivateKeyPEM() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(vertexKey())
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// TokenRequests is how many access tokens were asked for.
func (f *Fake) TokenRequests() int {
	n := 0
	for _, r := range f.Requests() {
		if r.Path == VertexTokenPath {
			n++
		}
	}
	return n
}

// vertexToken is the access token issued for a JWT assertion: derived
// from it, so the fake needs no state besides the requests it recorded.
func vertexToken(assertion string) string {
	sum := sha256.Sum256([]byte(assertion))
	return "ya29.fake-" + hex.EncodeToString(sum[:12])
}

// tokenOwner finds the account the bearer token was issued to, or "".
func (f *Fake) tokenOwner(bearer string) string {
	for _, r := range f.Requests() {
		if r.Path != VertexTokenPath {
			continue
		}
		q, _ := url.ParseQuery(string(r.Body))
		if a := q.Get("assertion"); vertexToken(a) == bearer {
			if claims, err := f.verifyAssertion(a); err == nil {
				return claims.Iss
			}
		}
	}
	return ""
}

type jwtClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Exp   int64  `json:"exp"`
	Iat   int64  `json:"iat"`
}

// verifyAssertion checks a JWT the way Google's token endpoint does: an
// RS256 signature by the account's key, the endpoint as audience, a scope,
// not expired.
func (f *Fake) verifyAssertion(a string) (*jwtClaims, error) {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	var head struct {
		Alg string `json:"alg"`
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(h, &head) != nil || head.Alg != "RS256" {
		return nil, errors.New("the JWT header is not RS256")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("the JWT signature is not base64url")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&vertexKey().PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return nil, errors.New("Invalid JWT Signature.")
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c jwtClaims
	if err != nil || json.Unmarshal(p, &c) != nil {
		return nil, errors.New("the JWT claims are not JSON")
	}
	switch {
	case c.Aud != f.URL+VertexTokenPath:
		return nil, errors.New("Invalid JWT: the audience is not this token endpoint.")
	case !strings.Contains(" "+c.Scope+" ", " "+vertexScope+" "):
		return nil, errors.New("Invalid JWT: no cloud-platform scope.")
	case c.Exp < time.Now().Unix():
		return nil, errors.New("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
	case !strings.HasSuffix(c.Iss, ".iam.gserviceaccount.com"):
		return nil, errors.New("Invalid JWT: the issuer is not a service account.")
	}
	return &c, nil
}

func serveVertexToken(f *Fake, x *exchange) {
	q, _ := url.ParseQuery(string(x.req.Body))
	if x.r.Method != http.MethodPost || q.Get("grant_type") != vertexJWTGrant {
		x.json(http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})
		return
	}
	if _, err := f.verifyAssertion(q.Get("assertion")); err != nil {
		x.json(http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": err.Error()})
		return
	}
	x.json(http.StatusOK, map[string]any{"access_token": vertexToken(q.Get("assertion")), "token_type": "Bearer", "expires_in": 3599})
}

// vertexPath is /v1/projects/{p}/locations/{r}/(endpoints | publishers/{pub}/models/{model}:{method}).
var vertexPath = regexp.MustCompile(`^/v1/projects/([^/]+)/locations/([a-z0-9-]+)/(endpoints|publishers/(anthropic|google)/models/([^/:]+):([A-Za-z]+))$`)

// vertexModelList is a publisher's model list, which names no project.
var vertexModelList = regexp.MustCompile(`^/v1beta1/publishers/(anthropic|google)/models$`)

// vertexPublisherModels are the models each publisher lists, as Vertex
// lists them: Claude's version is its date.
var vertexPublisherModels = map[string][]any{
	"anthropic": {
		vertexPublisherModel("anthropic", "claude-sonnet-4-5", "20250929"),
		vertexPublisherModel("anthropic", "claude-opus-4-1", "20250805"),
		vertexPublisherModel("anthropic", "claude-haiku-4-5", "20251001"),
	},
	"google": {
		vertexPublisherModel("google", "gemini-2.5-flash", "001"),
		vertexPublisherModel("google", "gemini-2.5-pro", "001"),
	},
}

func vertexPublisherModel(publisher, model, version string) map[string]any {
	return map[string]any{"name": "publishers/" + publisher + "/models/" + model, "versionId": version,
		"openSourceCategory": "PROPRIETARY", "launchStage": "GA", "versionState": "VERSION_STATE_STABLE"}
}

func serveVertex(f *Fake, x *exchange) {
	if x.r.URL.Path == VertexTokenPath {
		serveVertexToken(f, x)
		return
	}
	bearer, ok := strings.CutPrefix(x.r.Header.Get("Authorization"), "Bearer ")
	owner := ""
	if ok {
		owner = f.tokenOwner(bearer)
	}
	if owner == "" {
		x.json(http.StatusUnauthorized, googleError(http.StatusUnauthorized, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."))
		return
	}
	if s, ok := x.b.KeyStatus[owner]; ok {
		vertexKeyError(x, s, owner)
		return
	}
	if pub := vertexModelList.FindStringSubmatch(x.r.URL.Path); pub != nil && x.r.Method == http.MethodGet {
		if x.b.Status != 0 {
			x.json(x.b.Status, googleError(x.b.Status, "The fake upstream was told to fail."))
			return
		}
		x.json(http.StatusOK, map[string]any{"publisherModels": vertexPublisherModels[pub[1]]})
		return
	}
	m := vertexPath.FindStringSubmatch(x.r.URL.Path)
	if m == nil {
		notFound(x, googleError)
		return
	}
	project, resource, publisher, model, method := m[1], m[3], m[4], m[5], m[6]
	// The account's own project only (the fake grants no other).
	if !strings.HasSuffix(owner, "@"+project+".iam.gserviceaccount.com") {
		vertexKeyError(x, http.StatusForbidden, owner)
		return
	}
	if resource == "endpoints" {
		if x.r.Method != http.MethodGet {
			notFound(x, googleError)
			return
		}
		x.json(http.StatusOK, map[string]any{})
		return
	}
	if x.r.Method != http.MethodPost {
		notFound(x, googleError)
		return
	}
	if x.b.Status == http.StatusNotFound {
		// As Vertex tells a model the project cannot call: by its full
		// resource name, the project's id in it.
		x.json(http.StatusNotFound, googleError(http.StatusNotFound, "Publisher Model `projects/"+project+"/locations/"+m[2]+
			"/publishers/"+publisher+"/models/"+model+"` was not found or your project does not have access to it."))
		return
	}
	if x.b.Status != 0 {
		x.json(x.b.Status, googleError(x.b.Status, "The fake upstream was told to fail."))
		return
	}
	if publisher == "anthropic" {
		serveVertexClaude(x, model, method)
		return
	}
	switch method {
	case "generateContent", "streamGenerateContent":
		serveGenerate(x, model, method)
	case "countTokens":
		x.json(http.StatusOK, map[string]any{"totalTokens": x.b.InputTokens})
	default:
		notFound(x, googleError)
	}
}

// serveVertexClaude answers as Vertex does: the model in the path, none
// in the body, the Vertex version in the body.
func serveVertexClaude(x *exchange, model, method string) {
	m := x.body()
	if _, has := m["model"]; has && model != "count-tokens" {
		x.json(http.StatusBadRequest, anthropicError(http.StatusBadRequest, "model: Extra inputs are not permitted"))
		return
	}
	if v, _ := m["anthropic_version"].(string); v != vertexAPIVersion {
		x.json(http.StatusBadRequest, anthropicError(http.StatusBadRequest, "anthropic_version: Input should be '"+vertexAPIVersion+"'"))
		return
	}
	if msg := claudeThinkingProblem(m); msg != "" && model != "count-tokens" {
		x.json(http.StatusBadRequest, anthropicError(http.StatusBadRequest, msg))
		return
	}
	switch {
	case model == "count-tokens" && method == "rawPredict":
		x.json(http.StatusOK, map[string]any{"input_tokens": x.b.InputTokens})
	case method == "rawPredict" && !isStream(m):
		m["model"] = model
		content, stop := anthropicContent(x)
		x.json(http.StatusOK, message(x, m, content, stop, x.b.OutputTokens))
	case method == "streamRawPredict" && isStream(m):
		m["model"] = model
		messagesStream(x, m)
	default:
		x.json(http.StatusBadRequest, anthropicError(http.StatusBadRequest, "stream does not match "+method))
	}
}

// vertexKeyError is Vertex's refusal of an account, in Google's shape.
func vertexKeyError(x *exchange, status int, owner string) {
	if status != http.StatusForbidden {
		x.json(status, googleError(status, keyErrorMessage(status, owner)))
		return
	}
	x.json(status, map[string]any{"error": map[string]any{
		"code": 403, "status": "PERMISSION_DENIED",
		"message": "Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com" + x.r.URL.Path + "' (or it may not exist).",
		"details": []any{map[string]any{
			"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
			"domain": "aiplatform.googleapis.com", "metadata": map[string]any{"permission": "aiplatform.endpoints.predict"},
		}},
	}})
}
