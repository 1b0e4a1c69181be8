package ui

import (
	"context"
	"net/http"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/providers"
)

// keyChecker counts each served provider's upstream keys that work and
// that are set aside (the provider says the key is bad, or the check
// failed), checking them itself with the provider's free model list: the
// proxy's instances share no memory with the admin function. Results are
// kept for keyCheckEvery; a page view starts no more checks than that.
type keyChecker struct {
	cfg *config.Config
	rt  http.RoundTripper
	now func() time.Time

	mu      sync.Mutex
	at      time.Time
	results []keyCount
}

// keyCount is one provider's line on the maintenance page (never a key).
type keyCount struct {
	Provider  string
	InService int
	SetAside  int
}

const (
	keyCheckEvery   = 5 * time.Minute
	keyCheckTimeout = 10 * time.Second
)

func (k *keyChecker) counts(ctx context.Context) ([]keyCount, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.results != nil && k.now().Sub(k.at) < keyCheckEvery {
		return k.results, k.at
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyCheckTimeout)
	defer cancel()
	var out []keyCount
	for _, p := range providers.All() {
		keys := k.cfg.ProviderKeys[p.ID]
		if len(keys) == 0 {
			continue
		}
		up := providers.Upstream{Base: k.cfg.BaseURLs[p.ID], Settings: k.cfg.ProviderSettings}
		ok := make([]bool, len(keys))
		var wg sync.WaitGroup
		for i, key := range keys {
			wg.Go(func() { ok[i], _ = p.CheckKey(ctx, k.rt, up, key) })
		}
		wg.Wait()
		c := keyCount{Provider: p.Name}
		for _, good := range ok {
			if good {
				c.InService++
			} else {
				c.SetAside++
			}
		}
		out = append(out, c)
	}
	k.results, k.at = out, k.now()
	return out, k.at
}
