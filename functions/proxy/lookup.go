package proxy

import (
	"net/http"

	"tollgate.dev/tollgate/functions/proxy/lookup"
	"tollgate.dev/tollgate/shared/app"
)

// lookupHandler serves the self-service page at /user/lookup: users only
// know the proxy's URL.
func lookupHandler(d *app.Deps, clientIP func(*http.Request) string) http.Handler {
	return lookup.New(lookup.Options{Deps: d, ClientIP: clientIP})
}
