// Package captcha is the proxy's /user/captcha: a visitor's browser solves
// an argon2id proof of work and earns a temporary user token, or extends
// one it holds, without an operator (CAPTCHA_MODE=proof_of_work).
package captcha

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/pow"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// Path is where the page lives, relative to the proxy function's root.
const Path = "/user/captcha"

// Options are the handler's dependencies.
type Options struct {
	Config *config.Config
	// Store holds the issued users; it must implement users.Marks too,
	// which make a solution single-use across instances.
	Store    users.Store
	Log      zerolog.Logger
	Now      func() time.Time
	ClientIP func(*http.Request) string
	// Params override the argon2id cost (zero: pow.DefaultParams).
	Params pow.Params
	// IPs are the live IP lists, shared with the proxy's gatekeeper: an
	// address in IP_BLACKLIST (or its live additions) is refused here
	// too. Nil: the handler reads its own.
	IPs *gatekeeper.LiveIPs
}

const (
	maxBody      = 4 << 10
	storeTimeout = 10 * time.Second
	// verifySlots bound concurrent argon2id verifications per instance:
	// each takes Params.MemoryKiB of memory.
	verifySlots = 2
	// slotWait bounds a solution's wait for a verification slot.
	slotWait = 10 * time.Second
	// Failed solutions (only a forged client sends one) lock the address
	// out of this instance for a while, as the original did.
	failMax    = 3
	failWindow = 6 * time.Hour
	// Unknown tokens asked to refresh, allowed per address (the lookup
	// page's limit): a mistyped token is not locked out for hours.
	unknownMax    = 10
	unknownWindow = 10 * time.Minute
	// pruneBatch bounds the expired marks removed per issued token.
	pruneBatch = 100
)

//go:embed static
var static embed.FS

type handler struct {
	cfg config.PoW
	// defaultMaxIPs is MAX_IPS_PER_USER, the address limit of a token
	// without its own maxIps.
	defaultMaxIPs int64
	svc           *users.Service
	store         users.Store
	marks         users.Marks
	signer        *pow.Signer
	ipKey         []byte
	params        pow.Params
	log           zerolog.Logger
	now           func() time.Time
	clientIP      func(*http.Request) string
	ips           *gatekeeper.LiveIPs
	lockout       *ratelimit.Lockout
	unknown       *ratelimit.Lockout // unknown tokens asked to refresh
	reads         *ratelimit.Window  // refreshes asked per address (web.PageReadsPerMinute)
	verify        chan struct{}
	slotWait      time.Duration // slotWait; shorter in tests
	page          *template.Template
}

// New returns the /user/captcha handler. With CAPTCHA_MODE=none it answers
// 404. The challenge key is derived from SIGNING_KEY, else ADMIN_KEY, and
// the deployment's store, so that every instance verifies what another
// issued and no other deployment does.
func New(o Options) (http.Handler, error) {
	if !o.Config.PoW.Enabled() {
		return http.NotFoundHandler(), nil
	}
	marks, ok := o.Store.(users.Marks)
	if !ok {
		return nil, fmt.Errorf("captcha: the %T store keeps no single-use marks", o.Store)
	}
	secret := o.Config.SigningKey
	if secret == "" {
		secret = o.Config.AdminKey
	}
	if secret == "" {
		return nil, errors.New("captcha: CAPTCHA_MODE=proof_of_work needs SIGNING_KEY or ADMIN_KEY to sign challenges")
	}
	signer, err := pow.NewSigner(challengeKey(secret, o.Config))
	if err != nil {
		return nil, fmt.Errorf("captcha: %w", err)
	}
	ipMAC := hmac.New(sha256.New, []byte(secret))
	ipMAC.Write([]byte("tollgate-captcha-ip"))
	h := &handler{
		cfg:           o.Config.PoW,
		defaultMaxIPs: o.Config.MaxIPsPerUser,
		store:         o.Store,
		marks:         marks,
		signer:        signer,
		ipKey:         ipMAC.Sum(nil),
		params:        o.Params,
		log:           o.Log,
		now:           o.Now,
		clientIP:      o.ClientIP,
		ips:           o.IPs,
		lockout:       ratelimit.NewLockout(failMax, failWindow),
		unknown:       ratelimit.NewLockout(unknownMax, unknownWindow),
		reads:         ratelimit.NewWindow(time.Minute),
		verify:        make(chan struct{}, verifySlots),
		slotWait:      slotWait,
	}
	if h.params == (pow.Params{}) {
		h.params = pow.DefaultParams
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.ips == nil {
		h.ips = gatekeeper.NewLiveIPs(o.Config, o.Store, h.now)
	}
	h.svc = &users.Service{Store: o.Store, Defaults: o.Config.TokenQuota, Now: h.now}
	h.page = web.Partials(template.Must(template.ParseFS(static, "static/page.html")))
	return h, nil
}

// challengeKey derives the challenge signing key from secret and the
// store the deployment keeps its users and single-use marks in: another
// deployment sharing the secret but not the store (another database, or
// another users node in it) cannot tell that a solution was spent here,
// so it must refuse these challenges rather than issue a second token
// for one solution. Instances of one deployment share the store, and
// verify each other's challenges.
func challengeKey(secret string, c *config.Config) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("tollgate-pow-store\x00" + string(c.Store) + "\x00" + c.FirebaseRTDBURL + "\x00" + c.FirebaseUsersRef))
	return m.Sum(nil)
}

// assets are served beside the page; the worker and the WebAssembly
// library need 'wasm-unsafe-eval', nothing else on the proxy gets it.
var assets = map[string]string{
	"page.js":           "text/javascript; charset=utf-8",
	"worker.js":         "text/javascript; charset=utf-8",
	"argon2.umd.min.js": "text/javascript; charset=utf-8",
	"style.css":         "text/css; charset=utf-8",
}

// csp allows the page's own scripts, styles and requests, and WebAssembly
// compilation; no third party, no inline code, no framing.
const csp = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	logging.FromContext(r.Context()).SetRoute(r.Method + " " + Path)
	rest := strings.TrimPrefix(r.URL.Path, Path)
	hdr := w.Header()
	web.PageHeaders(hdr, csp)
	if h.ips.Blacklisted(r.Context(), h.clientIP(r)) {
		fail(w, r, http.StatusForbidden, "Forbidden (by IP_BLACKLIST).")
		return
	}
	if r.Method == http.MethodPost && web.CrossSite(r) {
		// Its JSON endpoints read a body of any Content-Type, which
		// another site's page may send without a preflight.
		fail(w, r, http.StatusForbidden, web.CrossSiteMessage)
		return
	}
	switch {
	case rest == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.servePage(w)
	case rest == "/challenge" && r.Method == http.MethodPost:
		h.serveChallenge(w, r)
	case rest == "/verify" && r.Method == http.MethodPost:
		h.serveVerify(w, r)
	case strings.HasPrefix(rest, "/") && assets[rest[1:]] != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.serveAsset(w, rest[1:])
	case rest == "" || rest == "/challenge" || rest == "/verify":
		hdr.Set("Allow", allowed(rest))
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed.")
	default:
		writeError(w, http.StatusNotFound, "Not found.")
	}
}

func allowed(rest string) string {
	if rest == "" {
		return "GET, HEAD"
	}
	return "POST"
}

// pageView is what the page template shows.
type pageView struct {
	Difficulty   string
	Work         int64
	TokenHours   string
	MaxIPs       int64
	TimeoutMin   string
	MaxRefreshes int
}

func (h *handler) servePage(w http.ResponseWriter) {
	v := pageView{
		Difficulty:   h.cfg.Difficulty,
		Work:         h.cfg.Work,
		TokenHours:   strconv.FormatFloat(h.cfg.TokenLifetime.Hours(), 'f', -1, 64),
		MaxIPs:       h.cfg.TokenMaxIPs,
		TimeoutMin:   strconv.FormatFloat(h.cfg.ChallengeTimeout.Minutes(), 'f', -1, 64),
		MaxRefreshes: h.cfg.MaxRefreshes,
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.page.Execute(w, v); err != nil {
		h.log.Warn().Err(err).Msg("captcha: rendering the page")
	}
}

func (h *handler) serveAsset(w http.ResponseWriter, name string) {
	path := "static/" + name
	if name == "argon2.umd.min.js" {
		path = "static/hash-wasm/" + name
	}
	b, err := static.ReadFile(path)
	if err != nil {
		writeError(w, http.StatusNotFound, "Not found.")
		return
	}
	w.Header().Set("Content-Type", assets[name])
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

// readJSON decodes a small JSON body into v, refusing unknown fields.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("The request body must be a JSON object of the documented fields.")
	}
	if dec.More() {
		return errors.New("The request body must hold one JSON object.")
	}
	return nil
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers a refused request and notes why in the request's log line.
func fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	logging.FromContext(r.Context()).SetError(msg)
	writeError(w, status, msg)
}
