package proxy

import (
	"net/http"
	"sort"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/web"
)

// serveInfo answers GET / with what a user needs to configure a client:
// the providers served, the base URL to give each SDK, the gatekeeper mode
// and the model families allowed. It tells nothing secret.
func (h *handler) serveInfo(w http.ResponseWriter, r *http.Request) {
	logging.FromContext(r.Context()).SetRoute("GET /")
	root := externalRoot(r, h.cfg.TrustedProxies)
	type providerInfo struct {
		Name     string   `json:"name"`
		Provider string   `json:"provider"`
		BaseURL  string   `json:"baseUrl"`
		Families []string `json:"families"`
		Routes   []string `json:"routes"`
		// Keys counts the operator's keys on this instance (never a key).
		Keys keyCounts `json:"keys"`
	}
	served := []providerInfo{}
	for _, p := range providers.All() {
		if !h.cfg.Served(p.ID) {
			continue
		}
		// The families its routes can count in (an image mount: image
		// families only), in the table's order.
		reach := map[string]bool{}
		for _, r := range p.Routes {
			if r.Format.Admitted {
				for _, f := range models.Reachable(p.ID, r.Format.Kind) {
					reach[f] = true
				}
			}
		}
		families := []string{}
		for _, f := range models.Families {
			if reach[f.Name] && h.cfg.FamilyAllowed(f.Name) {
				families = append(families, f.Name)
			}
		}
		served = append(served, providerInfo{
			Name:     p.Name,
			Provider: string(p.ID),
			BaseURL:  root + "/" + string(p.ID) + p.SDKPath,
			Families: families,
			Routes:   p.ListedRoutes(),
			Keys:     h.up[string(p.ID)].keys.keyCounts(),
		})
	}
	allowed := make([]string, 0, len(h.cfg.AllowedFamilies))
	for f := range h.cfg.AllowedFamilies {
		allowed = append(allowed, f)
	}
	sort.Strings(allowed)
	info := map[string]any{
		"service":         "tollgate",
		"gatekeeper":      string(h.cfg.Gatekeeper),
		"providers":       served,
		"allowedFamilies": allowed,
		"errorFormat":     string(h.cfg.ErrorFormat),
		"lookup":          root + "/user/lookup",
		"health":          root + "/health",
	}
	body := providers.MustJSON(info)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// externalRoot is the proxy's URL as the client reached it, with the
// forwarding headers trusted only behind trusted proxies (netutil.External),
// and the mount prefix.
func externalRoot(r *http.Request, trustedProxies int) string {
	scheme, host := netutil.External(r, trustedProxies)
	return scheme + "://" + host + web.BasePath(r.Context())
}

// CORS: browser clients (SillyTavern in a browser) call the proxy from
// other origins with their own keys in headers; no cookie is involved, so
// any origin may. A browser sends Origin with every POST, so a POST
// without one comes from no browser and its answer goes without these
// headers (each costs the client and the proxy a header on every chat);
// answers to GET and HEAD carry them always, as a browser may reuse a
// cached one for another origin.
const (
	corsAllowHeaders  = "Authorization, X-Api-Key, X-Goog-Api-Key, Content-Type, Anthropic-Version, Anthropic-Beta, Anthropic-Dangerous-Direct-Browser-Access, OpenAI-Beta, X-Goog-Api-Client"
	corsExposeHeaders = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Oai-Proxy-Error, X-Oai-Proxy-Error-Status"
)

func setCORS(h http.Header) {
	// One backing array, canonical names.
	v := []string{"*", corsExposeHeaders}
	h["Access-Control-Allow-Origin"] = v[0:1:1]
	h["Access-Control-Expose-Headers"] = v[1:2:2]
}

// preflight answers a CORS preflight: the standard headers plus whatever
// else the browser says the client will send (SDKs add their own).
func preflight(w http.ResponseWriter, r *http.Request) {
	logging.FromContext(r.Context()).SetRoute("OPTIONS")
	h := w.Header()
	allow := corsAllowHeaders
	if extra := r.Header.Get("Access-Control-Request-Headers"); extra != "" && validHeaderList(extra) {
		allow += ", " + extra
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", allow)
	h.Set("Access-Control-Max-Age", "86400")
	h.Add("Vary", "Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}

// validHeaderList accepts a comma list of header names only.
func validHeaderList(s string) bool {
	if len(s) > 2048 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ',' || c == ' ') {
			return false
		}
	}
	return true
}
