// Command local runs both tollgate functions in one process on the
// Functions Framework, sharing one store: the proxy under /proxy/ (and at
// the root, as behind its own function URL) and admin under /admin/.
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
)

func main() {
	if err := run(os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

func run(environ []string, stdout, stderr io.Writer) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	// The Functions Framework would serve only one function if this is set.
	os.Unsetenv("FUNCTION_TARGET")
	generated := false
	if env["GATEKEEPER"] == "" {
		environ = append(environ, "GATEKEEPER=user_token")
		env["GATEKEEPER"] = "user_token"
	}
	if env["ADMIN_KEY"] == "" && env["GATEKEEPER"] == "user_token" {
		key := devKey()
		environ = append(environ, "ADMIN_KEY="+key)
		env["ADMIN_KEY"] = key
		generated = true
	}
	host := env["HOST"]
	if host == "" {
		host = "127.0.0.1"
	}
	port := env["PORT"]
	if port == "" {
		port = "8080"
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	d, err := app.Build(ctx, app.Options{Environ: environ, LogOutput: stderr, OpenShared: app.OpenFirebase})
	cancel()
	if err != nil {
		return err
	}
	app.OnSIGTERM(d.Log, d.Shutdown)

	proxyHandler := d.Drain.Wrap(proxy.New(d))
	adminHandler := d.Drain.Wrap(admin.New(d))
	bg := context.Background()
	for path, h := range map[string]func(w http.ResponseWriter, r *http.Request){
		"/":       proxyHandler.ServeHTTP, // the proxy's own root, as behind its function URL
		"/proxy/": proxyHandler.ServeHTTP,
		"/admin/": adminHandler.ServeHTTP,
		"/admin":  adminHandler.ServeHTTP,
	} {
		if err := funcframework.RegisterHTTPFunctionContext(bg, path, h); err != nil {
			return fmt.Errorf("registering %s: %w", path, err)
		}
	}

	base := "http://" + net.JoinHostPort(displayHost(host), port)
	fmt.Fprintf(stdout, "tollgate is running (gatekeeper %s, store %s)\n", d.Config.Gatekeeper, d.Config.Store)
	fmt.Fprintf(stdout, "  proxy:    %s/proxy   (OpenAI SDK base URL: %s/proxy/openai/v1)\n", base, base)
	fmt.Fprintf(stdout, "  admin UI: %s/admin\n", base)
	fmt.Fprintf(stdout, "  admin API: %s/admin/users\n", base)
	if generated {
		fmt.Fprintf(stdout, "  development ADMIN_KEY=%s (set ADMIN_KEY to choose your own)\n", env["ADMIN_KEY"])
	}
	return funcframework.StartHostPort(host, port)
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
