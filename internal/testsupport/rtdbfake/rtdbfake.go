// Package rtdbfake is an in-process Firebase Realtime Database for tests. It
// speaks the REST protocol faithfully enough for the real
// firebase.google.com/go/v4/db client:
//
//   - paths /<path>.json; GET, PUT, PATCH (multi-path update, atomic),
//     POST (push ids), DELETE, and X-HTTP-Method-Override on POST;
//   - X-Firebase-ETag: true → ETag header; If-Match on PUT and DELETE → 412
//     with the current value and its ETag on mismatch (what conditional
//     writes retry on); If-None-Match on GET → 304;
//   - OnWrite: a test hook run before each write, to interleave another
//     writer between a client's read and its conditional write;
//     LoseAnswers: a hook that has a write applied and its answer lost;
//   - print=silent (204), shallow=true, orderBy="$key" with
//     limitToFirst/limitToLast/startAt/endAt/equalTo;
//   - server values {".sv":"timestamp"} and {".sv":{"increment":n}};
//   - key validation (400 for . $ # [ ] / and control characters), null and
//     empty-object pruning, numbers as doubles, and objects with dense
//     integer keys served as arrays;
//   - errors as {"error": "..."}.
//
// The ns query parameter (the emulator's database name) is recorded but
// does not separate data: one Server is one database.
//
// Two ways in, as the Go SDK allows:
//   - emulator style, plain HTTP: the SDK takes an emulator only as
//     host:port?ns=<name> with a host name, so give it Host()+"?ns=<name>"
//     (localhost:PORT?ns=…) as the database URL or in
//     FIREBASE_DATABASE_EMULATOR_HOST; rtdb.Open also takes URL()
//     (http://127.0.0.1:PORT?ns=rtdbfake) and maps it to that form. The SDK
//     then sends "Authorization: Bearer owner". The server listens on
//     [::1]:PORT as well when it can, so that localhost reaches it whichever
//     address the resolver gives first.
//   - production style, HTTPS: pass TLSURL() with ClientOptions() (an HTTP
//     client trusting the test certificate; the SDK then sends no token).
//
// Auth: by default every request is served, with or without a token (the
// real server would check a Google OAuth token or "owner" on the emulator).
// RequireToken makes it answer 401 "Permission denied" to any request not
// carrying that bearer token (header, access_token= or auth=).
package rtdbfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/api/option"
)

// maxBody bounds a request body (the real limit is 256 MB).
const maxBody = 64 << 20

// Server is a running fake database. Its methods are safe for concurrent use.
type Server struct {
	t        testing.TB
	plain    *httptest.Server
	v6       *http.Server
	tls      *httptest.Server
	requests atomic.Int64
	down     atomic.Bool
	delay    atomic.Int64 // time.Duration
	onWrite  atomic.Pointer[WriteHook]
	lose     atomic.Pointer[LoseHook]

	mu         sync.Mutex
	root       any
	token      string // required bearer token; "" accepts all
	namespaces map[string]bool
	now        func() time.Time
	lastPush   int64
	pushRand   [12]int
}

// Start serves a new empty database until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, namespaces: map[string]bool{}, now: time.Now}
	h := http.HandlerFunc(s.serve)

	v4, v6 := listenLoopback(t)
	s.plain = httptest.NewUnstartedServer(h)
	s.plain.Listener.Close()
	s.plain.Listener = v4
	s.plain.Start()
	if v6 != nil {
		s.v6 = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = s.v6.Serve(v6) }()
	}
	s.tls = httptest.NewTLSServer(h)
	t.Cleanup(s.Close)
	return s
}

// listenLoopback listens on 127.0.0.1:P and, where IPv6 loopback exists, on
// [::1]:P with the same P: "localhost:P" may resolve to either.
func listenLoopback(t testing.TB) (net.Listener, net.Listener) {
	for range 50 {
		v4, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("rtdbfake: listen: %v", err)
		}
		port := v4.Addr().(*net.TCPAddr).Port
		v6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err == nil {
			return v4, v6
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return v4, nil // no IPv6 loopback: localhost is 127.0.0.1 only
		}
		v4.Close()
	}
	t.Fatalf("rtdbfake: no port free on both 127.0.0.1 and ::1")
	return nil, nil
}

// Close stops the server; Start registers it with t.Cleanup.
func (s *Server) Close() {
	s.plain.Close()
	s.tls.Close()
	if s.v6 != nil {
		s.v6.Close()
	}
}

// URL is the emulator-style database URL: http://127.0.0.1:PORT?ns=rtdbfake.
func (s *Server) URL() string { return s.plain.URL + "?ns=rtdbfake" }

// Host is localhost:PORT of the plain HTTP listener, for
// FIREBASE_DATABASE_EMULATOR_HOST (the Go SDK wants "?ns=<name>" after it).
func (s *Server) Host() string {
	return "localhost:" + strconv.Itoa(s.plain.Listener.Addr().(*net.TCPAddr).Port)
}

// TLSURL is the production-style database URL, https://127.0.0.1:PORT; use
// it with ClientOptions.
func (s *Server) TLSURL() string { return s.tls.URL }

// ClientOptions make the SDK trust the TLS listener's test certificate.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{option.WithHTTPClient(s.tls.Client())}
}

// Requests is the number of requests received so far, failed ones included.
func (s *Server) Requests() int64 { return s.requests.Load() }

// SetDown models an outage: while down, every request's connection is
// closed without an answer, as when the database cannot be reached.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// SetDelay holds every request for d before serving it (0: no delay). A
// request whose client gives up meanwhile is dropped unserved.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// WriteHook sees a write request (PUT, PATCH, POST, DELETE) before it is
// served: path is the database path ("/users/tok-a"), conditional tells an
// If-Match write. It runs outside the server's lock, so it may change the
// data (SetData) as another client writing between a reader's read and its
// conditional write would.
type WriteHook func(method, path string, conditional bool)

// OnWrite installs h (nil removes it). Requests are served concurrently,
// so h must be safe for concurrent use.
func (s *Server) OnWrite(h WriteHook) {
	if h == nil {
		s.onWrite.Store(nil)
		return
	}
	s.onWrite.Store(&h)
}

// LoseHook sees a write request as WriteHook does, and reports whether
// its answer is lost: the write is applied, then the connection closed
// without an answer, as when the answer is lost on its way back (the
// client cannot tell this from a write never made).
type LoseHook func(method, path string, conditional bool) bool

// LoseAnswers installs h (nil removes it); it must be safe for concurrent
// use.
func (s *Server) LoseAnswers(h LoseHook) {
	if h == nil {
		s.lose.Store(nil)
		return
	}
	s.lose.Store(&h)
}

// RequireToken makes the server refuse requests without "Bearer token"
// with 401; "" accepts every request.
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// SetNow sets the clock of {".sv":"timestamp"} and push ids.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Namespaces lists the ns= values requests carried, sorted.
func (s *Server) Namespaces() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.namespaces))
	for ns := range s.namespaces {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

// Data returns a copy of the raw stored value at path ("" or "/" for the
// root): objects as map[string]any (arrays stored as integer-keyed
// objects), numbers as float64; nil when nothing is there.
func (s *Server) Data(path string) any {
	segs, err := parsePath(path)
	if err != nil {
		s.t.Fatalf("rtdbfake: Data(%q): %v", path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyTree(getAt(s.root, segs))
}

// SetData writes v (any JSON-encodable value; nil deletes) at path, as a PUT
// would: for seeding data written by other programs.
func (s *Server) SetData(path string, v any) {
	segs, err := parsePath(path)
	if err != nil {
		s.t.Fatalf("rtdbfake: SetData(%q): %v", path, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatalf("rtdbfake: SetData(%q): %v", path, err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		s.t.Fatalf("rtdbfake: SetData(%q): %v", path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	val, err := s.resolverLocked().resolve(generic, getAt(s.root, segs), len(segs))
	if err != nil {
		s.t.Fatalf("rtdbfake: SetData(%q): %v", path, err)
	}
	s.root = setAt(s.root, segs, val)
}

func (s *Server) resolverLocked() resolver {
	return resolver{nowMS: float64(s.now().UnixMilli())}
}

// httpError is an answer other than success.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if s.down.Load() {
		s.drop(w)
		return
	}
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if !s.authorized(r) {
		writeError(w, &httpError{status: http.StatusUnauthorized, msg: "Permission denied"})
		return
	}
	if s.loses(r) {
		rec := httptest.NewRecorder()
		if err := s.handle(rec, r); err != nil {
			writeError(rec, err)
		}
		s.drop(w)
		return
	}
	if err := s.handle(w, r); err != nil {
		writeError(w, err)
	}
}

// loses reports whether r is a write whose answer LoseAnswers loses.
func (s *Server) loses(r *http.Request) bool {
	h := s.lose.Load()
	if h == nil || r.Method == http.MethodGet {
		return false
	}
	p, _ := strings.CutSuffix(r.URL.Path, ".json")
	return (*h)(r.Method, p, r.Header.Get("If-Match") != "")
}

// drop closes the connection without answering.
func (s *Server) drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, &httpError{status: http.StatusServiceUnavailable, msg: "Service unavailable"})
		return
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	want := s.token
	if ns := r.URL.Query().Get("ns"); ns != "" {
		s.namespaces[ns] = true
	}
	s.mu.Unlock()
	if want == "" {
		return true
	}
	q := r.URL.Query()
	return r.Header.Get("Authorization") == "Bearer "+want || q.Get("access_token") == want || q.Get("auth") == want
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) *httpError {
	method := r.Method
	if o := r.Header.Get("X-HTTP-Method-Override"); o != "" && method == http.MethodPost {
		method = strings.ToUpper(o)
	}
	p, ok := strings.CutSuffix(r.URL.Path, ".json")
	if !ok {
		return &httpError{status: http.StatusNotFound, msg: "Not found: REST paths end with .json"}
	}
	segs, err := parsePath(p)
	if err != nil {
		return badRequest("%s", err.Error())
	}
	q := r.URL.Query()
	silent := q.Get("print") == "silent"
	if method != http.MethodPut && method != http.MethodDelete && r.Header.Get("If-Match") != "" {
		return badRequest("If-Match is supported with PUT and DELETE only")
	}

	if h := s.onWrite.Load(); h != nil && method != http.MethodGet {
		(*h)(method, "/"+strings.Join(segs, "/"), r.Header.Get("If-Match") != "")
	}

	switch method {
	case http.MethodGet:
		return s.get(w, r, segs, silent)
	case http.MethodPut, http.MethodPatch, http.MethodPost:
		body, err := readJSON(r)
		if err != nil {
			return err
		}
		return s.write(w, r, method, segs, body, silent)
	case http.MethodDelete:
		return s.write(w, r, method, segs, nil, silent)
	default:
		return &httpError{status: http.StatusMethodNotAllowed, msg: "Method not allowed"}
	}
}

func readJSON(r *http.Request) (any, *httpError) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("Invalid data; couldn't read the request body")
	}
	if len(b) > maxBody {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge, msg: "Payload too large"}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, badRequest("Invalid data; couldn't parse JSON object, array, or value.")
	}
	return v, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, segs []string, silent bool) *httpError {
	q := r.URL.Query()
	query, isQuery, qerr := parseQuery(q)
	if qerr != nil {
		return qerr
	}
	isShallow := q.Get("shallow") == "true"
	if isShallow && isQuery {
		return badRequest("Mixing 'shallow' and querying parameters is not supported")
	}

	s.mu.Lock()
	cur := getAt(s.root, segs)
	tag := etag(cur)
	var out any
	switch {
	case isShallow:
		out = shallow(cur)
	case isQuery:
		out = render(query.apply(cur))
	default:
		out = render(cur)
	}
	s.mu.Unlock()

	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == tag {
		w.Header().Set("ETag", tag)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if r.Header.Get("X-Firebase-ETag") == "true" {
		w.Header().Set("ETag", tag)
	}
	if silent {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// parseQuery reads orderBy and its filters; only "$key" ordering is served.
func parseQuery(q map[string][]string) (keyQuery, bool, *httpError) {
	get := func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[0], true
	}
	var kq keyQuery
	ob, ok := get("orderBy")
	if !ok {
		for _, k := range []string{"limitToFirst", "limitToLast", "startAt", "endAt", "equalTo"} {
			if _, has := get(k); has {
				return kq, false, badRequest("%s requires orderBy", k)
			}
		}
		return kq, false, nil
	}
	var order string
	if err := json.Unmarshal([]byte(ob), &order); err != nil {
		return kq, false, badRequest("orderBy must be a JSON string, e.g. \"$key\"")
	}
	if order != "$key" {
		return kq, false, badRequest("rtdbfake serves orderBy=\"$key\" only, not %q", order)
	}
	for k, dst := range map[string]**string{"startAt": &kq.start, "endAt": &kq.end, "equalTo": &kq.equal} {
		raw, has := get(k)
		if !has {
			continue
		}
		var v string
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return kq, false, badRequest("%s must be a JSON string when ordering by $key", k)
		}
		*dst = &v
	}
	for k, dst := range map[string]*int{"limitToFirst": &kq.first, "limitToLast": &kq.last} {
		raw, has := get(k)
		if !has {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n <= 0 {
			return kq, false, badRequest("%s must be a positive integer", k)
		}
		*dst = n
	}
	if kq.first > 0 && kq.last > 0 {
		return kq, false, badRequest("limitToFirst and limitToLast cannot be combined")
	}
	return kq, true, nil
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, method string, segs []string, body any, silent bool) *httpError {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := getAt(s.root, segs)
	if im := r.Header.Get("If-Match"); im != "" {
		if tag := etag(cur); im != tag {
			w.Header().Set("ETag", tag)
			writeJSON(w, http.StatusPreconditionFailed, render(cur))
			return nil
		}
	}
	res := s.resolverLocked()
	var answer any
	switch method {
	case http.MethodPut:
		val, err := res.resolve(body, cur, len(segs))
		if err != nil {
			return badRequest("%s", err.Error())
		}
		s.root = setAt(s.root, segs, val)
		answer = render(val)
	case http.MethodDelete:
		s.root = setAt(s.root, segs, nil)
	case http.MethodPost:
		val, err := res.resolve(body, nil, len(segs)+1)
		if err != nil {
			return badRequest("%s", err.Error())
		}
		id := s.pushIDLocked()
		s.root = setAt(s.root, append(slices.Clone(segs), id), val)
		answer = map[string]any{"name": id}
	case http.MethodPatch:
		written, err := s.patchLocked(res, segs, body)
		if err != nil {
			return err
		}
		answer = written
	}
	if r.Header.Get("X-Firebase-ETag") == "true" || r.Header.Get("If-Match") != "" {
		w.Header().Set("ETag", etag(getAt(s.root, segs)))
	}
	if silent {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// patchLocked applies a multi-path update: every key is a path below segs;
// all are validated and resolved before any is written, so the update is
// atomic. It answers the data written.
func (s *Server) patchLocked(res resolver, segs []string, body any) (any, *httpError) {
	m, ok := body.(map[string]any)
	if !ok {
		return nil, badRequest("Invalid data; PATCH needs a JSON object of paths to values")
	}
	type change struct {
		path []string
		val  any
	}
	changes := make([]change, 0, len(m))
	paths := make([]string, 0, len(m))
	for k := range m {
		paths = append(paths, k)
	}
	slices.Sort(paths)
	for _, k := range paths {
		rel, err := parsePath(k)
		if err != nil || len(rel) == 0 {
			return nil, badRequest("Invalid data; invalid path %q in update", k)
		}
		full := append(slices.Clone(segs), rel...)
		val, err := res.resolve(m[k], getAt(s.root, full), len(full))
		if err != nil {
			return nil, badRequest("%s", err.Error())
		}
		changes = append(changes, change{full, val})
	}
	for i := range changes {
		for j := range changes {
			if i != j && isPrefix(changes[i].path, changes[j].path) {
				return nil, badRequest("Invalid data; path %q is an ancestor of %q in the same update",
					strings.Join(changes[i].path[len(segs):], "/"), strings.Join(changes[j].path[len(segs):], "/"))
			}
		}
	}
	written := make(map[string]any, len(changes))
	for _, c := range changes {
		s.root = setAt(s.root, c.path, c.val)
		written[strings.Join(c.path[len(segs):], "/")] = render(c.val)
	}
	return written, nil
}

func isPrefix(a, b []string) bool {
	return len(a) <= len(b) && slices.Equal(a, b[:len(a)])
}

// pushChars are the 64 characters of push ids, in ASCII order so that ids
// sort by creation time.
const pushChars = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

// pushIDLocked makes a 20-character push id: 8 characters of milliseconds,
// then 12 random ones, incremented within one millisecond to keep order.
func (s *Server) pushIDLocked() string {
	now := s.now().UnixMilli()
	if now == s.lastPush {
		i := len(s.pushRand) - 1
		for i > 0 && s.pushRand[i] == 63 {
			s.pushRand[i] = 0
			i--
		}
		s.pushRand[i]++
	} else {
		for i := range s.pushRand {
			s.pushRand[i] = rand.IntN(64)
		}
	}
	s.lastPush = now
	var b [20]byte
	for i := 7; i >= 0; i-- {
		b[i] = pushChars[now%64]
		now /= 64
	}
	for i, r := range s.pushRand {
		b[8+i] = pushChars[r]
	}
	return string(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, err *httpError) {
	writeJSON(w, err.status, map[string]string{"error": err.msg})
}
