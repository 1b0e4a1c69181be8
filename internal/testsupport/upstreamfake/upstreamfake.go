// Package upstreamfake runs fake OpenAI, Anthropic, Google AI (Gemini) and
// Mistral AI servers for tests. Each answers in its provider's real JSON and
// server-sent-event formats (streams included), records what it received,
// and can be told to misbehave: wait before the first byte, pause between
// chunks, hold a stream after its first chunk, cut a stream short, emit
// malformed SSE, or answer an error status for a given key.
package upstreamfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Kind is the provider a fake imitates; the values match the proxy's
// mount names.
type Kind string

const (
	OpenAI    Kind = "openai"
	Anthropic Kind = "anthropic"
	Google    Kind = "google-ai"
	Mistral   Kind = "mistral-ai"
)

// Behavior controls how a fake answers. The zero value answers every
// request successfully with the defaults below.
type Behavior struct {
	// Text is the reply, sent in Chunks pieces when streaming
	// (default "Hello from the fake upstream!" in 3 chunks).
	Text   string
	Chunks int
	// Usage reported. OutputTokens includes reasoning where the provider
	// counts it so (OpenAI, Anthropic, Mistral); Google reports
	// ReasoningTokens separately as thoughtsTokenCount.
	// Defaults: 11 input, 7 output, 0 reasoning.
	InputTokens, OutputTokens, ReasoningTokens int64
	// NoUsage leaves usage out of every answer.
	NoUsage bool

	// FirstByteDelay is waited before the response headers.
	FirstByteDelay time.Duration
	// ChunkPause is waited between stream chunks.
	ChunkPause time.Duration
	// HoldAfterFirst, when set, stops a stream after its first content
	// chunk until the channel is closed (or the client goes away).
	HoldAfterFirst <-chan struct{}
	// HoldBeforeUsage, when set, stops a stream after its last text and
	// before the event that reports its usage (OpenAI's usage chunk,
	// Anthropic's message_delta) until the channel is closed; it goes on
	// even if the client has gone away, as a real upstream finishing its
	// answer does.
	HoldBeforeUsage <-chan struct{}
	// CloseAfter aborts the connection after this many content chunks,
	// without ending the stream properly (0: never).
	CloseAfter int
	// Malformed inserts lines that are not valid SSE/JSON into streams.
	Malformed bool

	// KeyStatus answers requests made with the given upstream key with an
	// error of that status in the provider's shape. Unless set, "bad" gets
	// 401 (Google: 400 API_KEY_INVALID, as the real API does),
	// "forbidden" 403 and "busy" 429.
	KeyStatus map[string]int
	// Status, when set, answers every generation request with that error
	// status.
	Status int
	// BedrockException, when set, makes a Bedrock stream send an exception
	// frame of that type (throttlingException) after its first chunk.
	BedrockException string
	// ToolCall, when set, ends Anthropic's and Google's answers with a call
	// of that tool (tools.go).
	ToolCall *ToolCall

	// Blocks, when set, are Claude's answer (Anthropic, and Claude on
	// Bedrock and Vertex AI) in place of Text and ToolCall: Messages
	// content blocks (text, thinking, tool_use, redacted_thinking), with
	// StopReason (default end_turn); streams send them as the API does
	// (script.go).
	Blocks     []map[string]any
	StopReason string
	// Parts, when set, are Gemini's answer (Google AI, and Gemini on
	// Vertex AI) in place of Text and ToolCall: its candidate's parts,
	// with FinishReason (default STOP); streams send one chunk per part,
	// the last with the finish reason and the complete usage. BlockReason
	// answers instead that the prompt was blocked: no candidate, only
	// promptFeedback and the prompt's usage.
	Parts        []map[string]any
	FinishReason string
	BlockReason  string
	// Images, when set, is how many images a Responses request with an
	// image_generation tool gets (image_generation_call items before the
	// message; streamed with the tool's events, partial images as the
	// tool asks), and ImageToolUsage what its tool_usage.image_gen
	// reports (input and output tokens: 0 leaves tool_usage out, as an
	// upstream that does not report it).
	Images         int
	ImageToolUsage [2]int64
	// StreamError, when set, ends a stream after its first content chunk
	// with the provider's error event carrying this message (Anthropic's
	// event: error, Gemini's error object; on Bedrock, an exception).
	StreamError string
}

func (b Behavior) withDefaults() Behavior {
	if b.Text == "" {
		b.Text = "Hello from the fake upstream!"
	}
	if b.Chunks <= 0 {
		b.Chunks = 3
	}
	if b.InputTokens == 0 && b.OutputTokens == 0 && b.ReasoningTokens == 0 {
		b.InputTokens, b.OutputTokens = 11, 7
	}
	return b
}

// Request is one request as the fake received it.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	Query    url.Values
	Header   http.Header
	Body     []byte
	// Key is the upstream key the request carried, wherever the provider
	// expects it (Google: x-goog-api-key or ?key=).
	Key string
}

// JSON decodes the request body into a generic map.
func (r Request) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Fake is a running fake upstream. Its methods are safe for concurrent use.
type Fake struct {
	Kind Kind
	URL  string
	srv  *httptest.Server

	mu        sync.Mutex
	behavior  Behavior
	reqs      []Request
	inflight  int
	cancelled int
	changed   chan struct{}
}

// New starts a fake of kind on 127.0.0.1. Close it when done.
func New(kind Kind) *Fake {
	f := &Fake{Kind: kind, changed: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Start is New, closed when the test ends.
func Start(tb testing.TB, kind Kind) *Fake {
	tb.Helper()
	f := New(kind)
	tb.Cleanup(f.Close)
	return f
}

// Close stops the server, cutting any request still in flight.
func (f *Fake) Close() {
	f.srv.CloseClientConnections()
	f.srv.Close()
}

// Set replaces the behaviour for the following requests.
func (f *Fake) Set(b Behavior) {
	f.mu.Lock()
	f.behavior = b
	f.mu.Unlock()
}

// Update changes the behaviour in place.
func (f *Fake) Update(fn func(*Behavior)) {
	f.mu.Lock()
	fn(&f.behavior)
	f.mu.Unlock()
}

// Requests returns every request received so far, oldest first.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

// Last returns the latest request; it fails the test when there is none.
func (f *Fake) Last(tb testing.TB) Request {
	tb.Helper()
	reqs := f.Requests()
	if len(reqs) == 0 {
		tb.Fatalf("upstream %s received no request", f.Kind)
	}
	return reqs[len(reqs)-1]
}

// Count is the number of requests received.
func (f *Fake) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// InFlight is the number of requests being answered.
func (f *Fake) InFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inflight
}

// Cancelled is the number of requests whose client went away before the
// answer was complete.
func (f *Fake) Cancelled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled
}

// WaitFor waits until cond holds (checked after every change of the
// fake's counters) or timeout passes; it reports whether cond held.
func (f *Fake) WaitFor(timeout time.Duration, cond func(f *Fake) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ch := f.changed
		f.mu.Unlock()
		if cond(f) {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond(f)
		}
	}
}

// notify wakes WaitFor; f.mu must be held.
func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := Request{
		Method:   r.Method,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Query:    r.URL.Query(),
		Header:   r.Header.Clone(),
		Body:     body,
		Key:      keyOf(f.Kind, r),
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.inflight++
	b := f.behavior.withDefaults()
	f.notify()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		if r.Context().Err() != nil {
			f.cancelled++
		}
		f.notify()
		f.mu.Unlock()
	}()

	x := &exchange{w: w, r: r, b: b, req: rec}
	if b.FirstByteDelay > 0 && !x.wait(b.FirstByteDelay) {
		return
	}
	switch f.Kind {
	case OpenAI:
		serveOpenAI(x)
	case Anthropic:
		serveAnthropic(x)
	case Google:
		serveGoogle(x)
	case Mistral:
		serveMistral(x)
	case Vertex:
		serveVertex(f, x)
	case Bedrock:
		serveBedrock(x)
	case Azure:
		serveAzure(x)
	}
}

func keyOf(k Kind, r *http.Request) string {
	switch k {
	case Bedrock:
		return bedrockAccessKey(r)
	case Anthropic:
		return r.Header.Get("X-Api-Key")
	case Azure:
		return r.Header.Get("Api-Key")
	case Google:
		if v := r.Header.Get("X-Goog-Api-Key"); v != "" {
			return v
		}
		return r.URL.Query().Get("key")
	}
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// keyStatus is the error status to answer for the request's key, or 0.
func (x *exchange) keyStatus(k Kind) int {
	if s, ok := x.b.KeyStatus[x.req.Key]; ok {
		return s
	}
	switch x.req.Key {
	case "bad":
		if k == Google {
			return http.StatusBadRequest
		}
		return http.StatusUnauthorized
	case "forbidden":
		return http.StatusForbidden
	case "busy":
		return http.StatusTooManyRequests
	}
	return 0
}

// exchange is one request being answered.
type exchange struct {
	w      http.ResponseWriter
	r      *http.Request
	b      Behavior
	req    Request
	chunks int // content chunks sent so far
}

func (x *exchange) body() map[string]any {
	m := x.req.JSON()
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// wait sleeps for d unless the client goes away first.
func (x *exchange) wait(d time.Duration) bool {
	if d <= 0 {
		return x.r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-x.r.Context().Done():
		return false
	}
}

func (x *exchange) json(status int, v any) {
	x.w.Header().Set("Content-Type", "application/json")
	x.w.WriteHeader(status)
	_ = json.NewEncoder(x.w).Encode(v)
}

func (x *exchange) startStream() {
	x.w.Header().Set("Content-Type", "text/event-stream")
	x.w.Header().Set("Cache-Control", "no-cache")
	x.w.WriteHeader(http.StatusOK)
	x.flush()
}

func (x *exchange) flush() {
	if fl, ok := x.w.(http.Flusher); ok {
		fl.Flush()
	}
}

// event writes one SSE event (name may be empty) and flushes it.
func (x *exchange) event(name string, data any, crlf bool) bool {
	if x.r.Context().Err() != nil {
		return false
	}
	var buf bytes.Buffer
	nl := "\n"
	if crlf {
		nl = "\r\n"
	}
	if name != "" {
		buf.WriteString("event: " + name + nl)
	}
	buf.WriteString("data: ")
	switch d := data.(type) {
	case string:
		buf.WriteString(d)
	default:
		raw, _ := json.Marshal(d)
		buf.Write(raw)
	}
	buf.WriteString(nl + nl)
	if _, err := x.w.Write(buf.Bytes()); err != nil {
		return false
	}
	x.flush()
	return true
}

// beforeChunk runs before each content chunk: pauses, malformed lines.
func (x *exchange) beforeChunk() bool {
	if x.chunks > 0 && !x.wait(x.b.ChunkPause) {
		return false
	}
	if x.b.Malformed && x.chunks > 0 {
		if _, err := io.WriteString(x.w, "data: {\"this is\": not json\n\n: a comment line\nnonsense without a field\n\n"); err != nil {
			return false
		}
		x.flush()
	}
	return true
}

// afterChunk runs after each content chunk: hold, cut short. It reports
// whether the stream goes on.
func (x *exchange) afterChunk() bool {
	x.chunks++
	if x.chunks == 1 && x.b.HoldAfterFirst != nil {
		select {
		case <-x.b.HoldAfterFirst:
		case <-x.r.Context().Done():
			return false
		}
	}
	if x.b.CloseAfter > 0 && x.chunks >= x.b.CloseAfter {
		// Abort the connection: the client sees the stream end without
		// its proper terminator.
		panic(http.ErrAbortHandler)
	}
	return x.r.Context().Err() == nil
}

// holdBeforeUsage waits for HoldBeforeUsage, if set.
func (x *exchange) holdBeforeUsage() {
	if x.b.HoldBeforeUsage != nil {
		<-x.b.HoldBeforeUsage
	}
}

// pieces splits the reply text into the configured number of chunks.
func (x *exchange) pieces() []string {
	text, n := x.b.Text, x.b.Chunks
	runes := utf8.RuneCountInString(text)
	if n > runes {
		n = runes
	}
	if n <= 1 {
		return []string{text}
	}
	out := make([]string, 0, n)
	size := (runes + n - 1) / n
	rs := []rune(text)
	for i := 0; i < len(rs); i += size {
		end := min(i+size, len(rs))
		out = append(out, string(rs[i:end]))
	}
	return out
}

func modelOr(m map[string]any, def string) string {
	if s, ok := m["model"].(string); ok && s != "" {
		return s
	}
	return def
}

func isStream(m map[string]any) bool {
	v, _ := m["stream"].(bool)
	return v
}

var created = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

func id(prefix string, n int) string { return fmt.Sprintf("%s-fake-%d", prefix, n) }

// notFound answers an unknown route the way the real service would.
func notFound(x *exchange, shape func(int, string) any) {
	x.json(http.StatusNotFound, shape(http.StatusNotFound, "Unknown route "+x.r.Method+" "+x.r.URL.Path))
}
