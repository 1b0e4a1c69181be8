package proxy

import (
	"net/http"

	"tollgate.dev/tollgate/functions/proxy/lookup"
	"tollgate.dev/tollgate/shared/gatekeeper"
)

// lookupHandler serves the self-service page at /user/lookup: users only
// know the proxy's URL. It refuses IP_BLACKLIST from the gatekeeper's
// copy of the live lists.
func lookupHandler(d Deps, clientIP func(*http.Request) string, ips *gatekeeper.LiveIPs) http.Handler {
	return lookup.New(lookup.Options{Config: d.Config, Store: d.Store, Now: d.Now, ClientIP: clientIP, IPs: ips})
}
