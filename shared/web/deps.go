package web

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
)

// Deps are what each function (the proxy, admin) is built from; the
// caller (function.go, cmd/local) builds them once per instance.
type Deps struct {
	Config *config.Config
	Store  users.Store
	Log    zerolog.Logger
	Now    func() time.Time // default time.Now
}

// Deadlines of the store calls one admin request makes, in the REST API
// and the UI alike: a single user is quick; listing, importing and
// maintenance walk every user.
const (
	OneUserTimeout  = 20 * time.Second
	AllUsersTimeout = 2 * time.Minute
)

// Within serves h with the request's context bounded by d: a route
// declares the deadline of the store calls it makes (OneUserTimeout or
// AllUsersTimeout), and its handler uses the request's context.
func Within(d time.Duration, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h(w, r.WithContext(ctx))
	}
}
