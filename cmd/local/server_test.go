package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/admin"
	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/lifecycle"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

const testAdminKey = "local-admin-key-0123456789abcdef"

// serve runs the runner's real mux (both functions, hand-built
// dependencies) on its own server with timeouts t, on 127.0.0.1.
func serve(t *testing.T, vars map[string]string, tm timeouts) (addr string, store users.Store) {
	t.Helper()
	// The OpenAI upstream is a local stand-in: tests never leave 127.0.0.1.
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	t.Cleanup(upstream.Close)
	env := map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": testAdminKey,
		"OPENAI_KEY": "sk-local-operator-key", "OPENAI_BASE_URL": upstream.URL}
	for k, v := range vars {
		env[k] = v
	}
	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatal(err)
	}
	store = memory.New()
	log := logging.New(io.Discard, "info")
	drain := lifecycle.NewDrain()
	mux, err := register(
		drain.Wrap(proxy.New(proxy.Deps{Config: cfg, Store: store, Log: log, Now: time.Now})),
		drain.Wrap(admin.New(admin.Deps{Config: cfg, Store: store, Log: log, Now: time.Now})),
	)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(l.Addr().String(), mux, tm)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String(), store
}

// The production settings: every client-held phase is bounded, answers
// (streams) are not, headers are capped at Go's 1 MiB.
func TestServerTimeoutsAreSet(t *testing.T) {
	srv := newServer("127.0.0.1:0", http.NotFoundHandler(), defaultTimeouts())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > 30*time.Second {
		t.Errorf("ReadHeaderTimeout %s", srv.ReadHeaderTimeout)
	}
	if srv.ReadTimeout < time.Minute || srv.IdleTimeout <= 0 {
		t.Errorf("ReadTimeout %s (uploads of 32 MiB need time), IdleTimeout %s", srv.ReadTimeout, srv.IdleTimeout)
	}
	if srv.WriteTimeout != 0 {
		t.Errorf("WriteTimeout %s would cut long streams", srv.WriteTimeout)
	}
	if srv.MaxHeaderBytes != 1<<20 {
		t.Errorf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
}

// closedWithin reports whether the server closes conn within d (reading
// and discarding whatever it answers).
func closedWithin(conn net.Conn, d time.Duration) (bool, string) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

// A slow-loris client trickling its headers is cut off once the header
// timeout passes, instead of holding a connection (and a goroutine)
// forever as http.ListenAndServe would let it.
func TestSlowLorisHeadersAreCut(t *testing.T) {
	addr, _ := serve(t, nil, timeouts{readHeader: 300 * time.Millisecond, read: time.Minute, idle: time.Minute})
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET /proxy/health HTTP/1.1\r\nHost: localhost\r\n"); err != nil {
		t.Fatal(err)
	}
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		for i := range 40 { // at most 4 s of trickling
			time.Sleep(100 * time.Millisecond)
			if _, err := io.WriteString(conn, "X-Slow-"+itoa(i)+": a\r\n"); err != nil {
				return // the server closed the connection
			}
		}
	}()
	closed, _ := closedWithin(conn, 3*time.Second)
	if !closed {
		t.Fatal("the server still holds a connection whose headers never end")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("cut after %s; the header timeout is 300ms", took)
	}
	<-cut
}

// A client that sends its headers but trickles its body is cut off by the
// read timeout.
func TestSlowBodyIsCut(t *testing.T) {
	addr, _ := serve(t, nil, timeouts{readHeader: time.Second, read: 500 * time.Millisecond, idle: time.Minute})
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = io.WriteString(conn, "POST /proxy/openai/v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"+
		"Authorization: Bearer "+testAdminKey+"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 40 {
			time.Sleep(100 * time.Millisecond)
			if _, err := io.WriteString(conn, " "); err != nil {
				return
			}
		}
	}()
	closed, answer := closedWithin(conn, 4*time.Second)
	if !closed {
		t.Fatal("the server still waits for a body trickling in")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("cut after %s; the read timeout is 500ms", took)
	}
	if answer != "" && !strings.HasPrefix(answer, "HTTP/1.1 400") {
		t.Fatalf("answer to a body cut by the timeout: %q", answer)
	}
}

// Headers over Go's 1 MiB limit are refused with 431 before any handler
// runs; headers just under it are served.
func TestOversizedHeaders(t *testing.T) {
	addr, _ := serve(t, nil, defaultTimeouts())
	for _, tc := range []struct {
		size int
		want int
	}{{8 << 10, http.StatusOK}, {1<<20 + 8<<10, http.StatusRequestHeaderFieldsTooLarge}} {
		conn, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		req := "GET /proxy/health HTTP/1.1\r\nHost: localhost\r\nX-Big: " + strings.Repeat("a", tc.size) + "\r\n\r\n"
		go func() { _, _ = io.WriteString(conn, req) }()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%d bytes of header: %v", tc.size, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes of header: %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}

// rawGet sends path exactly as written (no client-side cleaning) and
// returns the status, Location and body.
func rawGet(t *testing.T, addr, method, path, auth string) (int, string, string) {
	t.Helper()
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
	if auth != "" {
		req += "Authorization: Bearer " + auth + "\r\n"
	}
	if method == http.MethodPost {
		req += "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	} else {
		req += "\r\n"
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// Path tricks reach nothing they should: dot segments and their escapes
// are cleaned into a redirect (which then meets the same checks), escaped
// slashes and doubled prefixes match no route, and the admin API is never
// served through the proxy's paths, key or no key.
func TestPathTricks(t *testing.T) {
	addr, store := serve(t, nil, defaultTimeouts())
	if _, err := store.Modify(context.Background(), "tok-secret-user-0001", true, func(u *users.User, _ bool) error {
		*u = *users.New("tok-secret-user-0001", users.Normal, time.Now(), nil)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	type want struct {
		status   int    // 301 stands for any redirect (Go's mux answers 307)
		location string // for redirects
	}
	cases := []struct {
		method, path, auth string
		want               want
	}{
		// Dot segments: cleaned by the mux into a redirect to the real
		// path, where the admin key is still required.
		{"GET", "/admin/../proxy/health", "", want{301, "/proxy/health"}},
		{"GET", "/proxy/../admin/users", "", want{301, "/admin/users"}},
		// Escaped dots are a segment named "..", not a step up: no route.
		{"GET", "/proxy/%2e%2e/admin/users", "", want{404, ""}},
		{"GET", "/proxy/%2E%2E/admin/users", testAdminKey, want{404, ""}},
		{"GET", "/admin/%2e%2e/proxy/health", testAdminKey, want{404, ""}},
		{"GET", "/proxy/openai/../../admin/users", "", want{301, "/admin/users"}},
		{"GET", "/admin/users", "", want{401, ""}},
		// Escaped slashes are not path separators: no route.
		{"GET", "/admin%2Fusers", testAdminKey, want{404, ""}},
		// ...except that the proxy reads its own decoded path: this is the
		// model list, as the plain path would be (and as public).
		{"GET", "/proxy%2Fopenai%2Fv1%2Fmodels", testAdminKey, want{200, ""}},
		{"GET", "/proxy%2Fopenai%2Fv1%2Fmodels", "", want{401, ""}},
		{"GET", "/proxy%2F..%2Fadmin%2Fusers", testAdminKey, want{404, ""}},
		{"GET", "/admin/users%2Ftok-secret-user-0001", "", want{401, ""}},
		{"GET", "/admin/users%2Ftok-secret-user-0001", testAdminKey, want{404, ""}},
		// Doubled or foreign prefixes: the prefix is stripped once.
		{"GET", "/admin/admin/users", testAdminKey, want{404, ""}},
		{"GET", "/proxy/proxy/openai/v1/models", testAdminKey, want{404, ""}},
		{"POST", "/proxy/proxy/openai/v1/chat/completions", testAdminKey, want{404, ""}},
		// The admin API is not part of the proxy, whatever the key.
		{"GET", "/proxy/admin/users", testAdminKey, want{404, ""}},
		{"GET", "/users", testAdminKey, want{404, ""}},
		{"GET", "/proxy/users/tok-secret-user-0001", testAdminKey, want{404, ""}},
		{"GET", "/admin/../users", testAdminKey, want{301, "/users"}},
	}
	for _, tc := range cases {
		status, loc, body := rawGet(t, addr, tc.method, tc.path, tc.auth)
		if isRedirect(status) {
			status = 301
		}
		if status != tc.want.status || (tc.want.location != "" && loc != tc.want.location) {
			t.Errorf("%s %s: %d (Location %q), want %d %q", tc.method, tc.path, status, loc, tc.want.status, tc.want.location)
		}
		if strings.Contains(body, "tok-secret-user-0001") || strings.Contains(body, `"users"`) {
			t.Errorf("%s %s revealed users: %s", tc.method, tc.path, body)
		}
	}
}

// Outside ADMIN_WHITELIST every spelling of an admin route is refused,
// however it is escaped; the redirects path cleaning makes lead to 403.
func TestPathTricksMeetTheWhitelist(t *testing.T) {
	addr, _ := serve(t, map[string]string{"ADMIN_WHITELIST": "10.0.0.0/8"}, defaultTimeouts())
	for _, path := range []string{
		"/admin/users", "/admin", "/admin/", "/admin/login", "/admin/openapi.yaml", "/admin//users",
		"/%61dmin/users", "/admin/%75sers", "/admin/./users", "/admin/users/", "/ADMIN/../admin/users",
	} {
		status, loc, body := rawGet(t, addr, "GET", path, testAdminKey)
		for hops := 0; isRedirect(status) && hops < 3; hops++ {
			status, loc, body = rawGet(t, addr, "GET", loc, testAdminKey)
		}
		if status != http.StatusForbidden {
			t.Errorf("GET %s from outside the whitelist: %d %s", path, status, body)
		}
	}
}

func isRedirect(status int) bool {
	return status == http.StatusMovedPermanently || status == http.StatusTemporaryRedirect || status == http.StatusPermanentRedirect
}

func itoa(i int) string {
	return string(rune('a'+i%26)) + string(rune('a'+i/26%26))
}
