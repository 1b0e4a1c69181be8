package tollgate_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "tollgate.dev/tollgate"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// serve starts the Functions Framework the way the Go buildpack's main
// does, with FUNCTION_TARGET naming one registered function.
func serve(t *testing.T, target string) string {
	t.Helper()
	os.Setenv("FUNCTION_TARGET", target)
	port := freePort(t)
	go funcframework.StartHostPort("127.0.0.1", port)
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never listened", target)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEntryPoints serves each registered function at "/" as Cloud
// Functions does, built lazily from the environment on its first request,
// and answering both at its root and under its name.
func TestEntryPoints(t *testing.T) {
	t.Setenv("GATEKEEPER", "user_token")
	t.Setenv("ADMIN_KEY", "entry-admin-key")
	t.Setenv("GATEKEEPER_STORE", "memory")
	t.Setenv("LOG_LEVEL", "error")
	defer os.Unsetenv("FUNCTION_TARGET")

	proxyURL := serve(t, "proxy")
	for _, path := range []string{"/health", "/proxy/health"} {
		if code, body := get(t, proxyURL+path, ""); code != 200 || !strings.Contains(body, "ok") {
			t.Errorf("proxy %s: %d %s", path, code, body)
		}
	}
	adminURL := serve(t, "admin")
	for _, path := range []string{"/users", "/admin/users"} {
		if code, body := get(t, adminURL+path, "entry-admin-key"); code != 200 || !strings.Contains(body, `"users"`) {
			t.Errorf("admin %s: %d %s", path, code, body)
		}
	}
	if code, _ := get(t, adminURL+"/users", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("admin with a wrong key: %d", code)
	}
}
