// Package lookup is the proxy's self-service page, /user/lookup: a user
// enters a token (POSTed, never in a URL) and sees its usage and quotas,
// and may change its nickname.
package lookup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"tollgate.dev/tollgate/shared/web"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// Options are the page's dependencies.
type Options struct {
	Config   *config.Config
	Store    users.Store
	Now      func() time.Time // default time.Now
	ClientIP func(*http.Request) string
	// IPs are the live IP lists, shared with the proxy's gatekeeper: an
	// address in IP_BLACKLIST (or its live additions) is refused here
	// too. Nil: the page reads its own.
	IPs *gatekeeper.LiveIPs
}

// Path is where the page lives, relative to the proxy function's root.
const Path = "/user/lookup"

// Failed lookups (unknown tokens) allowed per client IP within the
// window: plenty for typos, too few to guess tokens.
const (
	failMax    = 10
	failWindow = 10 * time.Minute
)

const (
	maxBody      = 16 << 10
	storeTimeout = 10 * time.Second
	// csrfTTL is how long a shown page's nickname form stays valid.
	csrfTTL = time.Hour
)

//go:embed page.html style.css
var files embed.FS

type handler struct {
	cfg      *config.Config
	now      func() time.Time
	svc      *users.Service
	clientIP func(*http.Request) string
	ips      *gatekeeper.LiveIPs
	lockout  *ratelimit.Lockout
	reads    *ratelimit.Window // store-reading posts per address (web.PageReadsPerMinute)
	sign     *web.Signer
	page     *template.Template
	style    template.CSS
	csp      string
}

// New returns the /user/lookup handler.
func New(o Options) http.Handler {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	h := &handler{
		cfg:      o.Config,
		now:      now,
		svc:      &users.Service{Store: o.Store, Defaults: o.Config.TokenQuota, Now: now},
		clientIP: o.ClientIP,
		ips:      o.IPs,
		lockout:  ratelimit.NewLockout(failMax, failWindow),
		reads:    ratelimit.NewWindow(time.Minute),
		sign:     formSigner(o.Config),
	}
	if h.clientIP == nil {
		h.clientIP = func(r *http.Request) string { return netutil.ClientIP(r, o.Config.TrustedProxies) }
	}
	if h.ips == nil {
		h.ips = gatekeeper.NewLiveIPs(o.Config, o.Store, now)
	}
	css, err := files.ReadFile("style.css")
	if err != nil {
		panic(err) // embedded: cannot be missing
	}
	h.style = template.CSS(css)
	sum := sha256.Sum256(css)
	// The stylesheet is inline (the page owns no other route), allowed by
	// its hash; nothing else may load or run.
	h.csp = "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	h.page = web.Partials(template.Must(template.New("page.html").Funcs(template.FuncMap{
		"num":  web.FormatNum,
		"when": web.FormatTime,
		"at":   formatAt,
	}).ParseFS(files, "page.html")))
	return h
}

// formSigner signs the nickname form's CSRF tokens. Every proxy instance
// must agree, so its key comes from a configured secret; only a proxy with
// none (GATEKEEPER=none and no keys at all) uses a per-instance random key.
func formSigner(c *config.Config) *web.Signer {
	base := c.SigningKey
	for _, k := range []string{c.AdminKey, c.ProxyKey} {
		if base == "" {
			base = k
		}
	}
	if base == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		base = string(b)
	}
	return web.NewSigner([]byte(base), "tollgate-lookup")
}

// view is what the page shows.
type view struct {
	Action  string
	Style   template.CSS
	Banners []string
	Error   string
	Flash   string
	Result  *result
	NoForm  bool // the address is refused: nothing to fill in
}

type result struct {
	Token          string
	Masked         string
	Nickname       string
	Type           string
	Status         string
	DisabledReason string
	Prompts        int64
	Created        int64
	LastUsed       int64
	Expires        int64
	IPs            int // the places of the IP limit taken (an IPv6 /64 takes one)
	IPLimit        string
	IPList         []string // redacted, every address recorded
	NextRefresh    int64    // the next quota refresh (epoch ms); 0: none
	Quotas         []quotaRow
	Costs          bool   // SHOW_TOKEN_COSTS
	TotalCost      string // with Costs
	CSRF           string
	CanRename      bool
	NicknameValue  string
}

type quotaRow struct {
	Family    string
	Used      int64
	Limit     string
	Remaining string
	Refresh   string
	Cost      string // with SHOW_TOKEN_COSTS
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := logging.FromContext(r.Context())
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	web.PageHeaders(hdr, h.csp)
	if h.ips.Blacklisted(r.Context(), h.clientIP(r)) {
		rec.SetRoute(r.Method + " " + Path)
		h.render(w, r, http.StatusForbidden, &view{Error: "Forbidden (by IP_BLACKLIST).", NoForm: true})
		return
	}
	if r.URL.Path != Path && r.URL.Path != Path+"/" {
		rec.SetRoute("lookup unmatched")
		h.render(w, r, http.StatusNotFound, &view{Error: "Page not found."})
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rec.SetRoute("GET " + Path)
		h.render(w, r, http.StatusOK, &view{})
	case http.MethodPost:
		rec.SetRoute("POST " + Path)
		if web.CrossSite(r) {
			rec.SetError("post from another site")
			h.render(w, r, http.StatusForbidden, &view{Error: web.CrossSiteMessage})
			return
		}
		h.post(w, r)
	default:
		rec.SetRoute(r.Method + " " + Path)
		hdr.Set("Allow", "GET, HEAD, POST")
		h.render(w, r, http.StatusMethodNotAllowed, &view{Error: "Use the form on this page."})
	}
}

func (h *handler) post(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		h.render(w, r, http.StatusBadRequest, &view{Error: "The form could not be read."})
		return
	}
	// The lookup counts as a failure from the moment it arrives until its
	// token is found, so lookups sent at once, each waiting on the
	// database, cannot together try more tokens than the lockout allows.
	attempt, secs, locked := web.BeginAttempt(w, h.lockout, h.clientIP(r), h.now())
	if locked {
		h.render(w, r, http.StatusTooManyRequests, &view{Error: "Too many unknown tokens from your address. Try again in " + strconv.Itoa((secs+59)/60) + " min."})
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		attempt.Cancel()
		h.render(w, r, http.StatusBadRequest, &view{Error: "Enter your token."})
		return
	}
	// Known tokens never lock the address out, so this bounds how often
	// one client makes the store read a token it holds.
	if secs, limited := web.PageReadLimited(w, h.reads, h.clientIP(r), h.now()); limited {
		attempt.Cancel()
		logging.FromContext(r.Context()).SetError("too many lookups from the address")
		h.render(w, r, http.StatusTooManyRequests, &view{Error: "Too many lookups from your address. Try again in " + strconv.Itoa(secs) + " s."})
		return
	}
	logging.FromContext(r.Context()).SetToken(token)
	u, err := h.get(r.Context(), token)
	if users.IsNotFound(err) {
		logging.FromContext(r.Context()).SetError("token not found")
		h.render(w, r, http.StatusNotFound, &view{Error: "Token not found."})
		return
	}
	attempt.Cancel() // found, or the database failed: no guess was answered
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	if r.PostFormValue("action") != "nickname" {
		h.render(w, r, http.StatusOK, &view{Result: h.result(u)})
		return
	}
	h.rename(w, r, u)
}

// rename changes the nickname of u, which the form's token named; the
// form's CSRF token must be one this page issued for that same token.
func (h *handler) rename(w http.ResponseWriter, r *http.Request, u *users.User) {
	if !h.checkCSRF(u.Token, r.PostFormValue("csrf")) {
		h.render(w, r, http.StatusForbidden, &view{Error: "This form expired or did not come from this page. Look your token up again.", Result: h.result(u)})
		return
	}
	if u.Disabled() {
		h.render(w, r, http.StatusForbidden, &view{Error: "This token is disabled; its nickname cannot be changed.", Result: h.result(u)})
		return
	}
	if msg := h.renameRefusal(r, u); msg != "" {
		h.render(w, r, http.StatusForbidden, &view{Error: msg, Result: h.result(u)})
		return
	}
	nick := strings.TrimSpace(r.PostFormValue("nickname"))
	p := users.Patch{Nickname: users.Opt[string]{Set: true, Null: nick == "", Value: nick}}
	msg := ""
	if err := p.Check(); err != nil {
		msg = nicknameError(err)
	} else if strings.IndexFunc(nick, unseen) >= 0 {
		msg = "Nickname must be visible text: no control, direction or invisible formatting characters."
	}
	if msg != "" {
		res := h.result(u)
		res.NicknameValue = nick
		h.render(w, r, http.StatusBadRequest, &view{Error: msg, Result: res})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	updated, err := h.svc.Update(ctx, u.Token, p)
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, &view{Flash: "Nickname saved.", Result: h.result(updated)})
}

// unseen reports a character a token holder could use to make a nickname
// pass for another user's in the operator's lists, or to break a line of
// a text export: control characters (line breaks and terminal escapes
// among them) and format characters (direction overrides, zero-width
// spaces and joiners). The operator's own edits are not held to this.
func unseen(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

func nicknameError(err error) string {
	var e *users.Error
	if errors.As(err, &e) && len(e.Issues) > 0 {
		return "Nickname " + e.Issues[0].Message + "."
	}
	return "This nickname cannot be used."
}

func (h *handler) get(ctx context.Context, token string) (*users.User, error) {
	if !users.ValidToken(token) {
		return nil, users.ErrNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return h.svc.Store.Get(ctx, token)
}

// unavailable answers a store failure without its cause; the log line
// gets the cause.
func (h *handler) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	logging.FromContext(r.Context()).SetError(logging.Redact(err.Error()))
	h.render(w, r, http.StatusServiceUnavailable, &view{Error: "The service cannot look tokens up right now. Try again in a moment."})
}

func (h *handler) result(u *users.User) *result {
	cfg := h.cfg
	now := h.now()
	res := &result{
		Token: u.Token, Masked: logging.TokenTail(u.Token), Nickname: u.Nickname, NicknameValue: u.Nickname,
		Type: string(u.Type), DisabledReason: u.DisabledReason,
		Prompts: u.PromptCount, Created: u.CreatedAt, LastUsed: u.LastUsedAt, IPs: u.IPsCounted(),
		CSRF: h.csrf(u.Token), CanRename: !u.Disabled() && cfg.SelfService.AllowNicknameChanges,
		IPList: redactIPs(u.IP), Costs: cfg.SelfService.ShowTokenCosts,
	}
	if cfg.QuotaRefresh != nil && u.Type != users.Temporary {
		res.NextRefresh = cfg.QuotaRefresh.Next(now).UnixMilli()
	}
	total := 0.0
	switch {
	case u.Disabled():
		res.Status = "disabled"
	case u.Expired(now):
		res.Status = "expired"
	default:
		res.Status = "active"
	}
	if u.Type == users.Temporary {
		res.Expires = u.ExpiresAt
	}
	switch limit := u.MaxIPsOr(cfg.MaxIPsPerUser); {
	case u.Type == users.Special || limit <= 0:
		res.IPLimit = "unlimited"
	default:
		res.IPLimit = strconv.FormatInt(limit, 10)
	}
	for _, f := range families(u) {
		row := quotaRow{Family: f, Used: u.TokenCounts[f], Limit: "unlimited", Remaining: "—", Refresh: "—"}
		if l := u.TokenLimits[f]; l > 0 && u.Type != users.Special {
			row.Limit = web.FormatNum(l)
			row.Remaining = web.FormatNum(max(0, l-row.Used))
		}
		if cfg.QuotaRefresh != nil && u.Type != users.Temporary && u.Type != users.Special {
			q := u.TokenRefresh[f]
			if q <= 0 {
				q = cfg.TokenQuota[f]
			}
			if q > 0 {
				row.Refresh = "+" + web.FormatNum(q) + " (" + cfg.QuotaRefreshSpec + ")"
			}
		}
		if res.Costs {
			c := cost(cfg.SelfService.Prices[f], row.Used)
			total += c
			row.Cost = formatUSD(c)
		}
		res.Quotas = append(res.Quotas, row)
	}
	res.TotalCost = formatUSD(total)
	return res
}

// families lists the families u has numbers for: known ones in the model
// table's order, then others alphabetically.
func families(u *users.User) []string {
	seen := map[string]bool{}
	for _, m := range []map[string]int64{u.TokenCounts, u.TokenLimits, u.TokenRefresh} {
		for f := range m {
			seen[f] = true
		}
	}
	var out, rest []string
	for _, f := range models.Families {
		if seen[f.Name] {
			out = append(out, f.Name)
			delete(seen, f.Name)
		}
	}
	for f := range seen {
		rest = append(rest, f)
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// csrf is the nickname form's token: bound to the user's token and valid
// for csrfTTL.
func (h *handler) csrf(token string) string {
	return h.sign.Seal(h.now().Add(csrfTTL), "nickname", token)
}

func (h *handler) checkCSRF(token, got string) bool {
	_, ok := h.sign.Open(got, h.now(), csrfTTL, "nickname", token)
	return ok
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, v *view) {
	v.Action = web.BasePath(r.Context()) + Path
	v.Style = h.style
	if h.cfg.Gatekeeper != config.ModeUserToken {
		v.Banners = []string{"This proxy does not use personal tokens at the moment, so there may be nothing to look up."}
	}
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, v); err != nil {
		logging.FromContext(r.Context()).SetError("rendering lookup: " + err.Error())
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
