// Package proxy is the proxy Cloud Function: it authenticates each request
// through the gatekeeper, applies limits, forwards it to the upstream
// provider with the operator's key (net/http/httputil.ReverseProxy),
// relays the answer (streams chunk by chunk) and charges the usage.
package proxy

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// Options tune the handler; the zero value is the production setting.
type Options struct {
	// Transport sends upstream requests (default: a tuned http.Transport
	// shared by every request of the instance).
	Transport http.RoundTripper
	// ResponseHeaderTimeout bounds the wait for an upstream's first byte
	// with the default transport (default 5 minutes: long prompts to large
	// models take a while before they answer).
	ResponseHeaderTimeout time.Duration
	// MaxBodyBytes caps request bodies (default 32 MiB).
	MaxBodyBytes int64
	// UpstreamTimeout bounds a whole proxied request, stream included
	// (default 30 minutes).
	UpstreamTimeout time.Duration
	// MemoryWait bounds how long a body waits for room in the instance's
	// memory budget (default 15 seconds; see memBudget).
	MemoryWait time.Duration
	// MaxAnswer caps how much of a whole answer is held to read its usage
	// (default maxAnswer).
	MaxAnswer int
}

const (
	defaultMaxBody         = 32 << 20
	defaultHeaderTimeout   = 5 * time.Minute
	defaultUpstreamTimeout = 30 * time.Minute
	// maxAnswer caps how much of a whole (non-streamed) answer is held to
	// read its usage; larger answers are relayed as they come.
	maxAnswer = 64 << 20
)

// Deps are what the proxy is built from, as admin is.
type Deps = web.Deps

// New is the proxy function's handler.
func New(d Deps) http.Handler { return NewWithOptions(d, Options{}) }

// NewWithOptions is New with tuning (tests, benchmarks).
func NewWithOptions(d Deps, o Options) http.Handler {
	cfg := d.Config
	clientIP := func(r *http.Request) string { return netutil.ClientIP(r, cfg.TrustedProxies) }
	h := newHandler(d, o)
	h.lookup = lookupHandler(d, clientIP, h.gk.IPs())
	h.captcha = captchaHandler(d, clientIP, h.gk.IPs())
	return web.Mount("proxy", logging.Middleware(d.Log, cfg.Project, clientIP, h, cfg.AdminKey, cfg.ProxyKey))
}

// handler routes proxy requests; one per instance.
type handler struct {
	cfg     *config.Config
	gk      *gatekeeper.Gatekeeper
	log     zerolog.Logger
	now     func() time.Time
	up      map[string]*upstream // by mount name
	rp      *httputil.ReverseProxy
	lookup  http.Handler
	captcha http.Handler
	maxBody int64
	timeout time.Duration
	// lowerSecrets are every upstream key (of 4 bytes or more), lower
	// case, scrubbed from relayed error text and headers.
	lowerSecrets []string
	chunks       *chunkPool // read buffers of relayed streams
	mem          *memBudget // what bodies in flight may take together
	maxAnswer    int        // Options.MaxAnswer
}

// upstream is a provider as configured: adapter, base URL and keys.
type upstream struct {
	prov   *providers.Provider
	base   *url.URL // nil when the base URL is a template Outbound fills in
	target providers.Upstream
	keys   *keyPool
}

// usable reports whether requests can be sent: a base URL, or a provider
// that builds its own.
func (up *upstream) usable() bool { return up.base != nil || up.prov.Outbound != nil }

func newHandler(d Deps, o Options) *handler {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	h := &handler{
		cfg:       d.Config,
		gk:        gatekeeper.New(d.Config, d.Store, now),
		log:       d.Log,
		now:       now,
		up:        map[string]*upstream{},
		maxBody:   o.MaxBodyBytes,
		timeout:   o.UpstreamTimeout,
		chunks:    newChunkPool(),
		mem:       newMemBudget(d.Config.BodyMemoryMB, o.MemoryWait),
		maxAnswer: o.MaxAnswer,
	}
	h.gk.OnEventError(func(token string, err error) {
		h.log.Warn().Err(err).Str("token", logging.TokenTail(token)).Msg("request event could not be recorded (EVENT_LOGGING); the charge is kept")
	})
	if h.maxBody <= 0 {
		h.maxBody = defaultMaxBody
	}
	if h.timeout <= 0 {
		h.timeout = defaultUpstreamTimeout
	}
	if h.maxAnswer <= 0 {
		h.maxAnswer = maxAnswer
	}
	// Providers that share a key variable share its pool: a key set aside
	// on one mount is set aside on the others.
	pools := map[string]*keyPool{}
	for _, p := range providers.All() {
		raw := d.Config.BaseURLs[p.ID]
		base, err := url.Parse(raw)
		if err != nil || base.Host == "" || strings.ContainsAny(raw, "{}") {
			// config validated it; a template is Outbound's to fill in.
			base = nil
		}
		keys := d.Config.ProviderKeys[p.ID]
		pool, shared := pools[p.Env.Key]
		if !shared {
			for _, k := range keys {
				if len(k) >= 4 {
					h.lowerSecrets = append(h.lowerSecrets, string(asciiLower([]byte(k))))
				}
				// A credential of parts (resource:deployment:key): an
				// upstream may quote its key alone.
				for _, part := range strings.Split(k, ":")[1:] {
					if len(part) >= 16 {
						h.lowerSecrets = append(h.lowerSecrets, string(asciiLower([]byte(part))))
					}
				}
			}
			pool = newKeyPool(p.Name, keys, d.Log)
			pools[p.Env.Key] = pool
		}
		h.up[string(p.ID)] = &upstream{prov: p, base: base, keys: pool,
			target: providers.Upstream{Base: raw, Settings: d.Config.ProviderSettings}}
	}
	transport := o.Transport
	if transport == nil {
		transport = newTransport(o.ResponseHeaderTimeout)
	}
	for _, up := range h.up {
		up.keys.now = now
		if up.usable() && up.prov.CheckPath != "" && up.keys.check == nil {
			up.keys.check = newKeyCheck(up, transport)
		}
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { exchangeFrom(pr.In.Context()).rewrite(pr) },
		Transport: &keyTransport{base: transport},
		// 0, not -1: ReverseProxy already flushes every chunk of a stream
		// (text/event-stream, or no Content-Length, as relayed streams
		// are) at once. -1 would also apply to whole answers, where it
		// costs a timer goroutine per response that flushes the headers
		// apart from the body (two writes instead of one).
		FlushInterval:  0,
		ModifyResponse: func(resp *http.Response) error { return exchangeFrom(resp.Request.Context()).modifyResponse(resp) },
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			exchangeFrom(r.Context()).upstreamFailed(err)
		},
		BufferPool: newBufferPool(),
		ErrorLog:   log.New(debugWriter{d.Log}, "", 0),
	}
	return h
}

// newTransport is the instance's one upstream transport, sized for a few
// hundred concurrent requests to a handful of hosts.
func newTransport(headerTimeout time.Duration) *http.Transport {
	if headerTimeout <= 0 {
		headerTimeout = defaultHeaderTimeout
	}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// ServeHTTP routes a request (the /proxy prefix already stripped).
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/user/lookup" || strings.HasPrefix(path, "/user/lookup/") {
		logging.FromContext(r.Context()).SetRoute(r.Method + " /user/lookup")
		h.lookup.ServeHTTP(w, r)
		return
	}
	if path == "/user/captcha" || strings.HasPrefix(path, "/user/captcha/") {
		h.captcha.ServeHTTP(w, r) // it names its routes in the log line
		return
	}
	if r.Method != http.MethodPost || r.Header["Origin"] != nil {
		setCORS(w.Header())
	}
	if r.Method == http.MethodOptions {
		preflight(w, r)
		return
	}
	switch path {
	case "/":
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if h.refuseBlacklisted(w, r, "GET /") {
				return
			}
			h.serveInfo(w, r)
			return
		}
	case "/health":
		if h.refuseBlacklisted(w, r, "GET /health") {
			return
		}
		logging.FromContext(r.Context()).SetRoute("GET /health")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
		return
	}
	x := &exchange{h: h, w: w, r: r, log: logging.FromContext(r.Context())}
	if hasDotSegment(path) {
		// Never relayed: an upstream or a gateway in between would
		// resolve it to another route than the one checked here.
		x.prov = providers.Fallback()
		x.log.SetRoute("unknown")
		x.writeError(unknownRoute(r), nil)
		return
	}
	up, rest, ok := providers.Mount(path, h.up)
	if !ok {
		x.prov = providers.Fallback()
		x.log.SetRoute("unknown")
		x.writeError(unknownRoute(r), nil)
		return
	}
	x.up, x.prov = up, up.prov
	ep, rest, ok := up.prov.Resolve(r.Method, rest)
	if !ok {
		x.log.SetRoute("unknown /" + string(up.prov.ID))
		x.writeError(unknownRoute(r), nil)
		return
	}
	x.ep = ep
	x.upstreamPath = rest
	x.log.SetRoute(ep.Route)
	x.serve()
}

// refuseBlacklisted answers 403 to an address in IP_BLACKLIST (or its
// live additions) on the routes that read no token: the proxied routes
// refuse it in gatekeeper.Authenticate, the user pages in their own
// handlers.
func (h *handler) refuseBlacklisted(w http.ResponseWriter, r *http.Request, route string) bool {
	if !h.gk.IPs().Blacklisted(r.Context(), netutil.ClientIP(r, h.cfg.TrustedProxies)) {
		return false
	}
	x := &exchange{h: h, w: w, r: r, log: logging.FromContext(r.Context()), prov: providers.Fallback()}
	x.log.SetRoute(route)
	x.writeError(users.Errorf(users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."), nil)
	return true
}

// hasDotSegment reports a "." or ".." segment in a (decoded) path.
func hasDotSegment(path string) bool {
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// debugWriter sends ReverseProxy's own log lines to the debug level: the
// proxy reports failures itself.
type debugWriter struct{ log zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// bufferPool recycles the 32 KiB copy buffers of ReverseProxy. It holds
// array pointers, which a slice converts back to without allocating.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(s []byte) {
	if cap(s) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(s[:copyBufferSize]))
	}
}
