package admin

import (
	"net/http"

	"tollgate.dev/tollgate/shared/app"
)

// FromEnv is the Cloud Function's handler, built on its first request.
func FromEnv() http.Handler { return app.Entry(New) }
