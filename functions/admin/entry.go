package admin

import (
	"context"
	"net/http"
	"os"

	"tollgate.dev/tollgate/shared/app"
)

// FromEnv is the Cloud Function's handler: configuration, secrets and the
// store are built on the first request, and SIGTERM drains requests and
// flushes usage.
func FromEnv() http.Handler {
	return app.NewLazy(func(ctx context.Context) (http.Handler, error) {
		d, err := app.Build(ctx, app.Options{Environ: os.Environ(), OpenShared: app.OpenFirebase})
		if err != nil {
			return nil, err
		}
		app.OnSIGTERM(d.Log, d.Shutdown)
		return d.Drain.Wrap(New(d)), nil
	}, nil)
}
