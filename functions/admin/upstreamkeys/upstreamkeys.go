// Package upstreamkeys checks the proxy's upstream keys from the admin
// function, for its keys panel and its REST API.
//
// The proxy's key pools live in each proxy instance's memory, and the
// admin function shares none with them; a check from here, with each
// provider's free model list, sees what any instance would. A key is in
// service when the provider accepts it, set aside when the provider says
// it is bad or the check fails. Results are kept for CheckEvery: viewing
// them starts no more checks than that; Counts with force checks at once.
package upstreamkeys

import (
	"context"
	"net/http"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/providers"
)

// CheckEvery is how long results are kept.
const CheckEvery = 5 * time.Minute

const checkTimeout = 10 * time.Second

// Provider is one served provider's keys, shown by their last 4
// characters only, never whole.
type Provider struct {
	Provider  string `json:"provider"`
	InService int    `json:"inService"`
	SetAside  int    `json:"setAside"`
	Keys      []Key  `json:"keys"`
}

// Key is one key's state.
type Key struct {
	Tail      string `json:"tail"`
	InService bool   `json:"inService"`
}

// Checker checks and remembers; one per admin instance.
type Checker struct {
	cfg *config.Config
	rt  http.RoundTripper
	now func() time.Time

	mu      sync.Mutex
	at      time.Time
	results []Provider
}

// New returns a checker of cfg's keys; rt nil is http.DefaultTransport.
func New(cfg *config.Config, rt http.RoundTripper, now func() time.Time) *Checker {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if now == nil {
		now = time.Now
	}
	return &Checker{cfg: cfg, rt: rt, now: now}
}

// Counts returns the last check's results and when it ran, checking
// again when they are older than CheckEvery or when force is set.
func (c *Checker) Counts(ctx context.Context, force bool) ([]Provider, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !force && c.results != nil && c.now().Sub(c.at) < CheckEvery {
		return c.results, c.at
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
	defer cancel()
	out := []Provider{}
	checked := map[string]bool{} // key variables: mounts that share one share its keys
	for _, p := range providers.All() {
		keys := c.cfg.ProviderKeys[p.ID]
		if len(keys) == 0 || checked[p.Env.Key] {
			continue
		}
		checked[p.Env.Key] = true
		up := providers.Upstream{Base: c.cfg.BaseURLs[p.ID], Settings: c.cfg.ProviderSettings}
		ok := make([]bool, len(keys))
		var wg sync.WaitGroup
		for i, key := range keys {
			wg.Go(func() { ok[i], _ = p.CheckKey(ctx, c.rt, up, key) })
		}
		wg.Wait()
		pc := Provider{Provider: p.Name, Keys: []Key{}}
		for i, good := range ok {
			pc.Keys = append(pc.Keys, Key{Tail: Tail(keys[i]), InService: good})
			if good {
				pc.InService++
			} else {
				pc.SetAside++
			}
		}
		out = append(out, pc)
	}
	c.results, c.at = out, c.now()
	return out, c.at
}

// Tail is the last 4 characters of a key, all that is ever shown.
func Tail(key string) string {
	r := []rune(key)
	if len(r) <= 8 {
		return "…" // too short to show any of it safely
	}
	return "…" + string(r[len(r)-4:])
}
