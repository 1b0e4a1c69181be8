package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/shared/logging"
)

// keyPool hands out a provider's upstream keys in turn. A key the upstream
// rejects (401/403, or a provider-specific "this key is dead" answer) is
// set aside for the life of this instance.
type keyPool struct {
	provider string
	keys     []string
	next     atomic.Uint32
	mu       sync.Mutex
	aside    []bool
	log      zerolog.Logger
}

func newKeyPool(provider string, keys []string, log zerolog.Logger) *keyPool {
	return &keyPool{provider: provider, keys: keys, aside: make([]bool, len(keys)), log: log}
}

// pick returns the key whose turn it is, skipping keys set aside, or -1.
func (p *keyPool) pick() int {
	if len(p.keys) == 0 {
		return -1
	}
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
	p.mu.Unlock()
	if !already {
		p.log.Warn().Str("provider", p.provider).Str("key", logging.TokenTail(p.keys[i])).Int("status", status).
			Msg("upstream key rejected; it is set aside until this instance restarts")
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
	tried := make([]bool, len(pool.keys))
	key := x.keyIdx
	for attempt := 1; ; attempt++ {
		out := req
		if attempt > 1 {
			out = req.Clone(req.Context())
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				out.Body = body
			}
			x.prov.SetKey(out.Header, pool.keys[key])
		}
		resp, err := t.base.RoundTrip(out)
		if err != nil {
			return nil, err // the upstream itself failed: another key will not help
		}
		tried[key] = true
		dead := resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
		if !dead && x.prov.KeyDead != nil && (resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusTooManyRequests) {
			dead = x.prov.KeyDead(resp.StatusCode, peekBody(resp))
		}
		if dead {
			pool.setAside(key, resp.StatusCode)
		}
		if !dead && resp.StatusCode != http.StatusTooManyRequests {
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
