// Package ui is the admin web UI, served by the admin function at its root
// ("/", "/login", "/logout", "/manage/...", "/static/..."): server-rendered
// html/template pages over users.Service, so the UI and the REST API
// change users the same way.
package ui

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"tollgate.dev/tollgate/functions/admin/upstreamkeys"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// Options are the UI's dependencies.
type Options struct {
	Config *config.Config
	Store  users.Store
	Now    func() time.Time // default time.Now
	// Lockout is shared with the REST API: failed logins and failed API
	// keys count together per client IP. Nil: the UI makes its own.
	Lockout  *ratelimit.Lockout
	ClientIP func(*http.Request) string
	// IPs are the live IP lists, shared with the REST API's checks. Nil:
	// the UI makes its own.
	IPs *gatekeeper.LiveIPs
	// Keys checks the upstream keys, shared with the REST API. Nil: the
	// UI makes its own.
	Keys *upstreamkeys.Checker
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
}

// Body limits of the forms: a user form is small; an import carries a
// whole users.json (the REST API accepts 32 MiB), plus multipart framing.
const (
	maxFormBody   = 1 << 20
	maxImportBody = 32<<20 + 64<<10
)

type handler struct {
	cfg        *config.Config
	clock      func() time.Time
	svc        *users.Service
	lockout    *ratelimit.Lockout
	clientIP   func(*http.Request) string
	sign       *signer
	sessionTTL time.Duration
	pages      *pages
	keys       *upstreamkeys.Checker
	ips        *gatekeeper.LiveIPs
	store      users.Store
	static     assets
	mux        *http.ServeMux
}

// Complete returns o with each dependency left nil built by default. The
// admin function completes the Options it hands the UI and builds its REST
// API from the same ones, so the two share one of each.
func (o Options) Complete() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lockout == nil {
		o.Lockout = ratelimit.NewKeyLockout()
	}
	if o.ClientIP == nil {
		cfg := o.Config
		o.ClientIP = func(r *http.Request) string { return netutil.ClientIP(r, cfg.TrustedProxies) }
	}
	if o.IPs == nil {
		o.IPs = gatekeeper.NewLiveIPs(o.Config, o.Store, o.Now)
	}
	if o.Keys == nil {
		o.Keys = upstreamkeys.New(o.Config, nil, o.Now)
	}
	return o
}

// New returns the UI handler. Paths are relative to the admin function's
// root; links are built with app.BasePath.
func New(o Options) http.Handler {
	o = o.Complete()
	h := &handler{
		cfg:        o.Config,
		clock:      o.Now,
		svc:        &users.Service{Store: o.Store, Defaults: o.Config.TokenQuota, Now: o.Now, EventRetention: o.Config.EventRetention, PurgeAfter: o.Config.PoW.PurgeAfter()},
		ips:        o.IPs,
		store:      o.Store,
		lockout:    o.Lockout,
		clientIP:   o.ClientIP,
		sign:       newSigner(o.Config.SigningKey, o.Config.AdminKey),
		sessionTTL: o.SessionTTL,
		keys:       o.Keys,
		static:     loadAssets(),
		mux:        http.NewServeMux(),
	}
	if h.sessionTTL <= 0 {
		h.sessionTTL = defaultSessionTTL
	}
	h.pages = loadPages(h.now)

	m := h.mux
	m.HandleFunc("GET /{$}", h.root)
	m.HandleFunc("GET /static/{name}", h.serveStatic)
	m.HandleFunc("GET /login", h.loginForm)
	m.HandleFunc("POST /login", h.login)
	m.HandleFunc("POST /logout", h.form(maxFormBody, h.logout))
	m.HandleFunc("GET /manage", h.authed(h.manageRoot))
	m.HandleFunc("GET /manage/{$}", h.authed(h.manageRoot))
	m.HandleFunc("GET /manage/users", h.authed(h.listUsers))
	m.HandleFunc("GET /manage/new", h.authed(h.newUserForm))
	m.HandleFunc("POST /manage/new", h.form(maxFormBody, h.createUser))
	m.HandleFunc("GET /manage/users/{token}", h.authed(h.viewUser))
	m.HandleFunc("GET /manage/users/{token}/edit", h.authed(h.editUserForm))
	m.HandleFunc("POST /manage/users/{token}/edit", h.form(maxFormBody, h.editUser))
	m.HandleFunc("POST /manage/users/{token}/disable", h.form(maxFormBody, h.disableUser))
	m.HandleFunc("POST /manage/users/{token}/reason", h.form(maxFormBody, h.editReason))
	m.HandleFunc("POST /manage/users/{token}/reactivate", h.form(maxFormBody, h.simpleAction("reactivated", h.svc.Reactivate)))
	m.HandleFunc("POST /manage/users/{token}/refresh-quota", h.form(maxFormBody, h.simpleAction("refreshed", h.svc.RefreshQuota)))
	m.HandleFunc("GET /manage/import", h.authed(h.importForm))
	m.HandleFunc("POST /manage/import", h.form(maxImportBody, h.importUsers))
	m.HandleFunc("GET /manage/export", h.authed(h.exportUsers))
	m.HandleFunc("GET /manage/maintenance", h.authed(h.maintenanceForm))
	m.HandleFunc("POST /manage/maintenance/{action}", h.form(maxFormBody, h.maintain))
	m.HandleFunc("POST /manage/keys/recheck", h.form(maxFormBody, h.recheckKeys))
	m.HandleFunc("GET /manage/abuse", h.authed(h.abuseForm))
	m.HandleFunc("POST /manage/abuse/lists", h.form(maxFormBody, h.saveLists))
	m.HandleFunc("GET /manage/dashboard", h.authed(h.dashboard))
	m.HandleFunc("GET /manage/stats", h.authed(h.stats))
	return h
}

func (h *handler) now() time.Time {
	if h.clock != nil {
		return h.clock()
	}
	return time.Now()
}

// ServeHTTP names the route for the request log, sets the headers every
// page shares, and routes.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := h.mux.Handler(r)
	rec := logging.FromContext(r.Context())
	hdr := w.Header()
	web.PageHeaders(hdr, "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	if !strings.HasPrefix(pattern, "GET /static/") {
		// Pages show tokens, and the logged-in frame of any page (an
		// error page too) a CSRF token: no shared or browser cache may
		// keep them.
		hdr.Set("Cache-Control", "no-store")
	}
	if web.RedirectClean(w, r) {
		rec.SetRoute("ui unclean path")
		return
	}
	if pattern == "" {
		if allow := h.allowed(r); allow != "" {
			rec.SetRoute("ui method not allowed")
			hdr.Set("Allow", allow)
			h.renderError(w, r, http.StatusMethodNotAllowed, "This page does not take "+r.Method+" requests.")
			return
		}
		rec.SetRoute("ui unmatched")
		h.renderError(w, r, http.StatusNotFound, "Page not found.")
		return
	}
	rec.SetRoute("ui " + pattern)
	h.mux.ServeHTTP(w, r)
}

// allowed lists the methods the request's path takes ("" when it is no
// page at all), for a 405's Allow.
func (h *handler) allowed(r *http.Request) string {
	allow := web.Allowed(h.mux, r, http.MethodGet, http.MethodPost)
	if len(allow) > 0 && allow[0] == http.MethodGet {
		allow = slices.Insert(allow, 1, http.MethodHead) // the mux serves HEAD as GET
	}
	return strings.Join(allow, ", ")
}

// link is path under the function's mount, for links and redirects.
func link(r *http.Request, path string) string { return web.BasePath(r.Context()) + path }

func redirect(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, link(r, path), http.StatusSeeOther)
}

// session returns the request's valid session of kind, if any.
func (h *handler) session(r *http.Request, kind string) (session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	maxTTL := h.sessionTTL
	if kind == kindLogin {
		maxTTL = loginFormTTL
	}
	s, ok := h.sign.decode(c.Value, h.now(), maxTTL)
	if !ok || s.Kind != kind {
		return session{}, false
	}
	return s, true
}

// setSession writes s as the session cookie: HttpOnly, SameSite=Lax
// (cookie says why), Secure except on a loopback host (plain-HTTP local
// runs), scoped to the mount so the proxy function never receives it.
func (h *handler) setSession(w http.ResponseWriter, r *http.Request, s session) {
	http.SetCookie(w, h.cookie(r, h.sign.encode(s), int(s.Expires.Sub(h.now()).Seconds())))
}

func (h *handler) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, h.cookie(r, "", -1))
}

func (h *handler) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	path := web.BasePath(r.Context())
	if path == "" {
		path = "/"
	}
	return &http.Cookie{
		Name:     cookieName,
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   !isLoopbackHost(h.externalHost(r)),
		// Lax, not Strict: a link from another site must bring the
		// session along, or /login would replace it with a login-form
		// session and log the admin out. Cross-site POSTs still carry no
		// cookie, and every form checks its CSRF token.
		SameSite: http.SameSiteLaxMode,
	}
}

// externalHost is the host the browser reached, as forwarded by trusted
// proxies only.
func (h *handler) externalHost(r *http.Request) string {
	_, host := netutil.External(r, h.cfg.TrustedProxies)
	return host
}

// isLoopbackHost reports whether a Host header names this machine, where
// the UI may run over plain HTTP.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// authed serves GET pages to a logged-in admin; anyone else is sent to the
// login page, which brings them back afterwards.
func (h *handler) authed(next func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.session(r, kindAdmin)
		if !ok {
			h.toLogin(w, r)
			return
		}
		next(w, r, s)
	}
}

func (h *handler) toLogin(w http.ResponseWriter, r *http.Request) {
	target := "/login"
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/manage") {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	redirect(w, r, target)
}

// form guards a state-changing POST: a logged-in admin, a body of at most
// limit bytes, and the CSRF token of this session for this very path, so
// a token taken from one form cannot drive another.
func (h *handler) form(limit int64, next func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.session(r, kindAdmin)
		if !ok {
			h.toLogin(w, r)
			return
		}
		if !h.parseForm(w, r, limit) {
			return
		}
		if !h.sign.checkCSRF(s.ID, r.URL.Path, r.PostFormValue("csrf")) {
			logging.FromContext(r.Context()).SetError("missing or wrong CSRF token")
			h.renderError(w, r, http.StatusForbidden, "This form expired or did not come from this site. Go back, reload the page and try again.")
			return
		}
		next(w, r, s)
	}
}

// parseForm reads a urlencoded or multipart body of at most limit bytes.
func (h *handler) parseForm(w http.ResponseWriter, r *http.Request, limit int64) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		// Held in memory: the limit is already bounded, and Cloud
		// Functions' disk is memory anyway.
		err = r.ParseMultipartForm(limit)
	} else {
		err = r.ParseForm()
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		h.renderError(w, r, http.StatusRequestEntityTooLarge, "The form is too large.")
		return false
	}
	h.renderError(w, r, http.StatusBadRequest, "The form could not be read.")
	return false
}

// root sends visitors to the user list or the login page.
func (h *handler) root(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.session(r, kindAdmin); ok {
		redirect(w, r, "/manage/users")
		return
	}
	redirect(w, r, "/login")
}

func (h *handler) manageRoot(w http.ResponseWriter, r *http.Request, _ session) {
	redirect(w, r, "/manage/users")
}
