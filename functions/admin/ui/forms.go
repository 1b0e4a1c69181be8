package ui

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// Forms are turned into the same users.Patch the REST API parses, held to
// the same value rules by Patch.Check, so the UI and the API validate
// alike (types, lengths, family names) and report the same issue paths.

// quotaInput is one family's row of a form's quota table.
type quotaInput struct {
	Family  string
	Used    int64
	Limit   string
	Refresh string
	More    bool   // folded under "more families"
	Form    string // the id of the form the inputs belong to
	Edit    bool   // the edit form: used tokens and refresh too
}

// Temporary users' duration units.
func durationUnits() []string { return []string{"minutes", "hours", "days"} }

// maxTemporary bounds a temporary user's life.
const maxTemporary = 366 * 24 * time.Hour

type newPage struct {
	*layout
	Types       []string
	Units       []string
	Type        string
	Nickname    string
	AdminNote   string
	MaxIPs      string
	Duration    string
	Unit        string
	Refreshable bool
	Quotas      []quotaInput
}

func userTypes() []string {
	return []string{string(users.Normal), string(users.Special), string(users.Temporary)}
}

func (h *handler) newUserForm(w http.ResponseWriter, r *http.Request, s session) {
	p := &newPage{layout: h.layout(r, &s, "New user", "new"), Types: userTypes(), Units: durationUnits(),
		Type: string(users.Normal), Duration: "24", Unit: "hours"}
	for _, f := range models.Families {
		q := quotaInput{Family: f.Name, More: h.folded(f.Name), Form: "new-form"}
		if d := h.cfg.TokenQuota[f.Name]; d > 0 {
			q.Limit = strconv.FormatInt(d, 10)
		}
		p.Quotas = append(p.Quotas, q)
	}
	h.render(w, r, http.StatusOK, "new", p)
}

func (h *handler) createUser(w http.ResponseWriter, r *http.Request, s session) {
	f := r.PostForm
	p := &newPage{layout: h.layout(r, &s, "New user", "new"), Types: userTypes(), Units: durationUnits(),
		Type: f.Get("type"), Nickname: strings.TrimSpace(f.Get("nickname")), AdminNote: textarea(f.Get("adminNote")),
		MaxIPs: strings.TrimSpace(f.Get("maxIps")), Duration: strings.TrimSpace(f.Get("duration")), Unit: f.Get("unit"),
		Refreshable: f.Get("refreshable") != ""}
	for _, fam := range models.Families {
		p.Quotas = append(p.Quotas, quotaInput{Family: fam.Name, Limit: f.Get("limit:" + fam.Name), More: h.folded(fam.Name), Form: "new-form"})
	}
	fail := func(status int, err error) {
		p.SetError(err)
		h.render(w, r, status, "new", p)
	}

	var issues []users.Issue
	patch := users.Patch{Type: set(users.Type(p.Type))}
	if p.Nickname != "" {
		patch.Nickname = set(p.Nickname)
	}
	if p.AdminNote != "" {
		patch.AdminNote = set(p.AdminNote)
	}
	if p.MaxIPs != "" {
		if n, ok := parseCount(p.MaxIPs); ok {
			patch.MaxIPs = set(n)
		} else {
			issues = append(issues, users.Issue{Path: "maxIps", Message: "must be a whole number, 0 or more"})
		}
	}
	limits, qIssues := parseQuotas(f, "limit:", "tokenLimits")
	issues = append(issues, qIssues...)
	positive := map[string]int64{}
	for fam, n := range limits {
		if n > 0 {
			positive[fam] = n
		}
	}
	if p.Type == string(users.Temporary) {
		d, err := parseDuration(p.Duration, p.Unit)
		if err != "" {
			issues = append(issues, users.Issue{Path: "duration", Message: err})
		}
		patch.ExpiresAt = set(h.now().Add(d).UnixMilli())
		patch.TokenLimits = set(positive)
		if p.Refreshable {
			patch.Meta = set(map[string]any{"refreshable": true})
		}
	} else if !maps.Equal(positive, positiveOnly(h.cfg.TokenQuota)) {
		patch.TokenLimits = set(positive)
	}
	if len(issues) > 0 {
		fail(http.StatusBadRequest, invalidIssues(issues))
		return
	}
	u, ok := h.save(w, r, patch, fail, func(ctx context.Context) (*users.User, error) { return h.svc.Create(ctx, patch) })
	if !ok {
		return
	}
	redirect(w, r, userPath(u.Token)+"?done=created")
}

type editPage struct {
	*layout
	Types       []string
	Token       string
	Path        string
	Type        string
	Nickname    string
	AdminNote   string
	MaxIPs      string
	Expires     string
	Refreshable bool
	Quotas      []quotaInput
	DefaultIPs  int64
}

// expiresLayout is the datetime-local format the edit form uses (UTC).
const expiresLayout = "2006-01-02T15:04"

func (h *handler) editUserForm(w http.ResponseWriter, r *http.Request, s session) {
	u, ok := h.loadUser(w, r)
	if !ok {
		return
	}
	p := h.editPage(r, s, u)
	p.Type, p.Nickname, p.AdminNote = string(u.Type), u.Nickname, u.AdminNote
	if u.MaxIPs != nil {
		p.MaxIPs = strconv.FormatInt(*u.MaxIPs, 10)
	}
	if u.ExpiresAt != 0 {
		p.Expires = time.UnixMilli(u.ExpiresAt).UTC().Format(expiresLayout)
	}
	p.Refreshable = u.Refreshable()
	for i, q := range p.Quotas {
		if v, ok := u.TokenLimits[q.Family]; ok {
			p.Quotas[i].Limit = strconv.FormatInt(v, 10)
		}
		if v, ok := u.TokenRefresh[q.Family]; ok {
			p.Quotas[i].Refresh = strconv.FormatInt(v, 10)
		}
	}
	h.render(w, r, http.StatusOK, "edit", p)
}

// folded reports whether a family's quota row starts folded under "more
// families": all but those with a default quota and each provider's
// default family, so the form stays short.
func (h *handler) folded(family string) bool {
	if h.cfg.TokenQuota[family] > 0 {
		return false
	}
	for _, f := range models.DefaultFamily {
		if f == family {
			return false
		}
	}
	return true
}

// editPage has a quota row for every family the user has numbers for, and
// for every known family (most folded away).
func (h *handler) editPage(r *http.Request, s session, u *users.User) *editPage {
	p := &editPage{layout: h.layout(r, &s, "Edit "+shortToken(u.Token), "users"), Types: userTypes(),
		Token: u.Token, Path: userPath(u.Token), DefaultIPs: h.cfg.MaxIPsPerUser}
	own := familiesOf(u.TokenCounts, u.TokenLimits, u.TokenRefresh)
	listed := map[string]bool{}
	for _, f := range own {
		listed[f] = true
		p.Quotas = append(p.Quotas, quotaInput{Family: f, Used: u.TokenCounts[f], Form: "edit-form", Edit: true})
	}
	for _, f := range models.Families {
		if !listed[f.Name] {
			p.Quotas = append(p.Quotas, quotaInput{Family: f.Name, More: h.folded(f.Name), Form: "edit-form", Edit: true})
		}
	}
	return p
}

func (h *handler) editUser(w http.ResponseWriter, r *http.Request, s session) {
	u, ok := h.loadUser(w, r)
	if !ok {
		return
	}
	f := r.PostForm
	p := h.editPage(r, s, u)
	p.Type, p.Nickname, p.AdminNote = f.Get("type"), strings.TrimSpace(f.Get("nickname")), textarea(f.Get("adminNote"))
	p.MaxIPs, p.Expires, p.Refreshable = strings.TrimSpace(f.Get("maxIps")), strings.TrimSpace(f.Get("expiresAt")), f.Get("refreshable") != ""
	for i, q := range p.Quotas {
		p.Quotas[i].Limit, p.Quotas[i].Refresh = f.Get("limit:"+q.Family), f.Get("refresh:"+q.Family)
	}
	fail := func(status int, err error) {
		p.SetError(err)
		h.render(w, r, status, "edit", p)
	}

	patch, changed, issues := editPatch(u, p, f)
	if len(issues) > 0 {
		fail(http.StatusBadRequest, invalidIssues(issues))
		return
	}
	if !changed {
		redirect(w, r, userPath(u.Token)+"?done=unchanged")
		return
	}
	if _, ok := h.save(w, r, patch, fail, func(ctx context.Context) (*users.User, error) { return h.svc.Update(ctx, u.Token, patch) }); !ok {
		return
	}
	redirect(w, r, userPath(u.Token)+"?done=saved")
}

// save holds patch to the API's value rules, then runs call with it; a
// failure is shown on the form through fail.
func (h *handler) save(w http.ResponseWriter, r *http.Request, patch users.Patch, fail func(int, error), call func(context.Context) (*users.User, error)) (*users.User, bool) {
	if err := patch.Check(); err != nil {
		fail(http.StatusBadRequest, err)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), web.OneUserTimeout)
	defer cancel()
	u, err := call(ctx)
	if err != nil {
		h.formFailed(w, r, err, fail)
		return nil, false
	}
	return u, true
}

// editPatch is the partial user holding only what the form changed, so
// saving one field leaves the others exactly as stored (an imported
// "turbo": 0 stays); changed is false when the form changed nothing.
func editPatch(u *users.User, p *editPage, f url.Values) (patch users.Patch, changed bool, issues []users.Issue) {
	if p.Type != string(u.Type) {
		patch.Type, changed = set(users.Type(p.Type)), true
	}
	setText := func(field *users.Opt[string], v, cur string) {
		switch {
		case v == cur:
		case v == "":
			*field, changed = users.Opt[string]{Set: true, Null: true}, true
		default:
			*field, changed = set(v), true
		}
	}
	setText(&patch.Nickname, p.Nickname, u.Nickname)
	setText(&patch.AdminNote, p.AdminNote, u.AdminNote)
	switch n, ok := parseCount(p.MaxIPs); {
	case p.MaxIPs == "":
		if u.MaxIPs != nil {
			patch.MaxIPs, changed = users.Opt[int64]{Set: true, Null: true}, true
		}
	case !ok:
		issues = append(issues, users.Issue{Path: "maxIps", Message: "must be a whole number, 0 or more (empty: the default)"})
	case u.MaxIPs == nil || *u.MaxIPs != n:
		patch.MaxIPs, changed = set(n), true
	}
	if p.Type == string(users.Temporary) {
		switch {
		case p.Expires == "":
			if u.ExpiresAt != 0 {
				patch.ExpiresAt, changed = users.Opt[int64]{Set: true, Null: true}, true
			}
		default:
			t, err := parseExpires(p.Expires)
			if err != nil {
				issues = append(issues, users.Issue{Path: "expiresAt", Message: "must be a date and time (UTC)"})
				break
			}
			// The form shows minutes: unchanged minutes keep the stored ms.
			if cur := time.UnixMilli(u.ExpiresAt).UTC().Truncate(time.Minute); u.ExpiresAt == 0 || !t.Equal(cur) {
				patch.ExpiresAt, changed = set(t.UnixMilli()), true
			}
		}
		if p.Refreshable != u.Refreshable() {
			meta := maps.Clone(u.Meta)
			if meta == nil {
				meta = map[string]any{}
			}
			if p.Refreshable {
				meta["refreshable"] = true
			} else {
				delete(meta, "refreshable")
			}
			patch.Meta, changed = set(meta), true
		}
	}
	limits, qi := parseQuotas(f, "limit:", "tokenLimits")
	issues = append(issues, qi...)
	if next, ok := mergeQuotas(u.TokenLimits, limits); ok {
		patch.TokenLimits, changed = set(next), true
	}
	refresh, qi := parseQuotas(f, "refresh:", "tokenRefresh")
	issues = append(issues, qi...)
	if next, ok := mergeQuotas(u.TokenRefresh, refresh); ok {
		patch.TokenRefresh, changed = set(next), true
	}
	return patch, changed, issues
}

// set is a patch field given a value.
func set[T any](v T) users.Opt[T] { return users.Opt[T]{Set: true, Value: v} }

// mergeQuotas applies the posted per-family numbers to cur; a family left
// at its value (a missing one reads as 0) is not touched.
func mergeQuotas(cur, posted map[string]int64) (map[string]int64, bool) {
	next := maps.Clone(cur)
	changed := false
	for f, v := range posted {
		if v == cur[f] {
			continue
		}
		if next == nil {
			next = map[string]int64{}
		}
		next[f] = v
		changed = true
	}
	return next, changed
}

// parseQuotas reads the form fields prefix+family; blank is 0.
func parseQuotas(f url.Values, prefix, path string) (map[string]int64, []users.Issue) {
	out := map[string]int64{}
	var issues []users.Issue
	for k, vs := range f {
		fam, ok := strings.CutPrefix(k, prefix)
		if !ok || len(vs) == 0 {
			continue
		}
		if !users.ValidFamily(fam) {
			issues = append(issues, users.Issue{Path: path + "." + fam, Message: "is not a valid model family name"})
			continue
		}
		raw := strings.TrimSpace(vs[0])
		if raw == "" {
			out[fam] = 0
			continue
		}
		n, ok := parseCount(raw)
		if !ok {
			issues = append(issues, users.Issue{Path: path + "." + fam, Message: "must be a whole number, 0 or more"})
			continue
		}
		out[fam] = n
	}
	sortIssues(issues)
	return out, issues
}

// parseCount reads a non-negative whole number; "1,000,000" and
// "1 000 000" are accepted, as people write them.
func parseCount(s string) (int64, bool) {
	s = strings.NewReplacer(",", "", " ", "", "_", "").Replace(strings.TrimSpace(s))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func parseDuration(value, unit string) (time.Duration, string) {
	n, ok := parseCount(value)
	if !ok || n == 0 {
		return 0, "must be a whole number above 0"
	}
	per := map[string]time.Duration{"minutes": time.Minute, "hours": time.Hour, "days": 24 * time.Hour}[unit]
	if per == 0 {
		return 0, "unit must be minutes, hours or days"
	}
	if n > int64(maxTemporary/per) {
		return 0, "must be at most a year"
	}
	return time.Duration(n) * per, ""
}

func parseExpires(s string) (time.Time, error) {
	for _, layout := range []string{expiresLayout, "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC().Truncate(time.Minute), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date %q", s)
}

// textarea normalises a textarea's line ends, which browsers send as CRLF,
// so an untouched note does not count as changed.
func textarea(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
}

func positiveOnly(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

func invalidIssues(issues []users.Issue) *users.Error {
	if len(issues) == 1 {
		return invalid(issues[0].Path, issues[0].Message)
	}
	return &users.Error{Code: users.CodeInvalid, Message: fmt.Sprintf("The form has %d problems.", len(issues)), Issues: issues}
}

// sortIssues orders issues by path: form fields come in no fixed order.
func sortIssues(issues []users.Issue) {
	slices.SortFunc(issues, func(a, b users.Issue) int { return strings.Compare(a.Path, b.Path) })
}
