// Package tollgate registers tollgate's two Cloud Functions. Its init only
// registers the entry points: each function builds what it needs on its
// first request.
package tollgate

import (
	"context"
	"net/http"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"tollgate.dev/tollgate/functions/admin"
	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/lifecycle"
)

func init() {
	functions.HTTP("proxy", onFirstRequest(func(in *app.Instance) http.Handler {
		return proxy.New(*in)
	}, proxy.Unavailable).ServeHTTP)
	functions.HTTP("admin", onFirstRequest(func(in *app.Instance) http.Handler {
		return admin.New(*in)
	}, nil).ServeHTTP)
}

// onFirstRequest is a function's handler: the first request builds the
// configuration, secrets and store from the environment (only the instance
// of the function actually served pays for it), then every request is
// counted so that SIGTERM lets them finish before usage is flushed.
// refuse answers when it cannot serve (nil: plain text).
func onFirstRequest(newHandler func(*app.Instance) http.Handler, refuse lifecycle.Refusal) http.Handler {
	return lifecycle.NewLazy(func(ctx context.Context) (http.Handler, error) {
		in, err := app.Build(ctx, app.Options{Environ: os.Environ(), OpenShared: app.OpenFirebase})
		if err != nil {
			return nil, err
		}
		drain := lifecycle.NewDrain()
		lifecycle.OnSIGTERM(in.Log, func(ctx context.Context) error {
			return lifecycle.Shutdown(ctx, drain, in.Store.Close)
		})
		return drain.WrapRefusing(newHandler(in), refuse), nil
	}, nil).Refusing(refuse)
}
