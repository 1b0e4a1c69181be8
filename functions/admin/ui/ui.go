// Package ui is the admin web UI, served by the admin function at its root
// ("/", "/login", "/logout", "/manage/...").
package ui

import (
	"net/http"

	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/ratelimit"
)

// Options are the UI's dependencies.
type Options struct {
	Deps *app.Deps
	// Lockout is shared with the REST API: failed logins and failed API
	// keys count together per client IP.
	Lockout  *ratelimit.Lockout
	ClientIP func(*http.Request) string
}

// New returns the UI handler. Paths are relative to the admin function's
// root; links are built with app.BasePath.
func New(o Options) http.Handler {
	return http.NotFoundHandler()
}
