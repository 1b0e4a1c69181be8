package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// exchange is one client request on its way through the proxy.
type exchange struct {
	h    *handler
	up   *upstream
	prov *provider
	ep   endpoint
	w    http.ResponseWriter
	r    *http.Request
	log  *logging.Request

	upstreamPath string
	raw          []byte   // the request body as received, once read
	rq           *request // what was learnt from it
	p            *gatekeeper.Principal
	adm          *gatekeeper.Admission
	family       string
	keyIdx       int

	st         *streamState // set when a 2xx stream is being relayed
	chargeOnce sync.Once
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

func unknownRoute(r *http.Request) error {
	return users.Errorf(users.CodeUnknownRoute, "Unknown route: %s %s. See GET / for the routes this proxy serves.", r.Method, logging.RedactPath(r.URL.Path))
}

// serve runs the checks of SPEC §4 in order, then forwards. Every check
// that needs no body runs before the body is read; a request they refuse
// has its body left unread, even to shape a fake completion.
func (x *exchange) serve() {
	if !x.h.cfg.Served(x.prov.id) || x.up.base == nil {
		x.writeError(users.Errorf(users.CodeNotServed, "This proxy does not serve %s: it has no %s key.", x.prov.name, x.prov.name), nil)
		return
	}
	refuse := func(err error, rate *ratelimit.Decision) {
		x.r.Body = nil
		x.writeError(err, rate)
	}
	p, err := x.h.gk.Authenticate(x.r.Context(), x.r)
	if err != nil {
		refuse(err, nil)
		return
	}
	x.p = p
	x.log.SetToken(p.Token)
	x.log.SetClientIP(p.IP)
	f := x.ep.format
	kind := models.Text
	if f == fmtImages {
		kind = models.Image
	}
	if f.admitted {
		reach := models.Reachable(x.prov.id, kind)
		if x.ep.model != "" {
			reach = []string{models.FamilyFor(x.prov.id, x.ep.model, kind)}
		}
		adm, err := x.h.gk.Enter(p, reach)
		if err != nil {
			var rate *ratelimit.Decision
			if adm != nil {
				rate = &adm.Rate
			}
			refuse(err, rate)
			return
		}
		x.adm = adm
		defer adm.Release()
	}
	if f.body {
		if err := x.readBody(); err != nil {
			x.writeError(err, x.rate())
			return
		}
		limit := x.h.cfg.MaxOutputTokens[x.prov.id]
		rq, err := parseBody(f, x.raw, limit, !p.Exempt, true)
		if err != nil {
			x.writeError(users.Errorf(users.CodeInvalid, "The request body is not a valid JSON object."), x.rate())
			return
		}
		x.rq = rq
		if x.ep.model != "" {
			rq.model = x.ep.model
		}
		if x.ep.stream {
			rq.stream = true
		}
	}
	if f.admitted {
		x.family = models.FamilyFor(x.prov.id, x.rq.model, kind)
		x.log.SetFamily(x.family)
		if err := x.h.gk.Reserve(x.r.Context(), x.adm, x.family, x.requested()); err != nil {
			x.writeError(err, x.rate())
			return
		}
	}
	x.keyIdx = x.up.keys.pick()
	if x.keyIdx < 0 {
		x.writeError(noKey(x.prov, nil), nil)
		return
	}
	x.forward()
}

func noKey(p *provider, err error) *users.Error {
	return &users.Error{Code: users.CodeNotServed, Err: err,
		Message: "This proxy has no working " + p.name + " key at the moment; the operator has been told."}
}

// requested is what the quota pre-check counts: the estimated prompt plus
// the output asked for (or the clamp when the request names no limit).
func (x *exchange) requested() int64 {
	if x.rq == nil {
		return 0
	}
	if !x.ep.format.charged {
		return x.rq.promptTokens // token counting generates nothing
	}
	out := x.rq.maxOut
	if !x.rq.hasMaxOut {
		out = x.h.cfg.MaxOutputTokens[x.prov.id]
	}
	return x.rq.promptTokens + max(out, 0)
}

// readBody reads the request body once, up to the size cap.
func (x *exchange) readBody() error {
	if x.raw != nil {
		return nil
	}
	r := x.r
	if r.ContentLength > x.h.maxBody {
		return tooLarge(x.h.maxBody)
	}
	raw, err := readAll(http.MaxBytesReader(x.w, r.Body, x.h.maxBody), r.ContentLength, editRoom)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge(x.h.maxBody)
		}
		return &users.Error{Code: users.CodeInvalid, Message: "The request body could not be read.", Err: err}
	}
	x.raw = raw
	return nil
}

// editRoom is the capacity left after a request body so that the usual
// edits (a clamped limit, stream_options) are made without a copy.
const editRoom = 512

// readAll reads r to its end into one buffer sized from the length the
// sender announced (sizeHint, -1 when unknown) plus room, so that a body
// of the announced length is read without growing (io.ReadAll and
// bytes.Buffer.ReadFrom grow, copying the whole body, just to find its end).
func readAll(r io.Reader, sizeHint int64, room int) ([]byte, error) {
	buf := make([]byte, 0, int(max(sizeHint, 0))+room)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 4096))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func tooLarge(limit int64) error {
	return users.Errorf(users.CodeTooLarge, "The request body is larger than this proxy accepts (%d MiB).", limit>>20)
}

// forward sends the request upstream through the ReverseProxy and makes
// sure a stream cut short is charged.
func (x *exchange) forward() {
	ctx, cancel := context.WithTimeout(x.r.Context(), x.h.timeout)
	defer cancel()
	r := x.r.WithContext(context.WithValue(ctx, exchangeKey{}, x))
	if x.rq != nil {
		body := x.rq.body
		// rewrite gives the upstream request its body; this one only has
		// to say there is one.
		r.Body = http.NoBody
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.TransferEncoding = nil
	}
	defer x.finish()
	defer func() {
		// ReverseProxy aborts the handler when copying the answer fails
		// midway (mostly: the client went away). Nothing more can be told
		// to the client, but the request is still charged (finish) and
		// logged.
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			if x.r.Context().Err() != nil {
				x.log.SetError("the client went away during the answer")
			} else {
				x.log.SetError("the answer was cut short")
			}
		}
	}()
	x.h.rp.ServeHTTP(x.w, r)
}

// rewrite builds the upstream request: URL, the headers the upstream may
// see, and the operator's key. Hop-by-hop and forwarding headers are
// already gone; the client's token was removed by Authenticate.
func (x *exchange) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	base := x.up.base
	// A base URL ending in the API version (an OpenAI-compatible gateway
	// given as https://host/v1) is not doubled.
	basePath := strings.TrimRight(base.Path, "/")
	if v := basePath[strings.LastIndexByte(basePath, '/')+1:]; v != "" && strings.HasPrefix(x.upstreamPath, "/"+v+"/") {
		basePath = basePath[:len(basePath)-len(v)-1]
	}
	out.URL.Scheme, out.URL.Host = base.Scheme, base.Host
	out.URL.Path = basePath + x.upstreamPath
	out.URL.RawPath = ""
	out.URL.RawQuery = withoutKey(pr.In.URL.RawQuery)
	out.Host = ""
	if x.rq != nil {
		// ReverseProxy wraps the body in a reader of its own, which hides
		// from the transport that it is in memory: the transport would
		// then send the headers and the body in two writes. A bytes.Reader
		// goes out with the headers in one.
		out.Body = io.NopCloser(bytes.NewReader(x.rq.body))
	}
	h := make(http.Header, len(commonHeaders)+len(x.prov.headers)+2)
	for _, names := range [][]string{commonHeaders, x.prov.headers} {
		for _, k := range names {
			if v := pr.In.Header.Values(k); len(v) > 0 {
				h[http.CanonicalHeaderKey(k)] = v
			}
		}
	}
	if x.prov.prepare != nil {
		x.prov.prepare(h)
	}
	x.prov.setKey(h, x.up.keys.keys[x.keyIdx])
	out.Header = h
}

// withoutKey drops any key parameter left in a query (defence in depth:
// Authenticate has removed the client's, and upstream keys travel in
// headers).
func withoutKey(q string) string {
	if q == "" || !strings.Contains(strings.ToLower(q), "key") && !strings.Contains(q, "%") {
		return q
	}
	parts := strings.Split(q, "&")
	kept := parts[:0]
	for _, p := range parts {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err != nil || n == "key" {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}

// Upstream response headers the client must not see: the operator's
// organisation, the upstream's cookies and its own CORS policy.
var dropResponseHeaders = []string{
	"Set-Cookie", "Openai-Organization", "Openai-Project", "Anthropic-Organization-Id", "Alt-Svc",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
}

// modifyResponse reads usage from a 2xx answer (a stream as it passes, a
// whole answer at once), and cleans up error answers. Nothing is charged
// for an error answer.
func (x *exchange) modifyResponse(resp *http.Response) error {
	for _, k := range dropResponseHeaders {
		delete(resp.Header, k) // the names are canonical, as the transport's are
	}
	if x.adm != nil {
		setRateHeaders(resp.Header, x.adm.Rate)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return x.upstreamError(resp)
	}
	f := x.ep.format
	if !f.charged {
		return nil
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, contentSSE):
		x.relayStream(resp, &sseSplitter{}, true)
	case x.rq.stream && x.prov.id == models.GoogleAI:
		x.relayStream(resp, &arraySplitter{}, false)
	default:
		return x.readWhole(resp)
	}
	return nil
}

// relayStream wraps the body so usage is read while the stream passes.
func (x *exchange) relayStream(resp *http.Response, s splitter, sse bool) {
	f := x.ep.format
	x.st = &streamState{hideUsage: x.rq.hideUsage}
	sr := newStreamReader(x.r.Context(), resp.Body, s, x.st, f.event)
	sr.pool = x.h.chunks
	sr.endsAtEOF = x.prov.id == models.GoogleAI
	if sse {
		sr.brokenEvent = f.streamError
	}
	// Charged when the stream's end passes, before the client sees it; the
	// upstream's work is done then, so the concurrency slot is freed too:
	// a client that sends its next request as soon as it reads the end
	// must not find its own finished request still in flight.
	sr.onEnd = func() {
		x.charge(x.st.tokens(x.rq.promptTokens))
		x.adm.Release()
	}
	resp.Body = sr
	// The relayed body may differ from the upstream's.
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
}

// readWhole reads a whole answer to charge its usage before relaying it.
func (x *exchange) readWhole(resp *http.Response) error {
	body, err := readAll(io.LimitReader(resp.Body, maxAnswer+1), min(resp.ContentLength, maxAnswer+1), 512)
	if err != nil {
		return err // the upstream broke the answer: 502, nothing charged
	}
	if len(body) > maxAnswer {
		// Too big to hold: relay it as it comes, charging the prompt.
		x.charge(x.rq.promptTokens)
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	if u, ok := x.ep.format.usage(body); ok {
		x.charge(u.total())
	} else {
		// No usage reported (some gateways, DALL-E): estimate from the text.
		_, text, _ := scanObject(body, 0, true)
		x.charge(x.rq.promptTokens + (text+3)/4)
	}
	// The upstream has answered in full: the slot is free before the
	// client can read the answer (see relayStream).
	x.adm.Release()
	x.setBody(resp, body)
	return nil
}

func (x *exchange) setBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// upstreamError relays an upstream's error answer with any upstream key
// scrubbed from it; with ERROR_FORMAT=completion it becomes a fake answer.
func (x *exchange) upstreamError(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	body = x.h.scrub(body)
	x.log.SetError("upstream answered " + strconv.Itoa(resp.StatusCode))
	f := x.ep.format
	if x.h.cfg.ErrorFormat == config.ErrorsCompletion && f.fake != nil {
		title := "Upstream error"
		text := "[tollgate] " + title + " (" + strconv.Itoa(resp.StatusCode) + " from " + x.prov.name + "): " + upstreamMessage(body)
		ct, fake := f.fake(x.fakeAnswer(text))
		resp.Header = http.Header{}
		if x.adm != nil {
			setRateHeaders(resp.Header, x.adm.Rate)
		}
		resp.Header.Set("Content-Type", ct)
		resp.Header.Set(headerError, title)
		resp.Header.Set(headerErrorStatus, strconv.Itoa(resp.StatusCode))
		resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
		x.setBody(resp, fake)
		return nil
	}
	x.setBody(resp, body)
	return nil
}

// upstreamMessage finds the message of an upstream error body.
func upstreamMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
		Error   struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	var msg string
	if json.Unmarshal(body, &e) == nil {
		msg = e.Error.Message
		if msg == "" {
			msg = e.Message
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// scrub replaces every upstream key in b.
func (h *handler) scrub(b []byte) []byte {
	for _, k := range h.secrets {
		if len(k) >= 4 && bytes.Contains(b, []byte(k)) {
			b = bytes.ReplaceAll(b, []byte(k), []byte("[redacted]"))
		}
	}
	return b
}

// upstreamFailed answers when no upstream answer could be relayed.
func (x *exchange) upstreamFailed(err error) {
	ctx := x.r.Context()
	var netErr interface{ Timeout() bool }
	switch {
	case errors.Is(err, errNoKey):
		x.writeError(noKey(x.prov, err), x.rate())
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The client went away; there is no one to answer.
		x.log.SetError("the client went away before the answer")
		x.w.WriteHeader(499)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		x.writeError(&users.Error{Code: users.CodeTimeout, Message: "The " + x.prov.name + " upstream did not answer in time.", Err: err}, x.rate())
	default:
		x.writeError(&users.Error{Code: users.CodeBadGateway, Message: "The " + x.prov.name + " upstream could not be reached.", Err: err}, x.rate())
	}
}

func (x *exchange) rate() *ratelimit.Decision {
	if x.adm == nil {
		return nil
	}
	return &x.adm.Rate
}

// charge records the request's tokens once, with a context of its own:
// the client may be gone.
func (x *exchange) charge(tokens int64) {
	x.chargeOnce.Do(func() {
		if !x.ep.format.charged || x.p == nil {
			return
		}
		x.log.SetTokens(tokens)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(x.r.Context()), chargeTimeout)
		defer cancel()
		if err := x.h.gk.Charge(ctx, x.p, x.family, tokens); err != nil {
			x.h.log.Error().Err(err).Str("family", x.family).Int64("tokens", tokens).
				Str("token", logging.TokenTail(x.p.Token)).Msg("usage could not be recorded")
		}
	})
}

// finish charges a stream that ended without passing its end (the client
// left, or the upstream broke it): an estimate of what was relayed.
func (x *exchange) finish() {
	if x.st != nil {
		x.charge(x.st.tokens(x.rq.promptTokens))
	}
}

// fakeAnswer describes the request for an error shown as an answer.
func (x *exchange) fakeAnswer(text string) fakeAnswer {
	fa := fakeAnswer{text: text, model: x.ep.model, stream: x.ep.stream, created: x.h.now().Unix()}
	if x.prov.id == models.GoogleAI {
		fa.sse = x.r.URL.Query().Get("alt") == "sse"
	}
	rq := x.rq
	if rq == nil && x.ep.format != nil && x.ep.format.body && x.raw == nil && x.r.Body != nil {
		// The error came before the body was read: peek at it for stream
		// and model, so the fake answer matches what the client expects.
		if x.readBody() == nil {
			rq, _ = parseRequest(x.ep.format, x.raw, 0, false)
		}
	}
	if rq != nil {
		fa.stream = fa.stream || rq.stream
		if fa.model == "" {
			fa.model = rq.model
		}
	}
	if fa.model == "" {
		fa.model = "tollgate"
	}
	return fa
}
