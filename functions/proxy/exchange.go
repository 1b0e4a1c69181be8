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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/internal/ctxval"
	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/internal/jsonscan"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/lifecycle"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// exchange is one client request on its way through the proxy.
type exchange struct {
	h    *handler
	up   *upstream
	prov *providers.Provider
	ep   providers.Endpoint
	w    http.ResponseWriter
	r    *http.Request
	log  *logging.Request

	upstreamPath string
	query        string             // as passed upstream: the route's parameters only
	raw          []byte             // the request body as received, once read
	rq           *providers.Request // what was learnt from it
	p            *gatekeeper.Principal
	adm          *gatekeeper.Admission
	family       string
	// imageFamily is where the images a text request's image tool makes
	// are reserved and charged ("" for none: Request.MakesImages);
	// images is what a whole answer told of them.
	imageFamily string
	images      imagesMade
	keyIdx      int
	// sent: the request went to the upstream's transport, which may have
	// delivered it: the upstream may bill it whatever follows.
	sent   bool
	call   providers.Call   // the upstream request, as the provider's hooks see it
	answer io.LimitedReader // a whole answer, read within maxAnswer (readWhole)
	status int              // the upstream's answer's, for the request's event
	mem    memHold          // what the bodies of this exchange hold of the instance's budget

	st *providers.StreamState // set when a 2xx stream is being relayed
	// final: the stream's last text has passed (see forward).
	final          atomic.Bool
	cancelUpstream context.CancelFunc
	chargeOnce     sync.Once

	// Held here, not allocated apart: each is made once per exchange.
	ctx     exchangeCtx  // the upstream request's (forward)
	outBody bytes.Reader // the upstream request's body (rewrite)
	ansBody memBody      // a whole answer as relayed (setBody)
	ansLen  [1]string    // its Content-Length header's value
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// exchangeCtx is the upstream request's context: its parent's, and the
// exchange under exchangeKey. It lives in the exchange, so it costs no
// allocation of its own.
type exchangeCtx = ctxval.Ctx[exchangeKey, *exchange]

func unknownRoute(r *http.Request) error {
	logging.FromContext(r.Context()).Conceal(gatekeeper.ExtractToken(r))
	return users.Errorf(web.CodeUnknownRoute, "Unknown route: %s %s. See GET / for the routes this proxy serves.", r.Method, logging.RedactPath(r.URL.Path))
}

// serve runs the checks of SPEC §4 in order, then forwards. Every check
// that needs no body runs before the body is read; a request they refuse
// has its body left unread, even to shape a fake completion.
func (x *exchange) serve() {
	x.mem.b = x.h.mem
	defer x.mem.release()
	refuse := func(err error, rate *ratelimit.Decision) {
		x.r.Body = nil
		x.writeError(err, rate)
	}
	if !x.h.cfg.Served(x.prov.ID) || !x.up.usable() {
		refuse(users.Errorf(web.CodeNotServed, "This proxy does not serve %s: it has no %s key.", x.prov.Name, x.prov.Name), nil)
		return
	}
	p, err := x.h.gk.Authenticate(x.r.Context(), x.r)
	if err != nil {
		refuse(err, nil)
		return
	}
	x.p = p
	x.log.SetToken(p.Token)
	x.log.SetClientIP(p.IP)
	if x.credentialInPath() {
		refuse(users.Errorf(web.CodeUnknownRoute, "Unknown route: a path never holds a key. See GET / for the routes this proxy serves."), nil)
		return
	}
	if x.r.URL.RawQuery == "" {
		x.query = ""
	} else if x.query, err = x.ep.Query(x.r.URL.Query()); err != nil {
		refuse(err, nil)
		return
	}
	f := x.ep.Format
	if f.Admitted {
		reach := models.Reachable(x.prov.ID, f.Kind)
		if x.ep.Model != "" {
			reach = []string{models.FamilyFor(x.prov.ID, x.ep.Model, f.Kind)}
		}
		adm, err := x.h.gk.Enter(x.r.Context(), p, reach)
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
		// Every answer to an admitted request reports the rate limit (an
		// error sets them again: a refusal takes its count back).
		setRateHeaders(x.w.Header(), adm.Rate)
	}
	if f.Body {
		if err := x.readBody(); err != nil {
			// Not read again for a fake answer (fakeAnswer): a body the
			// budget had no room for would wait for it a second time.
			x.r.Body = nil
			x.refuseBusy(err)
			x.writeError(err, x.rate())
			return
		}
		limit := x.h.cfg.MaxOutputTokens[x.prov.ID]
		rq, err := f.Parse(x.raw, limit, !p.Exempt, true)
		if errors.Is(err, jsonscan.ErrSyntax) {
			err = users.Errorf(users.CodeInvalid, "The request body is not a valid JSON object.")
		}
		if err != nil {
			x.writeError(err, x.rate())
			return
		}
		x.rq = rq
		if rq.ModelRepeated {
			// The family is the last one's; an upstream's parser may keep
			// the first, and run a model of another family.
			x.writeError(users.Errorf(users.CodeInvalid, "The body names the model more than once, differently (the last %q): name it once.", rq.Model), x.rate())
			return
		}
		if x.ep.Model != "" {
			// Google's HTTP mapping lets a body member override the path's:
			// a body naming another model would run it, counted in the
			// path's family.
			if rq.Model != "" && rq.Model != x.ep.Model && rq.Model != "models/"+x.ep.Model {
				x.writeError(users.Errorf(users.CodeInvalid, "The body names the model %q, the path %q: name it in the path only.", rq.Model, x.ep.Model), x.rate())
				return
			}
			rq.Model = x.ep.Model
		}
		if x.ep.Stream {
			rq.Stream = true
		}
		if t := x.ep.Translate; t != nil {
			rq.Reserve = func(n int64) error { return x.mem.take(x.r.Context(), n) }
			native, err := t.Request(rq)
			if err != nil {
				x.refuseBusy(err)
				x.writeError(err, x.rate())
				return
			}
			rq.Body = native
			x.upstreamPath, x.query = t.Native(rq.Model, rq.Stream)
			// What the translation decoded is garbage now; the body as
			// received and the native one are still held.
			x.mem.keep(int64(cap(x.raw) + cap(native)))
		}
		if f.Price != nil {
			rq.Priced = f.Price(rq.Body, rq.Model)
		}
		if rq.MakesImages && f.ImagePrice != nil {
			rq.ImagePrice, rq.ImagesReserved = f.ImagePrice(rq.Body)
			if rq.ImagePrice <= 0 {
				// Spelt so that the price reader missed the tool the
				// upstream will find: the dearest image.
				rq.ImagePrice = providers.MaxImageToolTokens
			}
		}
	}
	if !x.policies() {
		return
	}
	if f.Admitted {
		x.family = models.FamilyFor(x.prov.ID, x.rq.Model, f.Kind)
		x.log.SetFamily(x.family)
		if err := x.h.gk.Reserve(x.r.Context(), x.adm, x.family, x.requested()); err != nil {
			x.writeError(err, x.rate())
			return
		}
		if x.rq != nil && x.rq.ImagePrice > 0 && f.Charged {
			// The images are the image family's, as on the image route.
			x.imageFamily = models.ImageFamilyOf(x.prov.ID, f.ImageToolModel)
			if err := x.h.gk.ReserveAlso(x.r.Context(), x.adm, x.imageFamily, x.rq.ImagePrice*x.rq.ImagesReserved); err != nil {
				x.writeError(err, x.rate())
				return
			}
		}
	}
	x.keyIdx = x.up.keys.pick()
	if x.keyIdx < 0 {
		x.adm.Refuse() // the instance's failure, not the client's
		x.writeError(noKey(x.prov, nil), x.rate())
		return
	}
	x.forward()
}

// refuseBusy takes back the rate-limit count of a request the memory
// budget had no room for (errBusy): the instance's refusal, which the
// client's SDK retries.
func (x *exchange) refuseBusy(err error) {
	if errors.Is(err, errBusy) {
		x.adm.Refuse()
	}
}

func noKey(p *providers.Provider, err error) *users.Error {
	return &users.Error{Code: web.CodeNotServed, Err: err,
		Message: "This proxy has no working " + p.Name + " key at the moment; the operator has been told."}
}

// credentialInPath reports a proxy credential (the caller's token, the
// admin or proxy key) anywhere in the path: it would be sent upstream and
// written to every log on the way.
func (x *exchange) credentialInPath() bool {
	for _, c := range []string{x.p.Token, x.h.cfg.AdminKey, x.h.cfg.ProxyKey} {
		if len(c) >= logging.MinSecretLen && strings.Contains(x.upstreamPath, c) {
			return true
		}
	}
	return false
}

// requested is what the quota pre-check counts: the estimated prompt
// (images included) plus the output the upstream may write: the limit
// asked for, or the clamp when the request names none; with no clamp, a
// request naming none, or 0, may be given its model's maximum, and counts
// it (unlimitedOutput).
func (x *exchange) requested() int64 { return x.asked(true) }

// limitOutput is the output charged for a stream cut short while the
// model thinks, where the answer's own count is unknown: the limit asked,
// or the clamp. The most an unbounded request may be given is reserved,
// not charged: few answers come near it.
func (x *exchange) limitOutput() int64 { return x.asked(false) - x.rq.PromptTokens }

// unreadOutput is the output charged for a whole answer nothing of which
// can be read (a format the proxy does not read, too big to hold, not the
// translation's): all the request reserved, the most an unbounded request
// may be given included. Unlike a cut stream, the client chose or got an
// answer no count can be taken from, so it is charged the bound it was
// admitted under; else, under no clamp, asking for such an answer would
// draw without limit.
func (x *exchange) unreadOutput() int64 { return x.requested() - x.rq.PromptTokens }

// asked is requested; without unlimited, a request naming no limit under
// no clamp counts no output (the context-size check's count).
func (x *exchange) asked(unlimited bool) int64 {
	if x.rq == nil {
		return 0
	}
	if !x.ep.Format.Charged {
		return x.rq.PromptTokens // token counting generates nothing
	}
	if x.rq.Priced > 0 {
		return x.rq.PromptTokens + x.rq.Priced
	}
	out := x.rq.MaxOut
	if !x.rq.HasMaxOut {
		out = x.h.cfg.MaxOutputTokens[x.prov.ID]
	}
	if unlimited && (out <= 0 || x.rq.ZeroLimit) && len(x.ep.Format.MaxTokens) > 0 {
		// Only a format with an output limit writes an answer (not
		// embeddings).
		out = max(out, x.unlimitedOutput())
	}
	return x.rq.PromptTokens + max(out, 0)
}

// unlimitedOutput is the most output the request's model writes when no
// limit bounds it: its family's maximum where the table lists it
// (models.MaxOutput) and the request's model is the one that answers,
// else the provider's (an Azure deployment runs the model it was made
// with, whatever the body names).
func (x *exchange) unlimitedOutput() int64 {
	if x.prov.AnswerModel == nil {
		if n := models.MaxOutput(x.prov.ID, x.rq.Model); n > 0 {
			return n
		}
	}
	return x.prov.UnlimitedOutput
}

// usageDrainTime and usageDrainBytes bound how long and how much of an
// upstream stream is still read, for its usage, once the client has left
// after the last text.
const (
	usageDrainTime  = 30 * time.Second
	usageDrainBytes = 1 << 20
)

// readBody reads the request body once, up to the size cap.
func (x *exchange) readBody() error {
	if x.raw != nil {
		return nil
	}
	r := x.r
	if r.ContentLength > x.h.maxBody {
		return tooLarge(x.h.maxBody)
	}
	// A body takes its size from the instance's memory budget as its
	// buffer is made; a translation takes what it needs on top once the
	// body is read (serve: Request.Reserve), never while a client is
	// still sending it.
	raw, err := readAll(http.MaxBytesReader(x.w, r.Body, x.h.maxBody), r.ContentLength, editRoom, func(n int) error {
		return x.mem.take(r.Context(), int64(n))
	})
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge(x.h.maxBody)
		}
		if err == errBusy {
			return err
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
// grow, when not nil, is told each size the buffer takes before it is
// allocated, and can refuse it.
func readAll(r io.Reader, sizeHint int64, room int, grow func(n int) error) ([]byte, error) {
	size := int(max(sizeHint, 0)) + room
	if grow != nil {
		if err := grow(size); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			more := max(cap(buf), 4096)
			if grow != nil {
				if err := grow(more); err != nil {
					return buf, err
				}
			}
			// Exactly this capacity (slices.Grow rounds it up), so grow
			// is told what the buffer holds.
			buf = append(make([]byte, 0, cap(buf)+more), buf...)
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
	// A streamed answer's upstream request outlives the client by a
	// bounded while when the client leaves after the answer's last text:
	// its usage is still to come. Leaving earlier cancels it at once, as
	// it does any other request, and so does the instance's shutdown,
	// which cannot wait for the usage.
	var ctx context.Context
	var cancel context.CancelFunc
	if x.streamed() {
		// The hook gets its own variable, never assigned again: capturing
		// cancel itself would move it to the heap on every request.
		detached, stopUpstream := context.WithTimeout(context.WithoutCancel(x.r.Context()), x.h.timeout)
		stop := context.AfterFunc(x.r.Context(), func() {
			if x.final.Load() && !errors.Is(context.Cause(x.r.Context()), lifecycle.ErrShuttingDown) {
				time.AfterFunc(usageDrainTime, stopUpstream)
				return
			}
			stopUpstream()
		})
		defer stop()
		ctx, cancel = detached, stopUpstream
	} else {
		ctx, cancel = context.WithTimeout(x.r.Context(), x.h.timeout)
	}
	defer cancel()
	x.cancelUpstream = cancel
	x.ctx = exchangeCtx{Context: ctx, Val: x}
	r := x.r.WithContext(&x.ctx)
	x.call = providers.Call{Upstream: x.up.target, Path: x.upstreamPath, Query: x.query, Model: x.ep.Model, Stream: x.ep.Stream}
	if x.rq != nil {
		x.call.Model, x.call.Stream, x.call.Body = x.rq.Model, x.rq.Stream, x.rq.Body
		body := x.rq.Body
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

// streamed reports a request for a streamed answer (by its route or its
// body), or one whose upstream may stream whatever was asked.
func (x *exchange) streamed() bool {
	return x.ep.Stream || x.rq == nil || x.rq.Stream
}

// rewrite builds the upstream request: URL, body and the headers the
// upstream may see. Hop-by-hop and forwarding headers are already gone,
// and the client's token (removed by Authenticate).
func (x *exchange) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	base := x.up.base
	if base == nil {
		// A template: Outbound builds the URL. Never the proxy's own host.
		base = &url.URL{Scheme: "http", Host: "upstream.invalid"}
	}
	// A base URL ending in the API version (an OpenAI-compatible gateway
	// given as https://host/v1) is not doubled.
	basePath := strings.TrimRight(base.Path, "/")
	if v := basePath[strings.LastIndexByte(basePath, '/')+1:]; v != "" && strings.HasPrefix(x.upstreamPath, "/"+v+"/") {
		basePath = basePath[:len(basePath)-len(v)-1]
	}
	out.URL.Scheme, out.URL.Host = base.Scheme, base.Host
	out.URL.Path = basePath + x.upstreamPath
	out.URL.RawPath = ""
	out.URL.RawQuery = x.query
	out.Host = ""
	if x.rq != nil {
		// ReverseProxy wraps the body in a reader of its own, which hides
		// from the transport that it is in memory: the transport would
		// then send the headers and the body in two writes. A bytes.Reader
		// goes out with the headers in one.
		x.outBody.Reset(x.rq.Body)
		out.Body = io.NopCloser(&x.outBody)
		// The body is the JSON object the proxy read: the upstream is
		// told so, whatever the client said (Google parses a body by its
		// Content-Type, protobuf included, and would read other members
		// than the ones the proxy checked and clamped).
		if ct := out.Header["Content-Type"]; len(ct) != 1 || ct[0] != providers.ContentJSON {
			out.Header["Content-Type"] = jsonContentType[:1:1]
		}
	}
	// out.Header is ReverseProxy's copy of the client's: only the common
	// headers and the provider's own stay. The key is keyTransport's to
	// set, per attempt.
	for k := range out.Header {
		if !listed(providers.CommonHeaders, k) && !listed(x.prov.Headers, k) {
			delete(out.Header, k)
		}
	}
	if x.ep.Translate != nil {
		// The client's Accept is for the answer it gets, in the route's
		// API; the native answer is the translation's to read (Google
		// answers protobuf to a client that accepts it: the upstream's
		// work, untranslatable, would be charged nothing).
		delete(out.Header, "Accept")
	}
	if x.prov.Prepare != nil {
		x.prov.Prepare(out.Header)
	}
}

// jsonContentType is the Content-Type of forwarded bodies; its array is
// shared, never written to (Header.Set replaces a value's slice).
var jsonContentType = []string{providers.ContentJSON}

// listed reports the header name k among names, whatever its case.
func listed(names []string, k string) bool {
	for _, n := range names {
		if strings.EqualFold(n, k) {
			return true
		}
	}
	return false
}

// Upstream response headers the client must not see: the operator's
// organisation, Azure resource's region, deployment and its load, the
// upstream's cookies and its own CORS policy (and, below, the account's
// rate limits).
var dropResponseHeaders = []string{
	"Set-Cookie", "Openai-Organization", "Openai-Project", "Anthropic-Organization-Id", "Alt-Svc",
	"X-Ms-Region", "X-Ms-Deployment-Name", "Azure-Openai-Deployment-Utilization",
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods", "Access-Control-Expose-Headers", "Access-Control-Max-Age",
}

// The headers every relayed answer carries (shared: see modifyResponse).
var (
	noSniff   = []string{"nosniff"}
	sandboxed = []string{"sandbox; default-src 'none'; frame-ancestors 'none'"}
)

// modifyResponse reads usage from a 2xx answer (a stream as it passes, a
// whole answer at once), and cleans up error answers. Nothing is charged
// for an error answer.
func (x *exchange) modifyResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 && x.ep.Format.Charged && !x.streamed() &&
		(x.prov.Inbound != nil || x.ep.Translate != nil) {
		// Read whole before readWhole reads it: weighed as it comes.
		resp.Body = weighedBody{resp.Body, x}
	}
	if x.prov.Inbound != nil {
		if err := x.prov.Inbound(resp, &x.call); err != nil {
			return err
		}
		if err := x.answeredBy(x.call.Answered); err != nil {
			return err
		}
	}
	if t := x.ep.Translate; t != nil {
		if err := t.Response(resp, x.rq); err != nil {
			if resp.StatusCode >= 200 && resp.StatusCode <= 299 && x.ep.Format.Charged && x.rq != nil && !errors.Is(err, errBusy) {
				// The upstream did the work, and its answer cannot be shown
				// (the client gets 502): its output is charged at the
				// request's limit, as an answer that cannot be read is. (An
				// answer the memory budget had no room for is not relayed,
				// and not charged: see budget.go.)
				x.status = resp.StatusCode
				x.charge(x.rq.PromptTokens, x.unreadOutput())
			}
			return err
		}
	}
	if w, ok := resp.Body.(weighedBody); ok {
		// No hook read it (Azure's and Vertex's whole answers): readWhole
		// weighs what it reads itself, and must not weigh it twice.
		resp.Body = w.ReadCloser
	}
	for _, k := range dropResponseHeaders {
		delete(resp.Header, k) // the names are canonical, as the transport's are
	}
	for k := range resp.Header {
		// The operator's account limits and what is left of them. Tollgate's
		// own X-RateLimit-* are on the answer already (serve): an
		// upstream's of the same names would be added to them.
		if strings.HasPrefix(k, "X-Ratelimit-") || strings.HasPrefix(k, "Anthropic-Ratelimit-") {
			delete(resp.Header, k)
		}
	}
	x.h.dropEchoes(resp.Header)
	// The answer is the upstream's, served from the proxy's origin, which
	// behind Firebase Hosting is the admin UI's: no browser may read it as
	// a page of that origin (an error page of HTML, a body sniffed as one).
	// Set on the client's answer, where ReverseProxy copies nothing onto
	// them: the shared values are never appended to.
	delete(resp.Header, "X-Content-Type-Options")
	delete(resp.Header, "Content-Security-Policy")
	h := x.w.Header()
	h["X-Content-Type-Options"] = noSniff
	h["Content-Security-Policy"] = sandboxed
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return x.upstreamError(resp)
	}
	x.status = resp.StatusCode
	if !x.ep.Format.Charged {
		return nil
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, providers.ContentSSE):
		x.relayStream(resp, &framing.SSE{}, true)
	case x.rq.Stream && x.prov.Framing.SSE != nil && mediaJSON(ct):
		// Whatever the request asked, a JSON stream that is not SSE is an
		// array: read whole, its usage would never be found. Any other
		// type (protobuf) is read whole, and charged at the limit.
		x.relayStream(resp, &framing.Array{}, false)
	default:
		return x.readWhole(resp)
	}
	return nil
}

// mediaJSON reports a Content-Type of JSON (application/json, any
// parameters).
func mediaJSON(ct string) bool {
	n := len(providers.ContentJSON)
	return len(ct) >= n && strings.EqualFold(ct[:n], providers.ContentJSON) &&
		(len(ct) == n || ct[n] == ';' || ct[n] == ' ')
}

// answeredBy counts the request in the family of the model the service
// chose (Call.Answered, Provider.AnswerModel; "" when the request's model
// stands), once
// that family's allow-list and quota admit it, before anything is relayed.
func (x *exchange) answeredBy(model string) error {
	if model == "" || x.adm == nil {
		return nil
	}
	family := models.FamilyFor(x.prov.ID, model, x.ep.Format.Kind)
	if family == x.family {
		return nil
	}
	x.log.SetFamily(family) // refused or charged, the request is this family's
	if err := x.h.gk.Move(x.r.Context(), x.adm, family, x.requested()); err != nil {
		return err
	}
	x.family = family
	return nil
}

// relayStream wraps the body so usage is read while the stream passes.
func (x *exchange) relayStream(resp *http.Response, s framing.Splitter, sse bool) {
	f := x.ep.Format
	x.st = &providers.StreamState{HideUsage: x.rq.HideUsage}
	if x.thinks() {
		// Thinking is billed but not relayed: a stream cut short is
		// charged its whole output limit, never less than the upstream's bill.
		x.st.Hidden = x.limitOutput()
	}
	sr := newStreamReader(x.r.Context(), resp.Body, s, x.st, f.Event)
	sr.native = x.rq.Native
	sr.final = &x.final
	sr.cancel = x.cancelUpstream
	sr.pool = x.h.chunks
	sr.clean = f.Clean
	sr.endsAtEOF = x.prov.Framing.EndsAtEOF
	sr.unreadOutput = x.unreadOutput()
	if sse {
		sr.brokenEvent = f.StreamError
	}
	// Charged when the stream's end passes, before the client sees it; the
	// upstream's work is done then, so the concurrency slot is freed too:
	// a client that sends its next request as soon as it reads the end
	// must not find its own finished request still in flight.
	sr.onEnd = func() {
		x.charge(x.streamUsage())
		x.adm.Release()
	}
	resp.Body = sr
	// The relayed body may differ from the upstream's.
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
}

// readWhole reads a whole answer to charge its usage before relaying it.
func (x *exchange) readWhole(resp *http.Response) error {
	// One byte of room: an answer of its announced length is read without
	// growing the buffer to find its end; it is never edited in place.
	limit := x.h.maxAnswer
	x.answer = io.LimitedReader{R: resp.Body, N: int64(limit) + 1} // in the exchange: no allocation
	body, err := readAll(&x.answer, min(resp.ContentLength, int64(limit)+1), 1, func(n int) error {
		return x.mem.take(x.r.Context(), int64(n))
	})
	if err != nil {
		// The upstream broke the answer (502), or the instance had no room
		// for it (503): nothing charged.
		return err
	}
	if len(body) > limit {
		// Too big to hold, so its usage is unread: relay it as it comes,
		// its output charged at the request's limit (as an SSE event too
		// big to read is).
		x.charge(x.rq.PromptTokens, x.unreadOutput())
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	if x.prov.AnswerModel != nil {
		if err := x.answeredBy(x.prov.AnswerModel(body)); err != nil {
			return err
		}
	}
	if x.imageFamily != "" && x.ep.Format.ImageUsage != nil {
		x.images.tokens, x.images.reported, x.images.count = x.ep.Format.ImageUsage(body)
		x.images.read = true
	}
	if u, ok := x.ep.Format.Usage(body); ok {
		x.charge(u.Input, u.Output)
	} else if x.rq.Priced > 0 {
		// DALL-E's images report no usage: charged their price.
		x.charge(x.rq.PromptTokens, x.rq.Priced)
	} else if out, ok := providers.EstimateAnswer(body); ok {
		// No usage reported (some gateways, DALL-E): estimate from the text.
		x.charge(x.rq.PromptTokens, out)
	} else {
		// Not JSON at all (an answer format the client asked for in a
		// header, such as protobuf): nothing in it can be read, so its
		// output is charged at the request's limit, as an answer too big
		// to hold is.
		x.charge(x.rq.PromptTokens, x.unreadOutput())
	}
	// The upstream has answered in full: the slot is free before the
	// client can read the answer (see relayStream).
	x.adm.Release()
	x.setBody(resp, body)
	return nil
}

// memBody is an answer held in memory: io.NopCloser(bytes.NewReader(b))
// in one value. (Not for upstream requests: the transport sends a
// body it knows to be in memory with its headers, and knows only those
// types.)
type memBody struct{ bytes.Reader }

func (*memBody) Close() error { return nil }

// setBody relays body as resp's; an exchange relays one answer, so the
// exchange's own memBody holds it.
func (x *exchange) setBody(resp *http.Response, body []byte) {
	x.ansBody.Reset(body)
	resp.Body = &x.ansBody
	resp.ContentLength = int64(len(body))
	x.ansLen[0] = strconv.Itoa(len(body))
	resp.Header["Content-Length"] = x.ansLen[:1:1] // as Header.Set, in the exchange
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
	f := x.ep.Format
	if x.h.cfg.ErrorFormat == config.ErrorsCompletion && f.Fake != nil {
		title := "Upstream error"
		text := "[tollgate] " + title + " (" + strconv.Itoa(resp.StatusCode) + " from " + x.prov.Name + "): " + upstreamMessage(body)
		ct, fake := f.Fake(x.fakeAnswer(text))
		resp.Header = http.Header{} // the rate headers are on the answer already (serve)
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

// upstreamFailed answers when no upstream answer could be relayed.
func (x *exchange) upstreamFailed(err error) {
	ctx := x.r.Context()
	var netErr interface{ Timeout() bool }
	var refused *users.Error
	switch {
	case errors.As(err, &refused):
		// Outbound refused the request itself (a model the mount does not
		// serve), or the answering model's family refused it (answeredBy):
		// the client's error, in its shape.
		x.writeError(refused, x.rate())
	case errors.Is(err, errNoKey):
		x.writeError(noKey(x.prov, err), x.rate())
	case errors.As(err, new(*outboundError)):
		// The reason (a token endpoint's answer) is for the operator's log.
		x.writeError(&users.Error{Code: web.CodeBadGateway, Message: "The request to " + x.prov.Name + " could not be authorised with the operator's credentials; the operator has been told.", Err: err}, x.rate())
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The client went away; there is no one to answer.
		x.log.SetError("the client went away before the answer")
		x.chargeLeft()
		x.w.WriteHeader(499)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		x.writeError(&users.Error{Code: web.CodeTimeout, Message: "The " + x.prov.Name + " upstream did not answer in time.", Err: err}, x.rate())
	default:
		x.writeError(&users.Error{Code: web.CodeBadGateway, Message: "The " + x.prov.Name + " upstream could not be reached.", Err: err}, x.rate())
	}
}

// chargeLeft charges a request whose client left before its answer,
// once the request had gone to the upstream, which bills what it was
// sent. A stream's upstream request is cancelled with the client (see
// forward): its prompt is charged, as a stream cut before its first text
// is (and its output limit when it thinks: finish). A whole answer's
// upstream may work to the end, its bill unseen: the request is charged
// all it reserved, as an answer that cannot be read is. Charged nothing,
// a client could have the operator billed for answers without end by
// leaving before each arrives.
func (x *exchange) chargeLeft() {
	if !x.sent || x.rq == nil || errors.Is(context.Cause(x.r.Context()), lifecycle.ErrShuttingDown) {
		// (Cut by the instance's shutdown, the request is the operator's
		// loss, not the client's doing.)
		return
	}
	x.status = 499 // the request's event tells why it was charged so
	if x.streamed() {
		out := int64(0)
		if x.thinks() {
			out = x.limitOutput()
		}
		// Cancelled before anything of it came, the stream made no image
		// the proxy saw: its image tool is charged none (imageTokens).
		x.images.read = true
		x.charge(x.rq.PromptTokens, out)
		return
	}
	x.charge(x.rq.PromptTokens, x.unreadOutput())
}

// thinks reports a request whose model reasons before it answers, billed
// though never relayed: it asks to, or its family always does.
func (x *exchange) thinks() bool { return x.rq.Thinking || models.Reasoning(x.family) }

func (x *exchange) rate() *ratelimit.Decision {
	if x.adm == nil {
		return nil
	}
	return &x.adm.Rate
}

// streamUsage splits a stream's charge into input (as reported, by the
// stream or the native one behind a translation, else the prompt's
// estimate) and output.
func (x *exchange) streamUsage() (in, out int64) {
	st := x.st.Filled(x.rq.Native)
	total := st.Tokens(x.rq.PromptTokens)
	in = x.rq.PromptTokens
	if st.HaveIn {
		in = st.U.Input
	}
	in = min(in, total)
	return in, total - in
}

// charge records the request's tokens once, detached from the client,
// who may be gone. It needs no deadline of its own: the store bounds each
// of its calls and the gatekeeper the tries (gatekeeper.ChargeRequest).
func (x *exchange) charge(in, out int64) {
	tokens := in + out
	x.chargeOnce.Do(func() {
		if !x.ep.Format.Charged || x.p == nil {
			return
		}
		images := x.imageTokens()
		x.log.SetTokens(tokens + images)
		x.record(gatekeeper.Charged{Family: x.family, Model: x.rq.Model, Input: in, Output: out, Status: x.status})
		if images > 0 {
			x.record(gatekeeper.Charged{Family: x.imageFamily, Model: x.ep.Format.ImageToolModel, Output: images, Status: x.status})
		}
	})
}

// record charges c, logging what could not be recorded.
func (x *exchange) record(c gatekeeper.Charged) {
	err := x.h.gk.ChargeRequest(context.WithoutCancel(x.r.Context()), x.p, c)
	switch {
	case errors.Is(err, gatekeeper.ErrChargeKept):
		x.h.log.Warn().Err(err).Str("family", c.Family).Int64("tokens", c.Input+c.Output).
			Str("token", logging.TokenTail(x.p.Token)).Msg("usage not yet in the database; kept for a later flush")
	case err != nil:
		x.h.log.Error().Err(err).Str("family", c.Family).Int64("tokens", c.Input+c.Output).
			Str("token", logging.TokenTail(x.p.Token)).Msg("usage could not be recorded")
	}
}

// imagesMade is what a whole answer told of the images its image tool
// made: the tokens the tool reported (when reported) and the images in
// it; read is false when the answer could not be read.
type imagesMade struct {
	tokens, count  int64
	reported, read bool
}

// imageTokens is what the images a text request's image tool made are
// charged in the image family: the tokens the upstream reported for the
// tool, else each image at Request.ImagePrice (its partial images
// included); an answer that could not be read is charged the images
// reserved.
func (x *exchange) imageTokens() int64 {
	if x.imageFamily == "" {
		return 0
	}
	rq := x.rq
	switch st := x.st; {
	case st != nil && st.HaveImageTokens:
		return st.ImageTokens
	case st != nil:
		return st.Images * rq.ImagePrice
	case x.images.read && x.images.reported:
		return x.images.tokens
	case x.images.read:
		return x.images.count * rq.ImagePrice
	}
	return rq.ImagePrice * rq.ImagesReserved
}

// finish charges a stream that ended without passing its end (the client
// left, or the upstream broke it): an estimate of what was relayed.
func (x *exchange) finish() {
	if x.st != nil {
		x.charge(x.streamUsage())
	}
}

// fakeAnswer describes the request for an error shown as an answer.
func (x *exchange) fakeAnswer(text string) providers.FakeAnswer {
	fa := providers.FakeAnswer{Text: text, Model: x.ep.Model, Stream: x.ep.Stream, SSE: x.prov.StreamsSSE(x.r), Created: x.h.now().Unix()}
	rq := x.rq
	if rq == nil && x.ep.Format != nil && x.ep.Format.Body && x.raw == nil && x.r.Body != nil {
		// The error came before the body was read: peek at it for stream
		// and model, so the fake answer matches what the client expects.
		if x.readBody() == nil {
			rq, _ = x.ep.Format.Parse(x.raw, 0, false, false)
		}
	}
	if rq != nil {
		fa.Stream = fa.Stream || rq.Stream
		if fa.Model == "" {
			fa.Model = rq.Model
		}
	}
	if fa.Model == "" {
		fa.Model = "tollgate"
	}
	return fa
}
