// Package admin is the admin function: the /admin/users REST API, its
// OpenAPI document, the maintenance endpoints, and (through package ui) the
// admin web UI. Everything it serves is refused outside ADMIN_WHITELIST.
package admin

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"tollgate.dev/tollgate/functions/admin/ui"
	"tollgate.dev/tollgate/functions/admin/upstreamkeys"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// Deps are what the admin function is built from, as the proxy is.
type Deps = web.Deps

// New returns the admin function's handler: served at its root and under
// /admin, one log line per request, the IP checks, then the REST API or,
// for any other path, the web UI.
func New(d Deps) http.Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	// Failed admin keys of the API and the UI's logins count together per
	// client IP; both read the same live IP lists and key checks.
	shared := ui.Options{Config: d.Config, Store: d.Store, Now: d.Now}.Complete()
	a := newAPI(d, shared)
	page := ui.New(shared)

	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAPIPath(r.URL.Path) {
			a.ServeHTTP(w, r)
			return
		}
		page.ServeHTTP(w, r)
	})
	return web.Mount("admin", logging.Middleware(d.Log, d.Config.Project, shared.ClientIP, a.guardIP(root), d.Config.AdminKey, d.Config.ProxyKey))
}

// isAPIPath reports whether p belongs to the REST API rather than the UI.
func isAPIPath(p string) bool {
	return p == "/users" || strings.HasPrefix(p, "/users/") ||
		p == "/maintenance" || strings.HasPrefix(p, "/maintenance/") ||
		strings.HasPrefix(p, "/events/") || p == "/ip-lists" ||
		p == "/stats" || p == "/keys" || p == "/keys/recheck" ||
		p == openAPIPath
}

// api is the REST API.
type api struct {
	d        Deps
	svc      *users.Service
	mux      *http.ServeMux
	lockout  *ratelimit.Lockout
	clientIP func(*http.Request) string
	ips      *gatekeeper.LiveIPs
	keys     *upstreamkeys.Checker
	keyHash  [sha256.Size]byte // of ADMIN_KEY; compared, never the key itself
	keySet   bool

	scheduler *schedulerAuth // nil: no scheduler tokens
}

// newAPI builds the REST API; shared are the pieces it shares with the UI.
func newAPI(d Deps, shared ui.Options) *api {
	a := &api{
		d:        d,
		svc:      &users.Service{Store: d.Store, Defaults: d.Config.TokenQuota, Now: d.Now, EventRetention: d.Config.EventRetention, PurgeAfter: d.Config.PoW.PurgeAfter()},
		ips:      shared.IPs,
		keys:     shared.Keys,
		mux:      http.NewServeMux(),
		lockout:  shared.Lockout,
		clientIP: shared.ClientIP,
		keyHash:  sha256.Sum256([]byte(d.Config.AdminKey)),
		keySet:   d.Config.AdminKey != "",
	}
	a.scheduler = newSchedulerAuth(d.Config.Scheduler)
	// Each route bounds its store calls: one user's, or every user's.
	one := func(h http.HandlerFunc) http.HandlerFunc { return web.Within(web.OneUserTimeout, h) }
	all := func(h http.HandlerFunc) http.HandlerFunc { return web.Within(web.AllUsersTimeout, h) }
	a.mux.HandleFunc("GET /users", all(a.listUsers))
	a.mux.HandleFunc("POST /users", one(a.createUser))
	a.mux.HandleFunc("PUT /users", all(a.importUsers))
	a.mux.HandleFunc("GET /users/{token}", one(a.userAction(a.svc.Store.Get)))
	a.mux.HandleFunc("PUT /users/{token}", one(a.upsertUser))
	a.mux.HandleFunc("DELETE /users/{token}", one(a.disableUser))
	a.mux.HandleFunc("POST /users/{token}/reactivate", one(a.userAction(a.svc.Reactivate)))
	a.mux.HandleFunc("POST /users/{token}/refresh-quota", one(a.userAction(a.svc.RefreshQuota)))
	a.mux.HandleFunc("POST /maintenance/{action}", all(a.maintain))
	a.mux.HandleFunc("GET /events/{token}", one(a.listEvents))
	a.mux.HandleFunc("GET /ip-lists", one(a.getIPLists))
	a.mux.HandleFunc("PUT /ip-lists", one(a.putIPLists))
	a.mux.HandleFunc("GET /stats", all(a.stats))
	a.mux.HandleFunc("GET /keys", a.listKeys)
	a.mux.HandleFunc("POST /keys/recheck", a.recheckKeys)
	a.mux.HandleFunc("GET "+openAPIPath, serveOpenAPI)
	return a
}

func (a *api) now() time.Time { return a.d.Now() }

// guardIP refuses clients outside ADMIN_WHITELIST or inside IP_BLACKLIST
// (with their live additions) before anything else runs, UI included.
func (a *api) guardIP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := a.clientIP(r)
		switch {
		case !a.ips.Whitelisted(r.Context(), ip):
			a.fail(w, r, users.Errorf(users.CodeForbidden, "Forbidden (by ADMIN_WHITELIST)"))
		case a.ips.Blacklisted(r.Context(), ip):
			a.fail(w, r, users.Errorf(users.CodeForbidden, "Forbidden (by IP_BLACKLIST)"))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// ServeHTTP authenticates (except for the public OpenAPI document), then
// routes. Unknown routes and methods are answered only after
// authentication, so probing reveals nothing.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := a.mux.Handler(r)
	rec := logging.FromContext(r.Context())
	if pattern == "" {
		rec.SetRoute("unmatched")
	} else {
		rec.SetRoute(pattern)
	}
	if pattern != "GET "+openAPIPath {
		if err := a.authenticate(r); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if web.RedirectClean(w, r) {
		rec.SetRoute("unclean path")
		return
	}
	// HEAD is no operation of the API's document (the mux would serve it
	// as GET): refused as any other method the document lacks.
	if pattern == "" || r.Method == http.MethodHead {
		a.noRoute(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// noRoute answers 405 with Allow when the path exists under other
// methods, else 404.
func (a *api) noRoute(w http.ResponseWriter, r *http.Request) {
	allow := web.Allowed(a.mux, r, http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete)
	if len(allow) == 0 {
		a.fail(w, r, users.Errorf(users.CodeNotFound, "No such admin API route."))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	a.fail(w, r, users.Errorf(web.CodeMethodNotAllowed, "Method %s is not allowed here; allowed: %s.", r.Method, strings.Join(allow, ", ")))
}
