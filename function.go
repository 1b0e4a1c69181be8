// Package tollgate registers tollgate's two Cloud Functions. Its init only
// registers the entry points: each function builds what it needs on its
// first request.
package tollgate

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"tollgate.dev/tollgate/functions/admin"
	"tollgate.dev/tollgate/functions/proxy"
)

func init() {
	functions.HTTP("proxy", proxy.FromEnv().ServeHTTP)
	functions.HTTP("admin", admin.FromEnv().ServeHTTP)
}
