package captcha

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/pow"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// markMargin keeps a spent mark past its challenge's expiry.
const markMargin = time.Minute

// Refreshes counted in meta, beside the original's meta.refreshable.
const metaRefreshes = "powRefreshes"

type challengeRequest struct {
	Action string `json:"action"` // "new" or "refresh"
	Token  string `json:"token,omitempty"`
}

// challengeResponse gives the browser the signed challenge to send back
// and its fields to solve it with.
type challengeResponse struct {
	Challenge string        `json:"challenge"`
	Params    pow.Challenge `json:"params"`
	Work      int64         `json:"work"`
}

func (h *handler) serveChallenge(w http.ResponseWriter, r *http.Request) {
	logging.FromContext(r.Context()).SetRoute("POST " + Path + "/challenge")
	var req challengeRequest
	if err := readJSON(r, &req); err != nil {
		fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ip := h.clientIP(r)
	now := h.now()
	work := h.cfg.Work
	switch req.Action {
	case "new":
		if req.Token != "" {
			fail(w, r, http.StatusBadRequest, `"token" goes with "action": "refresh" only.`)
			return
		}
	case "refresh":
		// Checked now so that nobody works for a refresh that will be
		// refused, and again when the solution comes back.
		logging.FromContext(r.Context()).SetToken(req.Token)
		// Each ask reads the store; a known token never locks the
		// address out, so this bounds how often one client asks.
		if secs, limited := web.PageReadLimited(w, h.reads, ip, now); limited {
			fail(w, r, http.StatusTooManyRequests, "Too many refreshes asked from this address; try again in "+strconv.Itoa(secs)+" s.")
			return
		}
		// Unknown tokens are counted per address, as on the lookup page,
		// so that this question cannot be asked of the store unbounded;
		// each ask counts from the moment it arrives until its token is
		// found, so asks sent at once cannot together pass the limit.
		attempt, secs, locked := web.BeginAttempt(w, h.unknown, ip, now)
		if locked {
			fail(w, r, http.StatusTooManyRequests, "Too many unknown tokens from this address; try again in "+strconv.Itoa((secs+59)/60)+" min.")
			return
		}
		status, msg := h.checkRefreshable(r.Context(), req.Token, ip, now)
		if status != http.StatusNotFound {
			attempt.Cancel()
		}
		if status != 0 {
			fail(w, r, status, msg)
			return
		}
		work = max(work/2, 1) // the original's half-price refresh
	default:
		fail(w, r, http.StatusBadRequest, `"action" must be "new" or "refresh".`)
		return
	}
	c, err := pow.New(h.params, work, h.cfg.ChallengeTimeout, now, ip, req.Token)
	if err == nil {
		var enc string
		if enc, err = h.signer.Encode(c); err == nil {
			writeJSON(w, http.StatusOK, challengeResponse{Challenge: enc, Params: c, Work: work})
			return
		}
	}
	h.log.Error().Err(err).Msg("captcha: making a challenge")
	fail(w, r, http.StatusInternalServerError, "Internal error.")
}

type verifyRequest struct {
	Challenge string `json:"challenge"`
	Solution  string `json:"solution"`
}

// verifyResponse is the issued or refreshed token.
type verifyResponse struct {
	Token     string           `json:"token"`
	ExpiresAt int64            `json:"expiresAt"`
	MaxIPs    int64            `json:"maxIps"`
	Quotas    map[string]int64 `json:"tokenLimits"`
	Refreshed bool             `json:"refreshed"`
}

func (h *handler) serveVerify(w http.ResponseWriter, r *http.Request) {
	rec := logging.FromContext(r.Context())
	rec.SetRoute("POST " + Path + "/verify")
	ip := h.clientIP(r)
	now := h.now()
	// The attempt counts as a failure until it proves otherwise, so that
	// solutions sent at once from one address cannot together cost more
	// hashes than the lockout allows.
	attempt, locked, wait := h.lockout.Begin(ip, now)
	if locked {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		fail(w, r, http.StatusTooManyRequests, "Too many failed solutions from this address; try again later.")
		return
	}
	failed := false // a wrong solution or a replay: each cost a hash
	defer func() {
		if !failed {
			attempt.Cancel()
		}
	}()
	var req verifyRequest
	if err := readJSON(r, &req); err != nil {
		fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	c, err := h.signer.Parse(req.Challenge)
	switch {
	case errors.Is(err, pow.ErrSignature):
		fail(w, r, http.StatusBadRequest, "The challenge was not issued by this proxy, or was changed; request a new one.")
		return
	case err != nil:
		fail(w, r, http.StatusBadRequest, "The challenge is malformed; request a new one.")
		return
	}
	if status, msg, err := h.checkSolution(r.Context(), c, req.Solution, ip, now); status != 0 {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "2")
		}
		failed = errors.Is(err, pow.ErrSolution)
		fail(w, r, status, msg)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	// Spent before anything is issued: of two instances given the same
	// solution, only the one that creates the mark goes on.
	// The mark outlives the challenge by a margin for instances' clock skew:
	// none may accept the challenge once its mark can be pruned.
	fresh, err := h.marks.Mark(ctx, "pow-"+c.ID(), time.UnixMilli(c.Expires).Add(markMargin))
	if err != nil {
		h.storeFailed(w, r, err)
		return
	}
	if !fresh {
		// Each replay cost a hash: it counts as a failure, like a wrong solution.
		failed = true
		fail(w, r, http.StatusConflict, "This challenge was already used; request a new one.")
		return
	}
	if status, msg, err := h.claimIssuance(ctx, ip, c.Refresh == "", now); err != nil {
		h.storeFailed(w, r, err)
		return
	} else if status != 0 {
		fail(w, r, status, msg)
		return
	}
	var u *users.User
	if c.Refresh != "" {
		rec.SetToken(c.Refresh)
		u, err = h.refresh(ctx, c.Refresh, ip, now)
	} else {
		u, err = h.issue(ctx, ip, now)
	}
	if err != nil {
		h.storeFailed(w, r, err)
		return
	}
	rec.SetToken(u.Token)
	h.prune(ctx, now)
	writeJSON(w, http.StatusOK, verifyResponse{
		Token: u.Token, ExpiresAt: u.ExpiresAt, MaxIPs: u.MaxIPsOr(0),
		Quotas: u.TokenLimits, Refreshed: c.Refresh != "",
	})
}

// checkSolution checks the challenge against this client and clock, then
// hashes the solution, no more than verifySlots at once, waiting at most
// slotWait for a turn. err is Verify's.
func (h *handler) checkSolution(ctx context.Context, c pow.Challenge, solution, ip string, now time.Time) (status int, msg string, err error) {
	ctx, cancel := context.WithTimeout(ctx, h.slotWait)
	defer cancel()
	select {
	case h.verify <- struct{}{}:
		defer func() { <-h.verify }()
	case <-ctx.Done():
		return http.StatusServiceUnavailable, "The server is busy; try again shortly.", nil
	}
	switch err = c.Verify(solution, ip, now); {
	case err == nil:
		return 0, "", nil
	case errors.Is(err, pow.ErrExpired):
		return http.StatusBadRequest, "The challenge expired before it was solved; request a new one.", err
	case errors.Is(err, pow.ErrWrongIP):
		return http.StatusBadRequest, "The solution must come from the address the challenge was issued to.", err
	default:
		h.log.Warn().Str("ip", ip).Msg("captcha: a solution failed verification")
		return http.StatusBadRequest, "The solution does not solve the challenge.", err
	}
}

// claimIssuance takes this address's slots, shared by every instance: one
// verification a minute (the original's lockout), and for new tokens at
// most MaxTokensPerIP per token lifetime.
func (h *handler) claimIssuance(ctx context.Context, ip string, newToken bool, now time.Time) (int, string, error) {
	id := h.ipID(ip)
	minute := now.Truncate(time.Minute)
	ok, err := h.marks.Mark(ctx, fmt.Sprintf("ipm-%s-%d", id, minute.Unix()/60), minute.Add(time.Minute))
	if err != nil {
		return 0, "", err
	}
	if !ok {
		return http.StatusTooManyRequests, "One token a minute per address; wait a minute and request a new challenge.", nil
	}
	if !newToken || h.cfg.MaxTokensPerIP <= 0 {
		return 0, "", nil
	}
	span := max(h.cfg.TokenLifetime.Milliseconds(), 1) // a tiny POW_TOKEN_HOURS must not divide by 0
	window := now.UnixMilli() / span
	end := time.UnixMilli((window + 1) * span)
	for k := range h.cfg.MaxTokensPerIP {
		ok, err := h.marks.Mark(ctx, fmt.Sprintf("ipt-%s-%d-%d", id, window, k), end)
		if err != nil || ok {
			return 0, "", err
		}
	}
	return http.StatusTooManyRequests, fmt.Sprintf("This address has had its %d tokens for now; try again after %s.",
		h.cfg.MaxTokensPerIP, end.UTC().Format(time.RFC3339)), nil
}

// ipID names an address in marks without storing it. An IPv6 address is
// named by its /64, as the lockouts count it: one client holds it whole
// and may take a new address in it for each token.
func (h *handler) ipID(ip string) string {
	m := hmac.New(sha256.New, h.ipKey)
	m.Write([]byte(netutil.ClientKey(ip)))
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// issue creates the temporary user, an ordinary one: quotas from
// TOKEN_QUOTA_*, expiry enforced at authentication, refreshable.
func (h *handler) issue(ctx context.Context, ip string, now time.Time) (*users.User, error) {
	p := users.Patch{
		Type:      users.Opt[users.Type]{Set: true, Value: users.Temporary},
		ExpiresAt: users.Opt[int64]{Set: true, Value: now.Add(h.cfg.TokenLifetime).UnixMilli()},
		IP:        users.Opt[[]string]{Set: true, Value: []string{ip}},
		MaxIPs:    users.Opt[int64]{Set: true, Value: h.cfg.TokenMaxIPs},
		Meta:      users.Opt[map[string]any]{Set: true, Value: map[string]any{"refreshable": true}},
	}
	u, err := h.svc.Create(ctx, p)
	if err == nil {
		h.log.Info().Str("token", logging.TokenTail(u.Token)).Msg("captcha: proof-of-work token issued")
	}
	return u, err
}

// errRefusal carries a refusal out of a store transaction.
type errRefusal struct {
	status int
	msg    string
}

func (e *errRefusal) Error() string { return e.msg }

// refreshRule says why u may not be refreshed from ip at now (0 if it may);
// it admits ip when within the token's IP limit.
func (h *handler) refreshRule(u *users.User, ip string, now time.Time) (int, string) {
	expiredAt := time.UnixMilli(u.ExpiresAt)
	switch {
	case u.Type != users.Temporary || !u.Refreshable():
		return http.StatusForbidden, "This token cannot be refreshed; request a new one."
	case u.Disabled() && u.DisabledReason != users.ExpiredReason:
		return http.StatusForbidden, "This token is disabled; request a new one."
	case u.ExpiresAt != 0 && now.After(expiredAt.Add(h.cfg.RefreshWindow)):
		return http.StatusForbidden, "This token expired too long ago to be refreshed; request a new one."
	case h.cfg.MaxRefreshes > 0 && refreshes(u) >= h.cfg.MaxRefreshes:
		return http.StatusForbidden, fmt.Sprintf("This token has been refreshed %d times, the most allowed; request a new one.", h.cfg.MaxRefreshes)
	}
	// The limit is the one authentication applies: the token's maxIps,
	// else MAX_IPS_PER_USER.
	if users.AdmitIP(u, ip, h.defaultMaxIPs, false, now) == users.IPRefused {
		return http.StatusForbidden, "This token is in use from too many addresses to be refreshed from this one."
	}
	return 0, ""
}

func refreshes(u *users.User) int {
	switch n := u.Meta[metaRefreshes].(type) {
	case float64:
		return int(n)
	case int:
		return n
	case int64:
		return int(n)
	}
	return 0
}

// checkRefreshable reads the token and applies refreshRule without writing.
func (h *handler) checkRefreshable(ctx context.Context, token, ip string, now time.Time) (int, string) {
	if !users.ValidToken(token) {
		return http.StatusBadRequest, "Enter the token to refresh."
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	u, err := h.store.Get(ctx, token)
	if users.IsNotFound(err) {
		return http.StatusNotFound, "No such token; request a new one."
	}
	if err != nil {
		e := web.AsError(err)
		return web.Status(e.Code), e.Message
	}
	return h.refreshRule(u, ip, now)
}

// refresh extends a temporary token by TokenLifetime from now, reviving
// one the expiry sweep disabled.
func (h *handler) refresh(ctx context.Context, token, ip string, now time.Time) (*users.User, error) {
	u, err := h.store.Modify(ctx, token, false, func(u *users.User, _ bool) error {
		if status, msg := h.refreshRule(u, ip, now); status != 0 {
			return &errRefusal{status, msg}
		}
		if u.Disabled() {
			u.Reactivate()
		}
		u.ExpiresAt = now.Add(h.cfg.TokenLifetime).UnixMilli()
		if u.Meta == nil {
			u.Meta = map[string]any{}
		}
		u.Meta[metaRefreshes] = refreshes(u) + 1
		return nil
	})
	if err == nil {
		h.log.Info().Str("token", logging.TokenTail(token)).Msg("captcha: proof-of-work token refreshed")
	}
	return u, err
}

// storeFailed answers an error of the store or a refusal found inside a
// store transaction.
func (h *handler) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ref *errRefusal
	if errors.As(err, &ref) {
		fail(w, r, ref.status, ref.msg)
		return
	}
	if users.IsNotFound(err) {
		fail(w, r, http.StatusNotFound, "No such token; request a new one.")
		return
	}
	e := web.AsError(err)
	if e.Code == users.CodeUnavailable {
		w.Header().Set("Retry-After", "2")
	}
	h.log.Warn().Err(err).Msg("captcha: store")
	fail(w, r, web.Status(e.Code), e.Message)
}

// prune removes a batch of expired marks; issuance is rare enough to pay
// for it, and an idle instance has nothing to sweep with.
func (h *handler) prune(ctx context.Context, now time.Time) {
	if _, err := h.marks.PruneMarks(ctx, now, pruneBatch); err != nil {
		h.log.Warn().Err(err).Msg("captcha: pruning expired marks")
	}
}
