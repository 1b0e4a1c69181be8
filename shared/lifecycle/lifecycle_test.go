package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/lifecycle"
)

func TestLazyBuildsOnce(t *testing.T) {
	var builds atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	l := lifecycle.NewLazy(func(ctx context.Context) (http.Handler, error) {
		builds.Add(1)
		if _, ok := ctx.Deadline(); !ok {
			t.Error("build context has no deadline")
		}
		close(entered)
		<-release
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("built")) }), nil
	}, func(err error) { t.Errorf("fail called: %v", err) })

	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Go(func() {
			w := httptest.NewRecorder()
			l.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			codes[i], bodies[i] = w.Code, w.Body.String()
		})
	}
	<-entered
	close(release)
	wg.Wait()
	if builds.Load() != 1 {
		t.Fatalf("built %d times", builds.Load())
	}
	for i := range n {
		if codes[i] != 200 || bodies[i] != "built" {
			t.Errorf("request %d: %d %q", i, codes[i], bodies[i])
		}
	}
}

func TestLazyFailure(t *testing.T) {
	var builds, fails atomic.Int32
	var failErr error
	cause := &config.Error{Var: "GATEKEEPER", Value: "foo", Accepted: "none, proxy_key, user_token"}
	l := lifecycle.NewLazy(func(ctx context.Context) (http.Handler, error) {
		builds.Add(1)
		return nil, cause
	}, func(err error) {
		fails.Add(1)
		failErr = err
	})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			w := httptest.NewRecorder()
			l.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", w.Code)
			}
			if strings.Contains(w.Body.String(), "GATEKEEPER") {
				t.Errorf("client sees the configuration error: %q", w.Body.String())
			}
		})
	}
	wg.Wait()
	if builds.Load() != 1 || fails.Load() != 1 {
		t.Errorf("builds %d fails %d, want 1 and 1", builds.Load(), fails.Load())
	}
	if failErr != cause {
		t.Errorf("fail got %v", failErr)
	}
}

// A build that panics (a MustCompile in a parser, a nil dereference in a
// store opener) fails as a build error does: 503 and one call of fail, so
// the instance stops, instead of a nil handler for every later request.
func TestLazyBuildPanicFailsTheInstance(t *testing.T) {
	var fails atomic.Int32
	var failErr error
	l := lifecycle.NewLazy(func(ctx context.Context) (http.Handler, error) {
		panic("boom in build")
	}, func(err error) {
		fails.Add(1)
		failErr = err
	})
	for i := range 3 {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("request %d panicked: %v", i, p)
				}
			}()
			w := httptest.NewRecorder()
			l.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("request %d: status %d, want 503", i, w.Code)
			}
		}()
	}
	if fails.Load() != 1 {
		t.Fatalf("fail called %d times, want 1", fails.Load())
	}
	if !strings.Contains(failErr.Error(), "boom in build") {
		t.Errorf("fail got %v, want the panic's value", failErr)
	}
}

func TestDrain(t *testing.T) {
	d := lifecycle.NewDrain()
	entered := make(chan struct{})
	release := make(chan struct{})
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		w.Write([]byte("ok"))
	}))
	serve := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w
	}
	if w := serve("/fast"); w.Code != 200 || d.InFlight() != 0 {
		t.Fatalf("open drain: %d, in flight %d", w.Code, d.InFlight())
	}

	slowDone := make(chan *httptest.ResponseRecorder)
	go func() { slowDone <- serve("/slow") }()
	<-entered
	if d.InFlight() != 1 {
		t.Fatalf("in flight = %d, want 1", d.InFlight())
	}
	closed := make(chan struct{})
	go func() {
		d.Close(context.Background())
		close(closed)
	}()
	// Once Close has begun, new requests are refused.
	var refused *httptest.ResponseRecorder
	for range 10000 {
		if w := serve("/fast"); w.Code == http.StatusServiceUnavailable {
			refused = w
			break
		}
		runtime.Gosched()
	}
	if refused == nil {
		t.Fatal("new requests still served while closing")
	}
	if refused.Header().Get("Connection") != "close" {
		t.Error("refusal does not close the connection")
	}
	select {
	case <-closed:
		t.Fatal("Close returned with a request in flight")
	default:
	}
	close(release)
	if w := <-slowDone; w.Code != 200 || w.Body.String() != "ok" {
		t.Errorf("in-flight request cut short: %d %q", w.Code, w.Body.String())
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once idle")
	}
	if d.InFlight() != 0 {
		t.Errorf("in flight = %d after drain", d.InFlight())
	}
}

func TestDrainCloseGivesUpAtDeadline(t *testing.T) {
	d := lifecycle.NewDrain()
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	<-entered
	c, cancel := context.WithCancel(context.Background())
	cancel()
	d.Close(c) // must return although a request is stuck
	if d.InFlight() != 1 {
		t.Errorf("in flight = %d", d.InFlight())
	}
}

// Many requests racing with Close: every one either completes fully
// before Close returns or is refused.
func TestDrainRace(t *testing.T) {
	for range 20 {
		d := lifecycle.NewDrain()
		var finished atomic.Int32
		var closedAt atomic.Int32
		closedAt.Store(-1)
		h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runtime.Gosched()
			finished.Add(1)
		}))
		var wg sync.WaitGroup
		served := atomic.Int32{}
		for range 50 {
			wg.Go(func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
				if w.Code == 200 {
					served.Add(1)
				}
			})
		}
		d.Close(context.Background())
		closedAt.Store(finished.Load())
		wg.Wait()
		if got := closedAt.Load(); got != served.Load() {
			t.Fatalf("%d requests served but only %d had finished when Close returned", served.Load(), got)
		}
	}
}

// Shutdown lets the request in flight finish before the store is closed
// (so its usage reaches the flush), and gives the close a deadline.
func TestShutdownOrder(t *testing.T) {
	d := lifecycle.NewDrain()
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		finished.Store(true)
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	<-entered
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()

	var closes atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := lifecycle.Shutdown(ctx, d, func(ctx context.Context) error {
		if !finished.Load() {
			return errors.New("store closed while a request was in flight")
		}
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("store closed without a deadline")
		}
		closes.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if closes.Load() != 1 {
		t.Errorf("store closed %d times", closes.Load())
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("request after shutdown: %d, want 503", w.Code)
	}
}

// A request that outlasts the drain window is cut with ErrShuttingDown,
// and the store is still closed, within the caller's deadline.
func TestShutdownCutsStuckRequests(t *testing.T) {
	d := lifecycle.NewDrain()
	entered := make(chan struct{})
	cause := make(chan error, 1)
	h := d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		cause <- context.Cause(r.Context())
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	closed := false
	start := time.Now()
	if err := lifecycle.Shutdown(ctx, d, func(context.Context) error { closed = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if !closed {
		t.Error("store not closed")
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("shutdown took %v, beyond the caller's deadline", el)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, lifecycle.ErrShuttingDown) {
			t.Errorf("cut with %v, want ErrShuttingDown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stuck request never cut")
	}
}

// slowConn makes each write to the client take delay, as a full socket
// buffer to a slow client does.
type slowConn struct {
	net.Conn
	delay time.Duration
}

func (c slowConn) Write(b []byte) (int, error) {
	time.Sleep(c.delay)
	return c.Conn.Write(b)
}

type slowListener struct {
	net.Listener
	delay time.Duration
}

func (l slowListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return slowConn{c, l.delay}, nil
}

// answerDuringShutdown serves one request with h behind a drain, over a
// connection whose writes each take delay, and shuts down while h runs.
// It returns the answer and how long after Shutdown returned (when
// OnSIGTERM exits the process) the client had all of it: negative is
// before.
func answerDuringShutdown(t *testing.T, delay time.Duration, h http.HandlerFunc) (*http.Response, string, time.Duration) {
	t.Helper()
	d := lifecycle.NewDrain()
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		h(w, r)
	})))
	srv.Listener = slowListener{srv.Listener, delay}
	srv.Start()
	defer srv.Close()

	type answer struct {
		resp *http.Response
		body string
		at   time.Time
	}
	answered := make(chan answer, 1)
	go func() {
		var a answer
		resp, err := http.Get(srv.URL)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a.resp, a.body = resp, string(b)
		}
		a.at = time.Now()
		answered <- a
	}()
	<-entered
	shutdownDone := make(chan time.Time, 1)
	go func() {
		lifecycle.Shutdown(context.Background(), d, func(context.Context) error { return nil })
		shutdownDone <- time.Now()
	}()
	// Shutdown has closed the drain once a new request is refused.
	probe := d.Wrap(http.NotFoundHandler())
	for {
		w := httptest.NewRecorder()
		probe.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	exitAt := <-shutdownDone
	a := <-answered
	if a.resp == nil {
		t.Fatal("the client had no answer")
	}
	return a.resp, a.body, a.at.Sub(exitAt)
}

// Shutdown returns (and OnSIGTERM exits) only once the answer of the last
// request is sent: net/http writes its end after the handler returns.
func TestShutdownWaitsForTheLastAnswerToBeSent(t *testing.T) {
	resp, body, late := answerDuringShutdown(t, 150*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the whole answer")
	})
	if late > 0 || body != "the whole answer" || resp.StatusCode != 200 {
		t.Errorf("the client had %d %q %v after Shutdown returned", resp.StatusCode, body, late)
	}
}

// What a handler leaves buffered is sent before the request counts as
// done, so a write slower than the grace Shutdown leaves net/http still
// reaches the client.
func TestDrainSendsTheBufferedAnswerBeforeCountingItDone(t *testing.T) {
	resp, body, late := answerDuringShutdown(t, 700*time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "16")
		io.WriteString(w, "the whole answer")
	})
	if late > 0 || body != "the whole answer" || resp.StatusCode != 200 {
		t.Errorf("the client had %d %q %v after Shutdown returned", resp.StatusCode, body, late)
	}
}

// Flushing writes the header: an answer with no body, finished during a
// drain, keeps the status and headers its handler gave.
func TestDrainKeepsTheStatusOfAnAnswerWithoutBody(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    http.HandlerFunc
		want int
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Test", "kept") }, http.StatusOK},
		{"status only", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Test", "kept")
			w.WriteHeader(http.StatusAccepted)
		}, http.StatusAccepted},
		{"no content", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Test", "kept")
			w.WriteHeader(http.StatusNoContent)
		}, http.StatusNoContent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _ := answerDuringShutdown(t, 0, tt.h)
			if resp.StatusCode != tt.want || resp.Header.Get("X-Test") != "kept" || body != "" {
				t.Errorf("answer %d, X-Test %q, body %q; want %d, kept, empty", resp.StatusCode, resp.Header.Get("X-Test"), body, tt.want)
			}
		})
	}
}

// smallBuffers gives every accepted connection a small send buffer, so
// that a client that stops reading blocks the server's writes soon.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// A client that stops reading blocks its handler in a write, which no
// context reaches. Cut at the end of the drain, the write fails, and the
// handler finishes (a stream is charged what it relayed) before the
// store is closed. Before, the handler stayed in its write: the store
// was closed and the process exited without its charge.
func TestShutdownCutsAWriteToAClientThatStoppedReading(t *testing.T) {
	d := lifecycle.NewDrain()
	var writing atomic.Int64 // unix ns when the write under way started; 0: none
	finished := make(chan error, 1)
	srv := httptest.NewUnstartedServer(d.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		rc := http.NewResponseController(w)
		for {
			writing.Store(time.Now().UnixNano())
			_, err := w.Write(chunk)
			if err == nil {
				err = rc.Flush()
			}
			writing.Store(0)
			if err != nil {
				finished <- err // where a stream is charged
				return
			}
		}
	})))
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing: the handler's write blocks.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if at := writing.Load(); at != 0 && time.Since(time.Unix(0, at)) > 300*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler's write never blocked")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second) // a drain window of 0.5 s
	defer cancel()
	var atClose error
	err = lifecycle.Shutdown(ctx, d, func(context.Context) error {
		select {
		case atClose = <-finished:
			return nil
		default:
			return errors.New("store closed while a handler was still blocked writing to its client")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if atClose == nil {
		t.Error("the handler's write reported no error")
	}
}
