package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
)

// openStream starts pc's streamed request as token and reads it up to its
// first chunk; the rest is left to the caller.
func (s *stack) openStream(pc provCase, token string) (*http.Response, *bufio.Reader) {
	s.t.Helper()
	path, body := pc.streamPathBody()
	req, _ := http.NewRequest(http.MethodPost, s.proxy.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range pc.auth(token) {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("%s stream: %d %s", pc.kind, resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("%s stream ended before its first chunk: %v", pc.kind, err)
		}
		if strings.Contains(line, "Hello from") {
			return resp, br
		}
	}
}

// shutdownStack is one proxy instance on the RTDB store, flushing only
// when it shuts down, with one user per provider holding a stream open
// and one user per provider with a finished request.
type shutdownStack struct {
	*stack
	srv       *rtdbfake.Server
	hold      chan struct{}
	done      map[string]provCase // finished requests, by token
	streaming map[string]provCase
	streams   []*bufio.Reader
	bodies    []io.Closer
}

func newShutdownStack(t *testing.T) *shutdownStack {
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	s := &shutdownStack{
		stack:     newStack(t, stackOptions{store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})}),
		srv:       srv,
		hold:      make(chan struct{}),
		done:      map[string]provCase{},
		streaming: map[string]provCase{},
	}
	for _, pc := range provCases {
		tok := s.createUser("")
		if r := s.do(http.MethodPost, s.proxy.URL+pc.path, pc.body, pc.auth(tok)); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		s.done[tok] = pc
		s.fakes[pc.kind].Set(upstreamfake.Behavior{HoldAfterFirst: s.hold})
		tok = s.createUser("")
		resp, br := s.openStream(pc, tok)
		s.streaming[tok] = pc
		s.streams = append(s.streams, br)
		s.bodies = append(s.bodies, resp.Body)
	}
	t.Cleanup(func() {
		for _, b := range s.bodies {
			b.Close()
		}
	})
	return s
}

// shutdown runs d.Shutdown as SIGTERM does and reports when it returns.
func (s *shutdownStack) shutdown(ctx context.Context) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- s.d.Shutdown(ctx) }()
	// New requests are refused from now on.
	waitFor(s.t, "new requests to be refused", func() bool {
		r := s.do(http.MethodGet, s.proxy.URL+"/proxy/health", "", nil)
		return r.status == http.StatusServiceUnavailable && r.close
	})
	return errc
}

// SIGTERM with streams in flight: new requests get 503, the streams run
// to their end, and then all usage (finished requests and the streams)
// is in the database.
func TestShutdownLetsStreamsFinishAndFlushes(t *testing.T) {
	noLeaks(t)
	s := newShutdownStack(t)
	start := time.Now()
	errc := s.shutdown(context.Background())
	select {
	case err := <-errc:
		t.Fatalf("shutdown returned (%v) with streams still in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(s.hold)
	for i, br := range s.streams {
		rest, err := io.ReadAll(br)
		if err != nil || strings.Contains(string(rest), "unexpectedly") || !strings.Contains(string(rest), "upstream!") {
			t.Errorf("stream %d did not finish normally (%v): %q", i, err, rest)
		}
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(9 * time.Second):
		t.Fatal("shutdown did not return after the streams ended")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %s though the streams ended at once", took)
	}
	for tok, pc := range s.done {
		if p, n := storedCounts(t, s.srv, tok, pc.family); p != 1 || n != fullCharge {
			t.Errorf("%s finished request: stored %d prompts, %d tokens", pc.kind, p, n)
		}
	}
	for tok, pc := range s.streaming {
		if p, n := storedCounts(t, s.srv, tok, pc.family); p != 1 || n != fullCharge {
			t.Errorf("%s stream: stored %d prompts, %d tokens", pc.kind, p, n)
		}
	}
}

// SIGTERM with streams that outlast the shutdown window: they are cut
// cleanly before it ends (the client sees the stream end), charged what
// was relayed, and that usage is flushed with the rest; shutdown returns
// within Cloud Run's 10 s.
func TestShutdownCutsStreamsThatOutlastTheWindow(t *testing.T) {
	noLeaks(t)
	s := newShutdownStack(t)
	defer close(s.hold) // never released before shutdown ends
	start := time.Now()
	errc := s.shutdown(context.Background())
	ended := make(chan int, len(s.streams))
	for i, br := range s.streams {
		go func() {
			_, _ = io.Copy(io.Discard, br)
			ended <- i
		}()
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(12 * time.Second):
		t.Fatal("shutdown did not return within 12s")
	}
	took := time.Since(start)
	if err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("shutdown took %s, more than Cloud Run allows after SIGTERM", took)
	}
	for range s.streams {
		select {
		case <-ended:
		case <-time.After(time.Second):
			t.Fatal("a stream was still open when shutdown returned")
		}
	}
	for tok, pc := range s.done {
		if p, n := storedCounts(t, s.srv, tok, pc.family); p != 1 || n != fullCharge {
			t.Errorf("%s finished request: stored %d prompts, %d tokens", pc.kind, p, n)
		}
	}
	for tok, pc := range s.streaming {
		if p, n := storedCounts(t, s.srv, tok, pc.family); p != 1 || n < 4 || n > 20 {
			t.Errorf("%s cut stream: stored %d prompts, %d tokens; want 1 prompt charged for what was relayed", pc.kind, p, n)
		}
	}
}

// A caller's deadline shortens the drain, never the flush: with 4 s in
// all, held streams are cut early enough for their usage to be written.
// (Before, the drain used the whole deadline and the flush then had none.)
func TestShutdownWithinACallerDeadline(t *testing.T) {
	noLeaks(t)
	s := newShutdownStack(t)
	defer close(s.hold)
	// A request still waiting for its upstream's first byte is cut too:
	// answered, and charged nothing.
	pc := provCases[0]
	waiting := s.createUser("")
	s.fakes[pc.kind].Set(upstreamfake.Behavior{FirstByteDelay: time.Minute})
	answered := make(chan reply, 1)
	go func() {
		r, _ := s.send(mustRequest(t, s.proxy.URL+pc.path, pc.body, pc.auth(waiting)))
		answered <- r
	}()
	// In flight upstream: its held stream, and this request.
	waitFor(t, "the request to reach the upstream", func() bool { return s.fakes[pc.kind].InFlight() == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	if err := <-s.shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("shutdown took %s with a 4s deadline", took)
	}
	for tok, pc := range s.streaming {
		if p, n := storedCounts(t, s.srv, tok, pc.family); p != 1 || n < 4 || n > 20 {
			t.Errorf("%s cut stream: stored %d prompts, %d tokens", pc.kind, p, n)
		}
	}
	select {
	case r := <-answered:
		t.Logf("a request cut before its answer got %d %q", r.status, r.body)
		if r.status == http.StatusOK {
			t.Errorf("a request cut before its answer got 200: %s", r.body)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the request cut before its answer got no answer")
	}
	if m, _ := s.srv.Data("users/" + waiting).(map[string]any); m["promptCount"] != nil && m["promptCount"] != 0.0 {
		t.Errorf("a request cut before its answer was charged: %v", m["promptCount"])
	}
}

func mustRequest(t *testing.T, url, body string, header map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

// SIGTERM while a client has stopped reading its stream: the proxy's
// write to it blocks, which the request's context does not reach. The
// drain's cut ends that write, so the stream is charged what it relayed
// and the charge is in the database when shutdown returns. (Before, the
// handler stayed in its write, and the instance exited without the
// charge.)
func TestShutdownChargesAStreamWhoseClientStoppedReading(t *testing.T) {
	noLeaks(t)
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	s := newStack(t, stackOptions{store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	pc := provCases[0]
	// An answer far larger than the sockets between proxy and client hold.
	s.fakes[pc.kind].Set(upstreamfake.Behavior{Text: strings.Repeat("stalled ", 4<<20), Chunks: 4096})
	tok := s.createUser("")
	path, body := pc.streamPathBody()
	resp, err := s.client.Do(mustRequest(t, s.proxy.URL+path, body, pc.auth(tok)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The client reads nothing more: the proxy fills the sockets and
	// blocks long before the drain window (1.5 s here) ends.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.d.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if p, n := storedCounts(t, srv, tok, pc.family); p != 1 || n <= 0 {
		t.Errorf("stream whose client stopped reading: stored %d prompts, %d tokens; want 1 prompt charged for what was relayed", p, n)
	}
}

// Streams cut at the end of the drain are charged before their end is
// sent; with the database 300 ms a call away, that takes most of a
// second. Their clients, which read, still get their streams' clean
// ends: the write deadline the cut sets is for clients that have
// stopped reading, and is lifted once the handler has returned.
func TestShutdownCutStreamsEndCleanlyWithASlowDatabase(t *testing.T) {
	noLeaks(t)
	s := newShutdownStack(t)
	defer close(s.hold)
	type end struct {
		rest string
		err  error
	}
	ended := make(chan end, len(s.streams))
	for _, br := range s.streams {
		go func() {
			rest, err := io.ReadAll(br)
			ended <- end{string(rest), err}
		}()
	}
	s.srv.SetDelay(300 * time.Millisecond)
	defer s.srv.SetDelay(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a drain window of 1.5 s
	defer cancel()
	if err := s.d.Shutdown(ctx); err != nil {
		t.Logf("shutdown: %v", err)
	}
	for range s.streams {
		select {
		case e := <-ended:
			if e.err != nil {
				t.Errorf("a cut stream did not end cleanly (%v): %q", e.err, e.rest)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a cut stream never ended")
		}
	}
}
