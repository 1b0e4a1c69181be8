package proxy

import (
	"net/http"
	"strings"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// provider is everything that differs between upstream APIs: its routes
// (and so which API format each speaks), where its key goes, which client
// headers it needs, and its error shape. Each lives in one file.
type provider struct {
	id   models.Provider
	name string // for messages: "OpenAI"
	// match finds the endpoint of a path under the provider's mount.
	match func(method, path string) (endpoint, bool)
	// setKey puts the operator's key where the provider expects it.
	setKey func(h http.Header, key string)
	// headers are the client headers forwarded besides the common ones.
	headers []string
	// prepare fills in headers the upstream requires.
	prepare func(h http.Header)
	// errorBody renders a proxy-made error in the provider's shape.
	errorBody func(status int, e *users.Error) []byte
	// keyDead reports, from an error answer's status and body, that the
	// key itself is unusable (401 and 403 always are).
	keyDead func(status int, body []byte) bool
	// sdkPath is appended to the mount to form the base URL an SDK takes.
	sdkPath string
	// modelsPath is the upstream's model list.
	modelsPath string
}

// endpoint is one matched route.
type endpoint struct {
	route  string // the route's pattern, for logs
	format *apiFormat
	model  string // from the path (Google)
	stream bool   // from the path (Google)
}

// allProviders lists the adapters; adding a provider is one file and one
// line here.
func allProviders() []*provider {
	return []*provider{openAIProvider(), anthropicProvider(), googleProvider(), mistralProvider()}
}

// exactRoutes matches a table of "METHOD /path" routes, plus GET of one
// model under the models path. The endpoints, their log routes included,
// are built once, not per request.
func exactRoutes(mount string, table map[string]*apiFormat, modelsPath string) func(method, path string) (endpoint, bool) {
	byMethod := map[string]map[string]endpoint{}
	for key, f := range table {
		method, path, _ := strings.Cut(key, " ")
		if byMethod[method] == nil {
			byMethod[method] = map[string]endpoint{}
		}
		byMethod[method][path] = endpoint{route: method + " /" + mount + path, format: f}
	}
	oneModel := endpoint{route: "GET /" + mount + modelsPath + "/{model}", format: fmtList}
	return func(method, path string) (endpoint, bool) {
		if ep, ok := byMethod[method][path]; ok {
			return ep, true
		}
		if method == http.MethodGet && strings.HasPrefix(path, modelsPath+"/") && !strings.Contains(path[len(modelsPath)+1:], "/") {
			return oneModel, true
		}
		return endpoint{}, false
	}
}

// commonHeaders are forwarded to every upstream. Everything else the
// client sent (cookies, Origin, organisation headers, forwarding headers,
// Accept-Encoding: the transport negotiates compression itself) stays
// here.
var commonHeaders = []string{"Content-Type", "Accept", "User-Agent"}

func bearer(h http.Header, key string) { h.Set("Authorization", "Bearer "+key) }
