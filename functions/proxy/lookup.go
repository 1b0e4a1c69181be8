package proxy

import (
	"net/http"

	"tollgate.dev/tollgate/functions/proxy/lookup"
)

// lookupHandler serves the self-service page at /user/lookup: users only
// know the proxy's URL.
func lookupHandler(d Deps, clientIP func(*http.Request) string) http.Handler {
	return lookup.New(lookup.Options{Config: d.Config, Store: d.Store, Now: d.Now, ClientIP: clientIP})
}
