package web

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"

	"tollgate.dev/tollgate/internal/ctxval"
)

type baseKey struct{}

// Mount serves h both at the function's root and under /name, as a
// function URL, Firebase Hosting rewrites and the local runner need. The
// prefix that was stripped is available to h as BasePath.
func Mount(name string, h http.Handler) http.Handler {
	prefix := "/" + name
	under := prefix + "/"
	var mounted any = prefix // boxed once rather than per request
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p != prefix && !strings.HasPrefix(p, under) {
			h.ServeHTTP(w, r) // at the root: BasePath is "" without a value
			return
		}
		// One copy of the request carries both the stripped path and the
		// base path, its URL and context made in one allocation.
		m := &mountedRequest{ctx: baseCtx{Context: r.Context(), Val: mounted}, url: *r.URL}
		r2 := r.WithContext(&m.ctx)
		u := &m.url
		u.Path = strings.TrimPrefix(p, prefix)
		if u.Path == "" {
			u.Path = "/"
		}
		// Keep escapes such as %2F: the prefix has none, so trimming it
		// from both forms keeps them consistent.
		u.RawPath = strings.TrimPrefix(u.RawPath, prefix)
		r2.URL = u
		h.ServeHTTP(w, r2)
	})
}

// mountedRequest is what Mount's copy of a request holds of its own.
type mountedRequest struct {
	ctx baseCtx
	url url.URL
}

// baseCtx is the request's context with the base path under baseKey,
// the prefix boxed once by Mount.
type baseCtx = ctxval.Ctx[baseKey, any]

// BasePath is the prefix Mount stripped ("" at the function's root), for
// building links.
func BasePath(ctx context.Context) string {
	s, _ := ctx.Value(baseKey{}).(string)
	return s
}

// RedirectClean sends a request whose path has an empty, "." or ".."
// segment to the cleaned path (307, as http.ServeMux does), under the
// prefix Mount stripped: the mux's own redirect knows nothing of the
// mount and would leave it. It reports whether it answered. The cleaned
// path never begins with "//", so the Location stays on this site.
func RedirectClean(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.EscapedPath()
	clean := cleanPath(p)
	if clean == p {
		return false
	}
	if r.URL.RawQuery != "" {
		clean += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", BasePath(r.Context())+clean)
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// cleanPath is http.ServeMux's: path.Clean, rooted, keeping a trailing
// slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// Allowed lists which of methods mux routes r's path for (none: the path
// is no route at all), for a 405's Allow header.
func Allowed(mux *http.ServeMux, r *http.Request, methods ...string) []string {
	var allow []string
	for _, m := range methods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, p := mux.Handler(probe); p != "" {
			allow = append(allow, m)
		}
	}
	return allow
}
