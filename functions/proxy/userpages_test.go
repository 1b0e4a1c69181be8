package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// Firebase Hosting rewrites /user/** to the proxy function with the path
// unchanged: the self-service page answers there, and its form posts back
// there.
func TestLookupAtHostingPath(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/user/lookup", "/proxy/user/lookup"} {
		a := e.do(call{method: http.MethodGet, path: path})
		if a.status != http.StatusOK || !strings.Contains(string(a.body), `action="`+path+`"`) {
			t.Errorf("GET %s: %d\n%s", path, a.status, a.body)
		}
	}
}
