package ui

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/providers"
)

// keyChecker checks each served provider's upstream keys itself, with the
// provider's free model list: the proxy's instances share no memory with
// the admin function, and a check from here sees what any instance would.
// A key is in service when the provider accepts it, set aside when the
// provider says it is bad or the check fails. Results are kept for
// keyCheckEvery; a page view starts no more checks than that, and
// "recheck now" starts one at once.
type keyChecker struct {
	cfg *config.Config
	rt  http.RoundTripper
	now func() time.Time

	mu      sync.Mutex
	at      time.Time
	results []keyCount
}

// keyCount is one provider's line on the maintenance page: its keys by
// their last 4 characters only, never a whole key.
type keyCount struct {
	Provider  string
	InService int
	SetAside  int
	Keys      []keyState
}

type keyState struct {
	Tail      string
	InService bool
}

const (
	keyCheckEvery   = 5 * time.Minute
	keyCheckTimeout = 10 * time.Second
)

// counts returns the last check's results, checking again when they are
// older than keyCheckEvery or when force is set.
func (k *keyChecker) counts(ctx context.Context, force bool) ([]keyCount, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !force && k.results != nil && k.now().Sub(k.at) < keyCheckEvery {
		return k.results, k.at
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyCheckTimeout)
	defer cancel()
	var out []keyCount
	for _, p := range providers.All() {
		keys := k.cfg.ProviderKeys[p.ID]
		base, err := url.Parse(k.cfg.BaseURLs[p.ID])
		if len(keys) == 0 || err != nil {
			continue
		}
		ok := make([]bool, len(keys))
		var wg sync.WaitGroup
		for i, key := range keys {
			wg.Go(func() { ok[i], _ = p.CheckKey(ctx, k.rt, base, key) })
		}
		wg.Wait()
		c := keyCount{Provider: p.Name}
		for i, good := range ok {
			c.Keys = append(c.Keys, keyState{Tail: keyTail(keys[i]), InService: good})
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

// keyTail is the last 4 characters of a key, all that the page shows.
func keyTail(key string) string {
	r := []rune(key)
	if len(r) <= 8 {
		return "…" // too short to show any of it safely
	}
	return "…" + string(r[len(r)-4:])
}

// recheckKeys checks every key now, whatever the last check's age.
func (h *handler) recheckKeys(w http.ResponseWriter, r *http.Request, s session) {
	h.keys.counts(r.Context(), true)
	redirect(w, r, "/manage/maintenance?done=rechecked")
}
