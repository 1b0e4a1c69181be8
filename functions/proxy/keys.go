package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/logging"
)

// keyPool hands out a provider's upstream keys in turn. A key is set aside
// only when the upstream says the key itself is bad (the provider's
// KeyDead signals), never for a refusal the request provoked. Keys set
// aside are rechecked with a cheap call, at most one at a time and each at
// most once per recheckEvery, and put back when they work again. Checks
// start from requests, never from a timer: an idle instance may get no CPU.
type keyPool struct {
	provider string
	keys     []string
	next     atomic.Uint32
	log      zerolog.Logger
	// check asks the upstream whether a key works (nil: never rechecked).
	check func(ctx context.Context, key string) (ok bool, err error)
	now   func() time.Time

	mu        sync.Mutex
	aside     []bool
	nextCheck []time.Time // when a key set aside may be checked again
	checking  bool
}

// recheckEvery bounds how often one key set aside is rechecked.
const recheckEvery = 5 * time.Minute

func newKeyPool(provider string, keys []string, log zerolog.Logger) *keyPool {
	return &keyPool{provider: provider, keys: keys, aside: make([]bool, len(keys)), nextCheck: make([]time.Time, len(keys)), log: log, now: time.Now}
}

// pick returns the key whose turn it is, skipping keys set aside, or -1.
func (p *keyPool) pick() int {
	if len(p.keys) == 0 {
		return -1
	}
	p.maybeRecheck()
	return p.from(int(p.next.Add(1)-1)%len(p.keys), nil)
}

// after returns the first usable key after cur not yet tried, or -1; it
// leaves the turn order alone.
func (p *keyPool) after(cur int, tried []bool) int {
	return p.from((cur+1)%len(p.keys), tried)
}

func (p *keyPool) from(start int, tried []bool) int {
	n := len(p.keys)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range n {
		k := (start + i) % n
		if !p.aside[k] && (tried == nil || !tried[k]) {
			return k
		}
	}
	return -1
}

// setAside stops using key i, saying so once: the operator must act.
func (p *keyPool) setAside(i int, status int) {
	p.mu.Lock()
	already := p.aside[i]
	p.aside[i] = true
	p.nextCheck[i] = p.now().Add(recheckEvery)
	p.mu.Unlock()
	if !already {
		p.log.Warn().Str("provider", p.provider).Str("key", logging.TokenTail(p.keys[i])).Int("status", status).
			Msg("upstream key rejected; it is set aside and rechecked every few minutes")
	}
}

// keyCounts is how many keys are in service and set aside.
type keyCounts struct {
	InService int `json:"inService"`
	SetAside  int `json:"setAside"`
}

func (p *keyPool) keyCounts() keyCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	var c keyCounts
	for _, a := range p.aside {
		if a {
			c.SetAside++
		}
	}
	c.InService = len(p.keys) - c.SetAside
	return c
}

// maybeRecheck starts the check of one key set aside whose time has come,
// unless a check is already running.
func (p *keyPool) maybeRecheck() {
	if p.check == nil {
		return
	}
	now := p.now()
	p.mu.Lock()
	k := -1
	if !p.checking {
		for i, a := range p.aside {
			if a && !now.Before(p.nextCheck[i]) {
				k = i
				break
			}
		}
	}
	if k < 0 {
		p.mu.Unlock()
		return
	}
	p.checking = true
	p.nextCheck[k] = now.Add(recheckEvery)
	p.mu.Unlock()
	go p.recheck(k)
}

func (p *keyPool) recheck(k int) {
	ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
	defer cancel()
	ok, err := p.check(ctx, p.keys[k])
	p.mu.Lock()
	p.checking = false
	back := ok && p.aside[k]
	if back {
		p.aside[k] = false
	}
	p.mu.Unlock()
	l := p.log.Info().Str("provider", p.provider).Str("key", logging.TokenTail(p.keys[k]))
	switch {
	case back:
		l.Msg("upstream key works again; back in service")
	case err != nil:
		l.Err(err).Msg("upstream key recheck failed; still set aside")
	}
}

// recheckTimeout bounds one key check.
const recheckTimeout = 15 * time.Second

// newKeyCheck checks a key of up's provider through the proxy's transport.
func newKeyCheck(up *upstream, rt http.RoundTripper) func(ctx context.Context, key string) (bool, error) {
	return func(ctx context.Context, key string) (bool, error) {
		return up.prov.CheckKey(ctx, rt, up.target, key)
	}
}

// maxKeyAttempts bounds how many keys one request tries.
const maxKeyAttempts = 4

// errNoKey means every key of the provider has been set aside.
var errNoKey = errors.New("no usable upstream key")

// peekLimit bounds how much of an error answer is read to classify it.
const peekLimit = 64 << 10

// keyTransport sends a request with the exchange's key and, when the
// upstream rejects the key or rate-limits it, retries with the next one.
// The body is replayed from the bytes the exchange kept.
type keyTransport struct {
	base http.RoundTripper
}

func (t *keyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchangeFrom(req.Context())
	if x == nil {
		return t.base.RoundTrip(req)
	}
	pool := x.up.keys
	var few [8]bool // most pools are small: no allocation
	var tried []bool
	if len(pool.keys) <= len(few) {
		tried = few[:len(pool.keys)]
	} else {
		tried = make([]bool, len(pool.keys))
	}
	key := x.keyIdx
	for attempt := 1; ; attempt++ {
		out := req
		// req stays as the rewrite built it, but for the key header that
		// every attempt sets again; Outbound changes more, so it is given
		// a copy.
		if attempt > 1 || x.prov.Outbound != nil {
			out = req.Clone(req.Context())
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				out.Body = body
			}
		}
		x.call.Cred = pool.keys[key]
		if err := x.prov.Authorize(req.Context(), out, &x.call); err != nil {
			return nil, &outboundError{err}
		}
		if attempt == 1 && x.call.Built > 0 {
			// A body the provider built for its service is a copy of the
			// request's, held as long (each attempt's replaces the last).
			if err := x.mem.take(req.Context(), x.call.Built); err != nil {
				return nil, err
			}
		}
		x.sent = true
		resp, err := t.base.RoundTrip(out)
		if err != nil {
			return nil, err // the upstream itself failed: another key will not help
		}
		tried[key] = true
		// Only the provider's own signals say a key is bad: a 401, 403 or
		// 404 the request provoked (a model the project lacks, someone
		// else's cached content) is relayed and the key stays.
		var dead, elsewhere bool
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			peek := peekBody(resp)
			dead = x.prov.KeyDead(resp.StatusCode, peek)
			elsewhere = !dead && x.prov.Elsewhere != nil && x.prov.Elsewhere(resp.StatusCode, peek)
		}
		if dead {
			pool.setAside(key, resp.StatusCode)
		}
		if !dead && !elsewhere && resp.StatusCode != http.StatusTooManyRequests {
			return resp, nil
		}
		next := pool.after(key, tried)
		if next < 0 || attempt >= maxKeyAttempts {
			if dead {
				discard(resp)
				return nil, errNoKey
			}
			return resp, nil // rate-limited on every key tried: the client sees it
		}
		discard(resp)
		key = next
	}
}

// outboundError is a request the provider could not prepare for its
// service (a token endpoint down, a credential it cannot use).
type outboundError struct{ err error }

func (e *outboundError) Error() string { return "preparing the upstream request: " + e.err.Error() }
func (e *outboundError) Unwrap() error { return e.err }

// peekBody reads the start of an error answer and puts it back.
func peekBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, peekLimit))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return b
}

// discard drains a little of a response (so its connection can be reused)
// and closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, peekLimit))
	resp.Body.Close()
}
