package proxy

import (
	"net/http"
	"sort"
	"strings"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/web"
)

// serveInfo answers GET / with what a user needs to configure a client:
// the providers served, the base URL to give each SDK, the gatekeeper mode
// and the model families allowed. It tells nothing secret.
func (h *handler) serveInfo(w http.ResponseWriter, r *http.Request) {
	logging.FromContext(r.Context()).SetRoute("GET /")
	root := externalRoot(r)
	type providerInfo struct {
		Name     string   `json:"name"`
		Provider string   `json:"provider"`
		BaseURL  string   `json:"baseUrl"`
		Families []string `json:"families"`
		Routes   []string `json:"routes"`
	}
	providers := []providerInfo{}
	for _, id := range models.Providers {
		up := h.up[string(id)]
		if up == nil || !h.cfg.Served(id) {
			continue
		}
		families := []string{}
		for _, f := range models.Families {
			if f.Provider == id && h.cfg.FamilyAllowed(f.Name) {
				families = append(families, f.Name)
			}
		}
		providers = append(providers, providerInfo{
			Name:     up.name,
			Provider: string(id),
			BaseURL:  root + "/" + string(id) + up.sdkPath,
			Families: families,
			Routes:   routesOf(id),
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
		"providers":       providers,
		"allowedFamilies": allowed,
		"errorFormat":     string(h.cfg.ErrorFormat),
		"lookup":          root + "/user/lookup",
		"health":          root + "/health",
	}
	body := mustJSON(info)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// routesOf lists a provider's routes (under its base URL's mount).
func routesOf(id models.Provider) []string {
	switch id {
	case models.OpenAI:
		return []string{"GET /v1/models", "POST /v1/chat/completions", "POST /v1/responses", "POST /v1/completions", "POST /v1/embeddings", "POST /v1/images/generations"}
	case models.Anthropic:
		return []string{"GET /v1/models", "POST /v1/messages", "POST /v1/messages/count_tokens"}
	case models.GoogleAI:
		return []string{"GET /v1beta/models", "POST /v1beta/models/{model}:generateContent", "POST /v1beta/models/{model}:streamGenerateContent", "POST /v1beta/models/{model}:countTokens"}
	case models.MistralAI:
		return []string{"GET /v1/models", "POST /v1/chat/completions"}
	}
	return nil
}

// externalRoot is the proxy's URL as the client reached it: scheme from
// X-Forwarded-Proto (the platform's front end terminates TLS), host from
// X-Forwarded-Host (Firebase Hosting) or Host, and the mount prefix.
func externalRoot(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := firstValue(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
		scheme = p
	}
	host := r.Host
	if fh := firstValue(r.Header.Get("X-Forwarded-Host")); fh != "" && !strings.ContainsAny(fh, "/ \"<>") {
		host = fh
	}
	return scheme + "://" + host + web.BasePath(r.Context())
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(strings.ToLower(v))
}

// CORS: browser clients (SillyTavern in a browser) call the proxy from
// other origins with their own keys in headers; no cookie is involved, so
// any origin may.
const (
	corsAllowHeaders  = "Authorization, X-Api-Key, X-Goog-Api-Key, Content-Type, Anthropic-Version, Anthropic-Beta, Anthropic-Dangerous-Direct-Browser-Access, OpenAI-Beta, X-Goog-Api-Client"
	corsExposeHeaders = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Oai-Proxy-Error, X-Oai-Proxy-Error-Status"
)

func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
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
