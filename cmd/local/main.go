// Command local runs both tollgate functions in one process, registered on
// the Functions Framework and sharing one store: the proxy under /proxy/
// (and at the root, as behind its own function URL) and admin under
// /admin/, on a server with the timeouts a directly exposed server needs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	"tollgate.dev/tollgate/functions/admin"
	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/lifecycle"
)

func main() {
	if err := run(os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

func run(environ []string, stdout, stderr io.Writer) error {
	// The Functions Framework would serve only one function if this is set.
	os.Unsetenv("FUNCTION_TARGET")
	environ, env, generated := localDefaults(environ)
	host := env["HOST"]
	if host == "" {
		host = "127.0.0.1"
	}
	port := env["PORT"]
	if port == "" {
		port = "8080"
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	in, err := app.Build(ctx, app.Options{Environ: environ, LogOutput: stderr, OpenShared: app.OpenFirebase})
	cancel()
	if err != nil {
		return err
	}
	// Both functions share the store, so one drain covers them both.
	drain := lifecycle.NewDrain()
	lifecycle.OnSIGTERM(in.Log, func(ctx context.Context) error {
		return lifecycle.Shutdown(ctx, drain, in.Store.Close)
	})
	mux, err := register(
		drain.WrapRefusing(proxy.New(*in), proxy.Unavailable),
		drain.Wrap(admin.New(*in)),
	)
	if err != nil {
		return err
	}
	srv := newServer(net.JoinHostPort(host, port), mux, defaultTimeouts())

	base := "http://" + net.JoinHostPort(displayHost(host), port)
	fmt.Fprintf(stdout, "tollgate is running (gatekeeper %s, store %s)\n", in.Config.Gatekeeper, in.Config.Store)
	fmt.Fprintf(stdout, "  proxy:    %s/proxy   (OpenAI SDK base URL: %s/proxy/openai/v1)\n", base, base)
	fmt.Fprintf(stdout, "  admin UI: %s/admin\n", base)
	fmt.Fprintf(stdout, "  admin API: %s/admin/users\n", base)
	if generated {
		fmt.Fprintf(stdout, "  development ADMIN_KEY=%s (set ADMIN_KEY to choose your own)\n", env["ADMIN_KEY"])
	}
	return srv.ListenAndServe()
}

// routes are the runner's paths: the proxy at its own root (as behind its
// function URL) and under /proxy/, admin under /admin.
func routes(proxyHandler, adminHandler http.Handler) map[string]http.Handler {
	return map[string]http.Handler{
		"/":       proxyHandler,
		"/proxy/": proxyHandler,
		"/admin/": adminHandler,
		"/admin":  adminHandler,
	}
}

// register declares each path on the Functions Framework, as function.go
// does for Cloud Functions, and builds the mux funcframework.StartHostPort
// would serve them from: one http.ServeMux entry per path. StartHostPort
// itself cannot be used: it calls http.ListenAndServe, a server with no
// timeouts, which a slow client can hold open forever (on Cloud Functions
// Google's front end absorbs slow clients; locally nothing would).
func register(proxyHandler, adminHandler http.Handler) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	bg := context.Background()
	for path, h := range routes(proxyHandler, adminHandler) {
		if err := funcframework.RegisterHTTPFunctionContext(bg, path, h.ServeHTTP); err != nil {
			return nil, fmt.Errorf("registering %s: %w", path, err)
		}
		mux.Handle(path, h)
	}
	return mux, nil
}

// timeouts bound what a client may hold: reading its headers, reading its
// whole request, and an idle keep-alive connection. Answers have no write
// deadline: a proxied stream may rightly last many minutes.
type timeouts struct {
	readHeader, read, idle time.Duration
}

func defaultTimeouts() timeouts {
	return timeouts{readHeader: 10 * time.Second, read: 2 * time.Minute, idle: 2 * time.Minute}
}

// newServer is the local HTTP server: Go's defaults plus the timeouts a
// server facing clients directly needs. Headers stay capped at Go's 1 MiB
// (larger ones get 431).
func newServer(addr string, h http.Handler, t timeouts) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    http.DefaultMaxHeaderBytes,
	}
}

// localDefaults adds the runner's own defaults to environ: user_token
// mode with a generated ADMIN_KEY (generated reports it), and no trusted
// proxy hop. It returns environ and its variables as a map.
func localDefaults(environ []string) (_ []string, env map[string]string, generated bool) {
	env = map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	set := func(k, v string) {
		environ = append(environ, k+"="+v)
		env[k] = v
	}
	// Read as config reads them: trimmed (blank is unset), modes in any case.
	value := func(k string) string { return strings.TrimSpace(env[k]) }
	if value("GATEKEEPER") == "" {
		set("GATEKEEPER", "user_token")
	}
	if value("ADMIN_KEY") == "" && strings.EqualFold(value("GATEKEEPER"), "user_token") {
		set("ADMIN_KEY", devKey())
		generated = true
	}
	// This server faces its clients directly: no proxy hop appends to
	// X-Forwarded-For, so trusting one would let any client pick its own
	// address (past IP_BLACKLIST, ADMIN_WHITELIST and the per-IP limits)
	// and the URLs it is shown. Cloud Functions keeps 1: Google's front
	// end appends the client's address.
	if value("TRUSTED_PROXIES") == "" {
		set("TRUSTED_PROXIES", "0")
	}
	return environ, env, generated
}

func displayHost(h string) string {
	if h == "" || h == "0.0.0.0" || h == "::" {
		return "localhost"
	}
	return h
}

// devKey makes a random admin key for a local run.
func devKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "dev-" + hex.EncodeToString(b)
}
