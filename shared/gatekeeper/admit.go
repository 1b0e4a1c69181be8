package gatekeeper

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// Admission is a request let through Enter: it holds the request's
// concurrency slot and, once Reserve has passed, its quota reservation.
// Release it when the request ends, whatever the path.
type Admission struct {
	Rate ratelimit.Decision

	g        *Gatekeeper
	p        *Principal
	slot     ratelimit.Slot
	rateKey  string
	rateAt   time.Time
	lease    string // the request's id in the cluster-wide limits
	renewMu  sync.Mutex
	renewal  *time.Timer // renews the lease while the request runs
	refund   bool        // on release, take back its count there too
	counted  bool        // the rate limiter counted this request
	family   string      // the reservation's, once Reserve passed
	reserved int64
	holds    bool
	also     hold // a second family's reservation (ReserveAlso)
	released atomic.Bool
}

// hold is a reservation in a family's quota.
type hold struct {
	family   string
	reserved int64
	holds    bool
}

// Release frees the request's concurrency slot and quota reservation
// (after its charge: see Gatekeeper.Charge); safe to call more than once.
func (a *Admission) Release() {
	if a == nil || !a.released.CompareAndSwap(false, true) {
		return
	}
	a.slot.Release()
	if a.lease != "" {
		// Waits for a renewal under way: written after the leave, it
		// would take the lease again (renewLease).
		a.renewMu.Lock()
		a.renewal.Stop()
		a.renewMu.Unlock()
		a.g.leave(a.p.Key, a.lease, a.refund)
	}
	if a.holds {
		a.g.ledger.release(a.p.Token, a.family, a.reserved)
	}
	if a.also.holds {
		a.g.ledger.release(a.p.Token, a.also.family, a.also.reserved)
	}
}

// Refuse ends an admission whose request the instance itself could not
// send upstream (no room for its body, no working key): as a refusal by
// Reserve, it takes back the request's rate-limit count, which the
// client's retry of such a 503 would otherwise pay again. Call it before
// Release; nothing once Release has run.
func (a *Admission) Refuse() {
	if a == nil || a.g == nil || a.released.Load() {
		return
	}
	a.refuse()
}

// refuse ends an admission refused after Enter: the request never ran, so
// it must not use up the rate limit either.
func (a *Admission) refuse() {
	if a.counted {
		a.g.window.Undo(a.rateKey, a.rateAt)
		a.counted = false
		a.Rate.Remaining++
	}
	a.refund = true
	a.Release()
}

// Enter runs the checks that need no request body, so that nothing is
// read for a request they refuse: the model allow-list and a quota
// already used up, both over reach (the families the route can count the
// request in: models.Reachable, or the one family a path names), then the
// rate limit (image or text, by reach) and the concurrency limit. On a
// rate-limit refusal the returned Admission carries the rate headers'
// values. Reserve finishes the admission once the body is known.
func (g *Gatekeeper) Enter(ctx context.Context, p *Principal, reach []string) (*Admission, error) {
	if !p.Admin {
		if err := g.allowedAny(reach); err != nil {
			return nil, err
		}
	}
	if p.Exempt {
		return &Admission{g: g, p: p}, nil
	}
	if p.Token != "" {
		if err := g.usedUp(p, reach); err != nil {
			return nil, err
		}
	}
	key, limit, kind := p.Key, g.cfg.TextRateLimit, "text"
	if allImage(reach) {
		key, limit, kind = key+"|image", g.cfg.ImageRateLimit, "image" // image and text requests have separate limits
	}
	if p.Shared {
		limit = 0
	}
	if g.cluster != nil {
		return g.enterCluster(ctx, p, kind, limit)
	}
	now := g.now()
	rate := g.window.Allow(key, limit, now)
	if !rate.Allowed {
		retry := int(rate.RetryIn.Round(time.Second) / time.Second)
		return &Admission{Rate: rate}, &users.Error{
			Code:              users.CodeRateLimited,
			Message:           "Rate limit exceeded: too many requests per minute; try again later.",
			RetryAfterSeconds: max(retry, 1),
		}
	}
	a := &Admission{Rate: rate, g: g, p: p, rateKey: key, rateAt: now, counted: limit > 0}
	slot, ok := g.inflight.Take(p.Key, inflightLimit(g.cfg.ConcurrencyLimit, p))
	if !ok {
		a.refuse()
		return &Admission{Rate: a.Rate}, users.Errorf(users.CodeConcurrency, "Too many requests in flight for this token; wait for one to finish.")
	}
	a.slot = slot
	return a, nil
}

// Reserve finishes an admission once the request's family and its
// requested tokens (estimated prompt plus requested output) are known:
// the allow-list for that family, then the quota, counting what the
// user's other admitted requests on this instance have reserved and not
// yet been charged. What fits is reserved until the admission is
// released. On refusal the admission is released and its rate-limit
// count taken back.
func (g *Gatekeeper) Reserve(ctx context.Context, a *Admission, family string, requested int64) error {
	if err := g.reserve(ctx, a, family, requested, true); err != nil {
		a.refuse()
		return err
	}
	return nil
}

// ReserveAlso reserves, for an admission Reserve has passed, requested
// tokens in a second family: what the request makes beside its own
// family's output and is charged there (the images a Responses request's
// image generation tool makes, in the image family). It is checked as
// Reserve checks, counting the first reservation when the family is the
// same; on refusal the admission is released and its rate-limit count
// taken back. Released with the admission.
func (g *Gatekeeper) ReserveAlso(ctx context.Context, a *Admission, family string, requested int64) error {
	h, err := g.check(ctx, a, family, requested, true)
	if err != nil {
		a.refuse()
		return err
	}
	a.also = h
	if h.holds && a.released.Load() {
		g.ledger.release(a.p.Token, family, requested)
	}
	return nil
}

// Move counts an admitted request in another family than the one it
// reserved in: the service, not the request, chose the model that
// answered (an Azure deployment's). That family's allow-list and quota
// are checked as Reserve checks them, before anything of the answer is
// relayed, and the reservation moves there. On refusal the admission is
// released; the rate limit keeps its count, as the upstream was asked.
func (g *Gatekeeper) Move(ctx context.Context, a *Admission, family string, requested int64) error {
	if a.holds {
		g.ledger.release(a.p.Token, a.family, a.reserved)
		a.holds = false
	}
	if err := g.reserve(ctx, a, family, requested, false); err != nil {
		a.Release()
		return err
	}
	return nil
}

// reserve checks and reserves; before the request is sent (Reserve, not
// Move, whose upstream has answered) it also refuses a user whose token
// ended since authentication.
func (g *Gatekeeper) reserve(ctx context.Context, a *Admission, family string, requested int64, unsent bool) error {
	h, err := g.check(ctx, a, family, requested, unsent)
	if err != nil || !h.holds {
		return err
	}
	a.family, a.reserved, a.holds = h.family, h.reserved, true
	if a.released.Load() {
		// Released meanwhile (a caller's bug): give the reservation back.
		g.ledger.release(a.p.Token, family, requested)
	}
	return nil
}

// check is reserve's checks and the ledger's reservation, which it
// returns for the caller to hold.
func (g *Gatekeeper) check(ctx context.Context, a *Admission, family string, requested int64, unsent bool) (hold, error) {
	p := a.p
	if !p.Admin && !g.cfg.FamilyAllowed(family) {
		return hold{}, notAllowed(family)
	}
	if p.Exempt || p.Token == "" {
		return hold{}, nil
	}
	if unsent && p.quota.expired(g.now()) {
		// Its time ran out while the body was on its way (a body may
		// take as long as the function's timeout to arrive).
		return hold{}, users.Errorf(users.CodeForbidden, users.ExpiredReason)
	}
	limit, used := p.quota.of(family)
	if limit <= 0 {
		// No quota to keep (as of authentication, USER_CACHE_TTL old at
		// most): nothing to reserve, and no second read of the user.
		return hold{}, nil
	}
	settled0 := g.ledger.open(p.Token, family)
	typ := p.quota.typ
	if now := g.now(); !g.charges.none(p.Token, p.read) || now.Sub(p.read.at) > trustRead {
		// The copy read at authentication may predate charges of requests
		// that have since released their reservations: read the current
		// one. (Without a charge since, it is as current as a new read,
		// unless the body took long enough to arrive for a shared store's
		// cache to have taken other instances' charges in meanwhile.)
		var fresh struct {
			typ         users.Type
			limit, used int64
			refused     error
		}
		err := g.store.Lookup(ctx, p.Token, func(u *users.User) {
			if unsent {
				// Disabled (or expired) since the request was authenticated?
				fresh.refused = usable(u, now)
			}
			fresh.typ, fresh.limit, fresh.used = u.Type, u.TokenLimits[family], u.TokenCounts[family]
		})
		if err != nil {
			g.ledger.close(p.Token)
			if users.IsNotFound(err) {
				return hold{}, users.Errorf(users.CodeUnauthorized, "Invalid user token.")
			}
			return hold{}, unavailable(err)
		}
		if fresh.refused != nil {
			g.ledger.close(p.Token)
			return hold{}, fresh.refused
		}
		typ, limit, used = fresh.typ, fresh.limit, fresh.used
	}
	if err := g.ledger.reserve(p.Token, typ, family, limit, used, requested, settled0); err != nil {
		return hold{}, err
	}
	return hold{family: family, reserved: requested, holds: true}, nil
}

// Admit is Enter and Reserve at once, for a request whose family and size
// are known before anything is admitted.
func (g *Gatekeeper) Admit(ctx context.Context, p *Principal, family string, requested int64) (*Admission, error) {
	a, err := g.Enter(ctx, p, []string{family})
	if err != nil {
		return a, err
	}
	if err := g.Reserve(ctx, a, family, requested); err != nil {
		return a, err
	}
	return a, nil
}

func notAllowed(family string) error {
	return users.Errorf(users.CodeForbidden, "The %s model family is not allowed on this proxy.", family)
}

// allowedAny refuses a route none of whose families is allowed.
func (g *Gatekeeper) allowedAny(reach []string) error {
	for _, f := range reach {
		if g.cfg.FamilyAllowed(f) {
			return nil
		}
	}
	if len(reach) == 1 {
		return notAllowed(reach[0])
	}
	return users.Errorf(users.CodeForbidden, "None of the model families this route serves is allowed on this proxy.")
}

// usedUp refuses a user whose quota is already used up (counting this
// instance's reservations) in every allowed family of reach: no request
// body could then be served. A request asks for at least one token.
func (g *Gatekeeper) usedUp(p *Principal, reach []string) error {
	var quota, used int64
	var spent []string
	for _, f := range reach {
		if !g.cfg.FamilyAllowed(f) {
			continue
		}
		limit, counted := p.quota.of(f)
		if limit <= 0 || p.quota.typ == users.Special {
			return nil
		}
		u := satAdd(counted, g.ledger.reserved(p.Token, f))
		if u < limit {
			return nil
		}
		quota, used, spent = quota+limit, satAdd(used, u), append(spent, f)
	}
	if len(spent) == 0 {
		return nil
	}
	msg := "You have exceeded your token quota for the " + spent[0] + " model family."
	if len(spent) > 1 {
		msg = "You have exceeded your token quota for every model family this route serves (" + strings.Join(spent, ", ") + ")."
	}
	return &users.Error{Code: users.CodeQuota, Message: msg, Quota: quota, Used: used}
}

func allImage(reach []string) bool {
	for _, name := range reach {
		if f, ok := models.Lookup(name); !ok || !f.Image {
			return false
		}
	}
	return len(reach) > 0
}
