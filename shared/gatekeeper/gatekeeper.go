// Package gatekeeper decides whether a proxy request may go upstream: it
// finds the client's token and IP, authenticates them in the configured
// mode, applies the IP limit, model allow-list, quota, rate and concurrency
// limits, and charges usage afterwards.
package gatekeeper

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// Gatekeeper holds the per-instance limiters; one per proxy instance.
type Gatekeeper struct {
	cfg      *config.Config
	store    users.Store
	now      func() time.Time
	window   *ratelimit.Window
	inflight *ratelimit.Concurrency
	ledger   *ledger
	charges  *charges
	// cluster keeps rate and concurrency limits in the store
	// (LIMITS_SCOPE=cluster); nil: in this instance.
	cluster  users.Limits
	pruner   pruner
	kept     keptLeaves
	lockout  *ratelimit.Lockout
	adminKey [32]byte
	proxyKey [32]byte
	risuKey  *rsa.PublicKey // verifies x-risu-tk (clients.go)
	ips      *LiveIPs
	// events records charged requests (EVENT_LOGGING); nil: off.
	events      users.Events
	eventFailed func(token string, err error)
}

// New returns a gatekeeper over store; now is the clock.
func New(cfg *config.Config, store users.Store, now func() time.Time) *Gatekeeper {
	if now == nil {
		now = time.Now
	}
	g := &Gatekeeper{
		cfg:      cfg,
		store:    store,
		now:      now,
		window:   ratelimit.NewWindow(time.Minute),
		inflight: ratelimit.NewConcurrency(),
		ledger:   newLedger(),
		charges:  newCharges(),
		lockout:  ratelimit.NewKeyLockout(),
		adminKey: sha256.Sum256([]byte(cfg.AdminKey)),
		proxyKey: sha256.Sum256([]byte(cfg.ProxyKey)),
		risuKey:  parseRisuKey(),
		ips:      NewLiveIPs(cfg, store, now),
	}
	if e, ok := store.(users.Events); ok && cfg.EventLogging {
		g.events = e
	}
	if l, ok := store.(users.Limits); ok && cfg.LimitsScope == config.LimitsCluster {
		g.cluster = l
		g.pruner.slots = make(chan struct{}, pruneParallel)
	}
	return g
}

// IPs are the live IP lists the gatekeeper enforces, for the function's
// pages to refuse IP_BLACKLIST alike from the same copy.
func (g *Gatekeeper) IPs() *LiveIPs { return g.ips }

// Principal is who a request is from.
type Principal struct {
	IP    string
	Token string // the user's token in user_token mode, else ""
	// quota is the user's quota as of authentication (user_token mode).
	quota userQuota
	// Key is what rate and concurrency limits count by: the user's token,
	// or the client IP where there is none.
	Key string
	// Admin is set when the request carried ADMIN_KEY.
	Admin bool
	// Exempt principals (admin, special users) skip quotas, IP, rate and
	// concurrency limits and output clamps.
	Exempt bool
	// Shared: no user token, from a chat front-end's shared address
	// (Agnai): no rate limit, SharedConcurrencyFactor× the concurrency.
	Shared bool

	// read is where this instance's charges of the user stood when quota
	// was read (see charges).
	read chargeMark
}

// TokenSources are where a client's token may travel, first found wins.
const (
	headerAuthorization = "Authorization"
	headerAPIKey        = "X-Api-Key"
	headerGoogAPIKey    = "X-Goog-Api-Key"
	queryKey            = "key"
)

// ExtractToken returns the client's token and removes every place a token
// can travel from r, so none of them is forwarded upstream.
func ExtractToken(r *http.Request) string {
	token := ""
	if v := r.Header.Get(headerAuthorization); v != "" {
		if scheme, rest, ok := strings.Cut(strings.TrimSpace(v), " "); ok && strings.EqualFold(scheme, "Bearer") {
			token = strings.TrimSpace(rest)
		}
	}
	for _, h := range []string{headerAPIKey, headerGoogAPIKey} {
		if v := strings.TrimSpace(r.Header.Get(h)); token == "" && v != "" {
			token = v
		}
		r.Header.Del(h)
	}
	r.Header.Del(headerAuthorization)
	if r.URL.RawQuery != "" {
		v, rest, found := cutQueryKey(r.URL.RawQuery)
		if found {
			r.URL.RawQuery = rest
		}
		if token == "" {
			token = v
		}
	}
	return token
}

// cutQueryKey removes every key= parameter (however its name is escaped)
// from a raw query and returns the first non-empty value. Other parameters
// keep their order and spelling, which re-encoding would not.
func cutQueryKey(raw string) (value, rest string, found bool) {
	kept := make([]string, 0, strings.Count(raw, "&")+1)
	for pair := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if name, err := url.QueryUnescape(k); err != nil || name != queryKey {
			kept = append(kept, pair)
			continue
		}
		found = true
		if u, err := url.QueryUnescape(v); err == nil && value == "" {
			value = strings.TrimSpace(u)
		}
	}
	return value, strings.Join(kept, "&"), found
}

// equalKey compares hashes, so that the time taken tells nothing about
// the key, not even its length.
func equalKey(token string, want [32]byte) bool {
	var buf [128]byte // tokens are short: hashed without an allocation
	got := sha256.Sum256(append(buf[:0], token...))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// Authenticate identifies the request's client; it removes the token from r.
//
// ADMIN_KEY is honoured only from ADMIN_WHITELIST and from an address not
// locked out; elsewhere it is an ordinary (wrong) token, so the answer
// tells nothing about it. Wrong keys count towards the address's lockout
// (per instance: the admin function keeps its own): in proxy_key mode a
// locked-out address is refused before its key is looked at; in
// user_token mode a known user's token still works from it, and any
// other token gets the lockout refusal.
func (g *Gatekeeper) Authenticate(ctx context.Context, r *http.Request) (*Principal, error) {
	ip := netutil.ClientIP(r, g.cfg.TrustedProxies)
	token := ExtractToken(r)
	now := g.now()
	risu := g.risuID(r, now)
	if g.ips.Blacklisted(ctx, ip) {
		return nil, users.Errorf(users.CodeForbidden, "Forbidden (by IP_BLACKLIST).")
	}
	locked, wait := g.lockout.Locked(ip, now)
	if token != "" && g.cfg.AdminKey != "" && !locked && g.ips.Whitelisted(ctx, ip) && equalKey(token, g.adminKey) {
		return &Principal{IP: ip, Key: "admin", Admin: true, Exempt: true}, nil
	}
	switch g.cfg.Gatekeeper {
	case config.ModeProxyKey:
		if locked {
			return nil, lockedOut(wait)
		}
		if token == "" {
			return nil, users.Errorf(users.CodeUnauthorized, "Missing proxy key: send it as a Bearer token or an API key.")
		}
		if !equalKey(token, g.proxyKey) {
			g.lockout.Fail(ip, now)
			return nil, users.Errorf(users.CodeUnauthorized, "Invalid proxy key.")
		}
		return addressed(ip, risu), nil
	case config.ModeUserToken:
		p, err := g.authenticateUser(ctx, token, userIP(ip, risu), now)
		if p != nil {
			p.IP = ip // the address, whatever the IP list records
		}
		if token != "" && users.ErrorCode(err) == users.CodeUnauthorized {
			if locked {
				return nil, lockedOut(wait)
			}
			g.lockout.Fail(ip, now)
		}
		return p, err
	default:
		// Tokens are no credential here, but one may be a guess at
		// ADMIN_KEY (which lifts the limits): it counts as a failure.
		if token != "" && g.cfg.AdminKey != "" && !locked {
			g.lockout.Fail(ip, now)
		}
		return addressed(ip, risu), nil
	}
}

// usable refuses a disabled user, or a temporary one whose time is up.
func usable(u *users.User, now time.Time) error {
	if u.Disabled() {
		reason := u.DisabledReason
		if reason == "" {
			reason = "no reason given"
		}
		return users.Errorf(users.CodeForbidden, "Your token has been disabled: %s", reason)
	}
	if u.Expired(now) {
		return users.Errorf(users.CodeForbidden, users.ExpiredReason)
	}
	return nil
}

func lockedOut(wait time.Duration) error {
	return &users.Error{
		Code:              users.CodeRateLimited,
		Message:           "Too many failed keys from your address; try again later.",
		RetryAfterSeconds: max(1, int(math.Ceil(wait.Seconds()))),
	}
}

func (g *Gatekeeper) authenticateUser(ctx context.Context, token, ip string, now time.Time) (*Principal, error) {
	if token == "" {
		return nil, users.Errorf(users.CodeUnauthorized, "Missing user token: send it as a Bearer token or an API key.")
	}
	if !users.ValidToken(token) {
		return nil, users.Errorf(users.CodeUnauthorized, "Invalid user token.")
	}
	_, deferred := g.store.(users.IPRecorder)
	a := &authentication{p: Principal{IP: ip, Token: token, Key: token, read: g.charges.mark(token, now)}}
	err := g.store.Lookup(ctx, token, func(u *users.User) {
		if a.refused = usable(u, now); a.refused != nil {
			return
		}
		a.due = users.RefreshDue(u, g.cfg.QuotaRefresh, now)
		a.see(u, ip, deferred, g.cfg.MaxIPsPerUser)
	})
	if err != nil {
		if users.IsNotFound(err) {
			return nil, users.Errorf(users.CodeUnauthorized, "Invalid user token.")
		}
		return nil, unavailable(err)
	}
	if a.refused != nil {
		return nil, a.refused
	}
	if a.due {
		u, err := g.refresh(ctx, token, now)
		if err != nil {
			return nil, err
		}
		a.see(u, ip, deferred, g.cfg.MaxIPsPerUser)
		a.p.read = chargeMark{} // see below
	}
	switch {
	case a.knownIP:
	case deferred && a.unjudged:
		// A new address that needs no judgement under the IP limit (its
		// network takes a place already, or there is no limit): recorded
		// with the next flush, not by a write of the whole record (an
		// IPv6 client may bring one every request, and the rate limit is
		// asked only later).
		if err := g.store.(users.IPRecorder).RecordIP(ctx, token, ip, g.cfg.MaxIPsPerUser); err != nil {
			if users.IsNotFound(err) {
				return nil, users.Errorf(users.CodeUnauthorized, "Invalid user token.")
			}
			return nil, unavailable(err)
		}
	default:
		u, err := g.admitIP(ctx, token, ip, now)
		if err != nil {
			return nil, err
		}
		a.see(u, ip, deferred, g.cfg.MaxIPsPerUser)
		// The copy a write returns is the database's, without this
		// instance's usage not yet written: it may not stand for a
		// Lookup at the quota check.
		a.p.read = chargeMark{}
	}
	a.p.Exempt = a.p.quota.typ == users.Special
	return &a.p, nil
}

// authentication is a principal in the making, with what the read of its
// user found: one allocation for both, which the store's read fills in.
type authentication struct {
	p       Principal
	refused error // the user may not be served (usable)
	due     bool  // a quota refresh is due
	knownIP bool  // the address is recorded
	// unjudged: a new address needs no judgement under the IP limit (its
	// network is recorded, or no limit applies); asked only of a store
	// that records such addresses with its next flush (users.IPRecorder).
	unjudged bool
}

// see reads what authentication needs of u, a record it may not keep:
// the address's standing and the user's quota.
func (a *authentication) see(u *users.User, ip string, deferred bool, maxIPs int64) {
	a.knownIP = u.HasIP(ip)
	a.unjudged = !a.knownIP && deferred && (u.IPUnlimited(maxIPs) || u.HasIPGroup(ip))
	a.p.quota = quotaOf(u)
}

// refresh applies a due quota refresh once, atomically: another instance
// may have done it meanwhile, which the re-check inside sees.
func (g *Gatekeeper) refresh(ctx context.Context, token string, now time.Time) (*users.User, error) {
	u, err := g.store.Modify(ctx, token, false, func(u *users.User, _ bool) error {
		if !users.RefreshDue(u, g.cfg.QuotaRefresh, now) {
			return users.ErrNoWrite
		}
		users.RefreshQuota(u, g.cfg.TokenQuota, now)
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return u, nil
}

// admitIP records a new client IP under the IP limit. It is written at once
// (not batched) so that the limit holds across instances.
func (g *Gatekeeper) admitIP(ctx context.Context, token, ip string, now time.Time) (*users.User, error) {
	var verdict users.IPVerdict
	u, err := g.store.Modify(ctx, token, false, func(u *users.User, _ bool) error {
		verdict = users.AdmitIP(u, ip, g.cfg.MaxIPsPerUser, g.cfg.MaxIPsAutoBan, now)
		if verdict == users.IPKnown || verdict == users.IPRefused {
			return users.ErrNoWrite
		}
		return nil
	})
	if err != nil {
		if users.IsNotFound(err) {
			return nil, users.Errorf(users.CodeUnauthorized, "Invalid user token.")
		}
		return nil, unavailable(err)
	}
	switch verdict {
	case users.IPRefused:
		return nil, users.Errorf(users.CodeForbidden, "IP address limit exceeded for this token.")
	case users.IPBanned:
		return nil, users.Errorf(users.CodeForbidden, "Your token has been disabled: %s", users.IPLimitReason)
	}
	return u, nil
}

func unavailable(err error) error {
	if users.ErrorCode(err) == users.CodeUnavailable {
		return err
	}
	return &users.Error{Code: users.CodeUnavailable, Message: "The user database is unavailable; try again shortly.", Err: err}
}

// Charge records a served request's tokens against the user, if any.
// Its event (EVENT_LOGGING) counts them all as output; ChargeRequest
// tells input from output.
func (g *Gatekeeper) Charge(ctx context.Context, p *Principal, family string, tokens int64) error {
	return g.ChargeRequest(ctx, p, Charged{Family: family, Output: tokens, Status: 200})
}

// Charged describes a served request: what it is charged, and what its
// event records.
type Charged struct {
	Family        string
	Model         string
	Input, Output int64
	Status        int // the status the client was answered with
}

// ChargeRequest records a served request's tokens against the user, if
// any, and (EVENT_LOGGING) its event. It takes as long as the store's
// bounded calls and persistTries flushes take; ctx's deadline, if any,
// stops the tries sooner.
func (g *Gatekeeper) ChargeRequest(ctx context.Context, p *Principal, c Charged) error {
	if p.Token == "" {
		return nil
	}
	tokens := c.Input + c.Output
	now := g.now()
	bucket := g.charges.start(p.Token)
	err := g.store.RecordUsage(ctx, p.Token, users.Usage{Family: c.Family, Tokens: tokens, At: now})
	if err == nil {
		// The charge is in this instance's view of the user now: checks
		// under way that read the user before it count it from the ledger.
		g.ledger.settle(p.Token, c.Family, tokens)
	}
	g.charges.finish(bucket)
	if err != nil {
		return err
	}
	if g.events != nil {
		go g.recordEvent(p.Token, users.Event{At: now.UnixMilli(), Family: c.Family, Model: users.ClampModel(c.Model),
			Input: c.Input, Output: c.Output, IPTail: users.IPTail(p.IP), Status: c.Status})
	}
	return g.persist(ctx)
}

// ErrChargeKept means a charge could not be written to the database within
// its request: it is kept by the store and written by a later flush (at the
// latest at SIGTERM), never lost.
var ErrChargeKept = errors.New("usage kept for a later flush")

// persistTries bounds the flushes one charge tries before leaving its
// usage to a later flush.
const persistTries = 3

// persist writes the instance's pending usage before the answer's end
// reaches the client: Cloud Functions may give an idle instance no CPU,
// so usage left to a background flush could wait for the next request
// while other instances trust an old count. Concurrent charges share one
// flush (a shared store writes each user's pending usage in one
// transaction); the memory store has nothing to write. Each flush runs
// with the store's own call deadlines, not the request's (a write cut off
// by the request's deadline would not tell whether the database applied
// it: the charge would wait for a later flush to settle it); the
// request's deadline only stops further tries.
func (g *Gatekeeper) persist(ctx context.Context) error {
	flushCtx := ctx
	if ctx.Done() != nil {
		flushCtx = context.WithoutCancel(ctx)
	}
	var err error
	for try := 1; try <= persistTries; try++ {
		if err = g.store.Flush(flushCtx); err == nil {
			return nil
		}
		if try == persistTries || users.ErrorCode(err) != users.CodeUnavailable {
			// Only an unavailable database may answer another try; a
			// write refused for good (some user's record) would refuse
			// again, and make every charge of the instance wait for it.
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrChargeKept, err)
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: %w", ErrChargeKept, err)
}
