// Package providers is everything tollgate knows about each upstream API,
// one file per provider: its routes, where its key goes, where requests
// name their model and output limit, how its answers report usage (whole
// and streamed), how its streams are framed, its error shapes and fake
// answers, the answers that mean its key is dead, and its configuration
// names. The proxy and the configuration only ask these values; neither
// names a provider.
package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/tidwall/gjson"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// Provider is one upstream API.
type Provider struct {
	ID   models.Provider // also its mount: /openai
	Name string          // for messages: "OpenAI"
	Env  Env
	// Routes are the routes served under the mount; the router and the
	// service-info page are both built from them.
	Routes []Route
	// SDKPath is appended to the mount to form the base URL an SDK takes.
	SDKPath string
	// SetKey puts the operator's key where the provider expects it (nil
	// when Outbound does).
	SetKey func(h http.Header, key string)
	// Outbound, when set, adapts every upstream attempt to a service whose
	// credentials are more than a header (a cloud API): it is given the
	// request as tollgate built it (URL = base URL + path under the mount,
	// unless the base is a template; the forwarded headers, Prepare
	// applied, no key) and the call, and sets what the service needs:
	// host, path, body, signature or token. It returns the body to send.
	// It runs for each key tried, so it must not keep the request. A
	// *users.Error it returns refuses the request (the client's error);
	// any other error is the operator's (502).
	Outbound func(ctx context.Context, req *http.Request, c *Call) ([]byte, error)
	// Inbound, when set, adapts the upstream's answer (any status) before
	// tollgate reads it: a binary event stream becomes the SSE its format
	// reads, an error becomes the error shape clients of the mount expect.
	Inbound func(resp *http.Response, c *Call) error
	// AnswerModel (nil: the request's model stands) reads the model a
	// whole 2xx answer names, when the service and not the request chose
	// it (an Azure deployment's): the request is counted in its family.
	AnswerModel func(body []byte) string
	// Headers are the client headers forwarded besides the common ones.
	Headers []string
	// Prepare fills in headers the upstream requires (nil: none).
	Prepare func(h http.Header)
	// ErrorBody renders a proxy-made error in the provider's shape.
	ErrorBody func(status int, e *users.Error) []byte
	// KeyDead reports, from an error answer's status and body, that the
	// key itself is bad (invalid, revoked, out of credit), as opposed to a
	// refusal the request provoked.
	KeyDead func(status int, body []byte) bool
	// Elsewhere (nil: never) reports an error answer that another key may
	// not give, though this one is not bad: an Azure deployment of a model
	// without the route's operation. The request is tried on the next key.
	Elsewhere func(status int, body []byte) bool
	// CheckPath is a free GET (the model list) that tells whether a key
	// set aside works again.
	CheckPath string
	// Framing is how streamed answers are framed.
	Framing Framing
	// UnlimitedOutput is the most output the provider's models write for
	// a request that names no output limit, or 0: what the quota reserves
	// for one that no clamp bounds (MAX_OUTPUT_TOKENS_…=0). 0 where the
	// API requires a limit (Anthropic's) or the routes have none.
	UnlimitedOutput int64
	// ImageTokens is what the prompt estimate counts for each image input
	// (the text estimate leaves image data out): about what the provider
	// bills a large image, as tokens of the prompt.
	ImageTokens int64

	router router
}

// The output a request naming no limit may be given, by provider
// (Provider.UnlimitedOutput): the largest maximum of the provider's
// models, as their documentation gives it.
const (
	// GPT-5 pro's 272,000 (GPT-5's 128,000, the o-series' 100,000).
	openAIUnlimitedOutput = 272_000
	// Gemini 2.5's and 3's 65,536.
	googleUnlimitedOutput = 65_536
	// Mistral bounds the output by the context window alone: the
	// largest, 256k (Mistral Large 3, Devstral 2).
	mistralUnlimitedOutput = 262_144
)

// The tokens the prompt estimate counts for each image input, by
// provider (Provider.ImageTokens): what one large image is billed.
const (
	// A high-detail image at its largest (768×2048: 85 + 8 tiles × 170)
	// on GPT-4o, GPT-4.1 and the o-series.
	openAIImageTokens = 1_445
	// About width × height / 750, an image being scaled down to about
	// 1.15 megapixels: about 1,600 at most.
	anthropicImageTokens = 1_600
	// Gemini 3's default resolution for images (high: 1,120); Gemini 2
	// bills 258 for each 768-pixel tile.
	googleImageTokens = 1_120
	// Pixtral's largest image, 1024×1024 pixels in 16-pixel patches: 64
	// rows of 64, and a break after each row.
	mistralImageTokens = 4_160
)

// Env names the provider's configuration variables.
type Env struct {
	// Key is the comma list of upstream keys or credentials: OPENAI_KEY.
	// Providers that share it (Bedrock's Claude and Mistral mounts) share
	// their keys, and which of them are set aside.
	Key     string
	BaseURL string // OPENAI_BASE_URL
	// MaxOutput is MAX_OUTPUT_TOKENS_OPENAI; providers may share one.
	MaxOutput string
	// DefaultBaseURL may be a template with {placeholders} that Outbound
	// fills in per credential (https://bedrock-runtime.{region}.amazonaws.com).
	DefaultBaseURL string
	// Settings are the provider's other variables (GCP_REGION).
	Settings []Setting
	// CheckKey validates one entry of Key as the operator gave it (nil:
	// any); its error says what is accepted and never quotes a secret.
	// Entries that are Secret Manager references are checked by Outbound
	// once resolved.
	CheckKey func(entry string) error
}

// Setting is a provider variable besides its keys, base URL and clamp.
type Setting struct {
	Name    string
	Default string
	// Check validates a value (nil: any); its error says what is accepted.
	Check func(v string) error
}

// Upstream is where a provider's requests go, as configured.
type Upstream struct {
	Base     string            // the base URL, or its template
	Settings map[string]string // values of Env.Settings, by name
}

// Call is one upstream request, as Outbound and Inbound see it.
type Call struct {
	Upstream
	Cred   string // the key or credential tried, as the operator gave it
	Path   string // the path under the mount, as forwarded
	Query  string // the query, as forwarded
	Model  string
	Stream bool
	Body   []byte // the body as forwarded (nil: none)
	// Check: a key check (GET CheckPath), not a client's request.
	Check bool
	// Answered is the model that answered, when the service and not the
	// request chose it (an Azure deployment's): Inbound sets it from a
	// 2xx stream's first events, and the request is counted in its
	// family (whole answers: Provider.AnswerModel).
	Answered string
	// Built is the capacity of the body Outbound built anew for the
	// service (Bedrock's, Vertex's Claude), held beside Body while the
	// request lasts; 0 when it sends Body itself.
	Built int64
}

// Framing says how a provider frames streamed answers.
type Framing struct {
	// SSE reports whether a streamed request asked for server-sent events;
	// nil: streams are always SSE. Otherwise a stream is one JSON array
	// whose elements arrive one by one (Google without alt=sse).
	SSE func(r *http.Request) bool
	// EndsAtEOF: streams have no end event; a clean end of the body is the
	// end of the answer.
	EndsAtEOF bool
}

// StreamsSSE reports whether a streamed answer to r comes as SSE.
func (p *Provider) StreamsSSE(r *http.Request) bool { return p.Framing.SSE == nil || p.Framing.SSE(r) }

// Route is one route under a provider's mount.
type Route struct {
	Method string
	// Pattern is the path under the mount; "{model}" stands for a path
	// segment (or the part of one before a literal suffix such as
	// ":generateContent") naming the model.
	Pattern string
	Format  *Format
	// Stream: the path itself asks for a streamed answer.
	Stream bool
	// Unlisted routes are served but not shown on the service-info page
	// (aliases of a listed route).
	Unlisted bool
	// Query lists the query parameters passed upstream, each with the
	// values allowed (nil: any). Every other parameter is dropped, so no
	// client can ask for an answer format that hides its usage.
	Query map[string][]string
	// Translate, when set, serves the route (of Format, another API's
	// shape) from the provider's own API.
	Translate *Translation
}

// Translation serves a route of another API (OpenAI chat) from the
// provider's own: the request becomes a native one and the answer is
// translated back, a stream event by event as it arrives. The route's
// Format is the client's: limits, usage and errors are read in it.
type Translation struct {
	// Native is the native request: its path under the mount and query.
	Native func(model string, stream bool) (path, query string)
	// Request translates the client's body (parsed, limits clamped) to
	// the native body; what cannot be translated is a *users.Error
	// naming the field.
	Request func(rq *Request) ([]byte, error)
	// Response translates the native answer (any status; the provider's
	// Inbound already applied) to the client's format.
	Response func(resp *http.Response, rq *Request) error
	// ErrorBody renders the proxy's own errors in the client's shape
	// (nil: the provider's).
	ErrorBody func(status int, e *users.Error) []byte
}

// Endpoint is a matched route.
type Endpoint struct {
	Route     string // "POST /openai/v1/chat/completions", for logs
	Format    *Format
	Model     string // from the path
	Stream    bool   // from the path
	Translate *Translation
	query     map[string][]string
}

// Query is the query passed upstream: the route's parameters only. A
// parameter given a value the route does not allow is refused (an answer
// format such as Google's alt=proto would hide the usage to charge), and
// so is one of those given twice: the proxy frames the answer by one
// value, the upstream might answer by the other.
func (ep Endpoint) Query(q url.Values) (string, error) {
	if len(q) == 0 {
		return "", nil
	}
	out := url.Values{}
	for name, vals := range q {
		key := strings.TrimPrefix(name, "$") // $alt is Google's alias of alt
		allowed, ok := ep.query[key]
		if !ok {
			continue
		}
		for _, v := range vals {
			if allowed != nil && !slices.Contains(allowed, v) {
				return "", users.Errorf(users.CodeInvalid, "The query parameter %s=%s is not supported here; accepted: %s.", name, v, strings.Join(allowed, ", "))
			}
			out.Add(key, v)
		}
		if allowed != nil && len(out[key]) > 1 {
			return "", users.Errorf(users.CodeInvalid, "The query parameter %s may be given only once.", key)
		}
	}
	return out.Encode(), nil
}

// altSSE reports whether a Google request asks for SSE (alt=sse or its
// alias $alt=sse; Query refuses both at once).
func altSSE(r *http.Request) bool {
	q := r.URL.Query()
	return q.Get("alt") == "sse" || q.Get("$alt") == "sse"
}

// CommonHeaders are forwarded to every upstream. Everything else the
// client sent (cookies, Origin, organisation headers, forwarding headers,
// Accept-Encoding: the transport negotiates compression itself) stays
// behind.
var CommonHeaders = []string{"Content-Type", "Accept", "User-Agent"}

// All lists the providers in a stable order; adding a provider is one
// file and one line here.
func All() []*Provider {
	return []*Provider{openAI, anthropic, googleAI, mistralAI, openAIImage, awsClaude, awsMistral, gcpClaude, gcpGemini, azureOpenAI}
}

// The providers, built once: their routers are compiled from their routes.
var (
	openAI     = newProvider(openAIProvider())
	anthropic  = newProvider(anthropicProvider())
	googleAI   = newProvider(googleProvider())
	mistralAI  = newProvider(mistralProvider())
	awsClaude  = newProvider(awsClaudeProvider())
	awsMistral = newProvider(awsMistralProvider())
	// Both Vertex mounts share one token cache: a token serves either.
	gcpTokens = newVertexAuth()
	gcpClaude = newProvider(vertexClaudeProvider(gcpTokens))
	gcpGemini = newProvider(vertexGeminiProvider(gcpTokens))
)

var azureOpenAI = newProvider(azureProvider())

func newProvider(p *Provider) *Provider {
	p.router = newRouter(string(p.ID), p.Routes)
	return p
}

// Match finds the endpoint of a path under the provider's mount.
func (p *Provider) Match(method, path string) (Endpoint, bool) { return p.router.match(method, path) }

// Resolve is Match, and a path that names no API version is also tried
// under /v1 (/openai/chat/completions is /openai/v1/chat/completions, as
// in the original): it returns the path matched.
func (p *Provider) Resolve(method, path string) (Endpoint, string, bool) {
	if ep, ok := p.router.match(method, path); ok {
		return ep, path, true
	}
	if ep, ok := p.router.match(method, "/v1"+path); ok {
		return ep, "/v1" + path, true
	}
	return Endpoint{}, "", false
}

// ListedRoutes are the routes shown on the service-info page.
func (p *Provider) ListedRoutes() []string {
	var out []string
	for _, r := range p.Routes {
		if !r.Unlisted {
			out = append(out, r.Method+" "+r.Pattern)
		}
	}
	return out
}

// router matches paths against compiled route patterns; the endpoints,
// their log routes included, are built once, not per request.
type router struct{ routes []compiled }

type compiled struct {
	method   string
	segments []string // literal segments; "{model}…" holds the suffix after it
	model    int      // index of the model segment, -1 when none
	suffix   string   // literal after {model} in its segment
	ep       Endpoint
}

const modelParam = "{model}"

func newRouter(mount string, routes []Route) router {
	var rt router
	for _, r := range routes {
		c := compiled{method: r.Method, segments: strings.Split(strings.TrimPrefix(r.Pattern, "/"), "/"), model: -1,
			ep: Endpoint{Route: r.Method + " /" + mount + r.Pattern, Format: r.Format, Stream: r.Stream, Translate: r.Translate, query: r.Query}}
		for i, s := range c.segments {
			if rest, ok := strings.CutPrefix(s, modelParam); ok {
				c.model, c.suffix = i, rest
			}
		}
		rt.routes = append(rt.routes, c)
	}
	return rt
}

func (rt router) match(method, path string) (Endpoint, bool) {
	path, ok := strings.CutPrefix(path, "/")
	if !ok {
		return Endpoint{}, false
	}
	n := strings.Count(path, "/") + 1
	for i := range rt.routes {
		c := &rt.routes[i]
		if c.method != method || len(c.segments) != n {
			continue
		}
		if ep, ok := c.match(path); ok {
			return ep, true
		}
	}
	return Endpoint{}, false
}

func (c *compiled) match(path string) (Endpoint, bool) {
	ep := c.ep
	for i, want := range c.segments {
		seg, rest, _ := strings.Cut(path, "/")
		path = rest
		if i != c.model {
			if seg != want {
				return Endpoint{}, false
			}
			continue
		}
		model, ok := strings.CutSuffix(seg, c.suffix)
		// A model named before an action (models/x:generateContent) holds
		// no colon of its own.
		if !ok || model == "" || c.suffix != "" && strings.Contains(model, ":") {
			return Endpoint{}, false
		}
		if c.ep.Format.Body {
			ep.Model = model
		}
	}
	return ep, true
}

func bearer(h http.Header, key string) { h.Set("Authorization", "Bearer "+key) }

// headerKey checks a key sent in a header: no space, tab, line break or
// other control character, which no key holds and no header can carry
// (a list written one key a line would make every request fail).
func headerKey(entry string) error {
	for _, r := range entry {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) {
			return errors.New("a key holds a space, line break or control character; separate keys with commas")
		}
	}
	return nil
}

// Key-failure signals are read from an error's structure, never looked
// for anywhere in its body: error messages quote what the request sent.

// errorCode is the first of paths that holds a string in an error
// answer's body.
func errorCode(body []byte, paths ...string) string {
	for _, p := range paths {
		if r := gjson.GetBytes(body, p); r.Type == gjson.String {
			return r.String()
		}
	}
	return ""
}

// googleReasonIn reports whether a Google error (whole, or the first
// element of a stream's array) names one of reasons in its details.
func googleReasonIn(body []byte, reasons []string) bool {
	return googleDetail(body, func(d gjson.Result) bool { return slices.Contains(reasons, d.Get("reason").String()) })
}

// googleDetail reports whether any of a Google error's details (the error
// whole, or the first element of a stream's array) meets match.
func googleDetail(body []byte, match func(d gjson.Result) bool) bool {
	e := gjson.GetBytes(body, "error")
	if !e.IsObject() {
		e = gjson.GetBytes(body, "0.error")
	}
	found := false
	e.Get("details").ForEach(func(_, d gjson.Result) bool {
		found = match(d)
		return !found
	})
	return found
}

// Authorize gives req the call's credential: SetKey, or Outbound with the
// body it returns (the call's body, adapted) set on req.
func (p *Provider) Authorize(ctx context.Context, req *http.Request, c *Call) error {
	if p.Outbound == nil {
		p.SetKey(req.Header, c.Cred)
		return nil
	}
	body, err := p.Outbound(ctx, req, c)
	if err != nil {
		return err
	}
	c.Built = 0
	if len(body) > 0 && (len(c.Body) == 0 || &body[0] != &c.Body[0]) {
		c.Built = int64(cap(body))
	}
	if body == nil {
		req.Body, req.ContentLength, req.GetBody = http.NoBody, 0, nil
		return nil
	}
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Body, _ = req.GetBody()
	return nil
}

// Mount finds what is mounted at the start of path, by mount name: a
// mount is one segment (/openai) or two (/aws/claude). It returns the rest
// of the path ("/" at least).
func Mount[T any](path string, byMount map[string]T) (T, string, bool) {
	first, after, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if v, ok := byMount[first]; ok {
		return v, restOf(path, after), true
	}
	if second, after2, _ := strings.Cut(after, "/"); second != "" {
		if v, ok := byMount[first+"/"+second]; ok {
			return v, restOf(path, after2), true
		}
	}
	var zero T
	return zero, "", false
}

// restOf is "/" + after, where after is the tail of path that follows a
// slash (or empty): sliced from path, not copied.
func restOf(path, after string) string {
	if after == "" {
		return "/"
	}
	return path[len(path)-len(after)-1:]
}

// Fallback shapes the errors of paths under no provider's mount: OpenAI's
// shape is the lingua franca of LLM clients.
func Fallback() *Provider { return openAI }

// CheckKey asks the provider's model list (free on every provider) with a
// key, at up: 2xx means the key works; the provider's bad-key signals mean
// it does not; anything else (an outage) is an error, the key's state
// unknown.
func (p *Provider) CheckKey(ctx context.Context, rt http.RoundTripper, up Upstream, key string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream.invalid", nil)
	if err != nil {
		return false, err
	}
	if base, err := url.Parse(up.Base); err == nil && base.Host != "" {
		u := *base
		u.Path = strings.TrimRight(u.Path, "/") + p.CheckPath
		req.URL = &u
	}
	if p.Prepare != nil {
		p.Prepare(req.Header)
	}
	if err := p.Authorize(ctx, req, &Call{Upstream: up, Cred: key, Path: p.CheckPath, Check: true}); err != nil {
		return false, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		return true, nil
	case p.KeyDead(resp.StatusCode, body):
		return false, nil
	}
	return false, errors.New("the key check answered " + resp.Status)
}
