package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate.dev/tollgate/shared/web"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/users"
)

// perPageChoices are the page sizes the list offers.
func perPageChoices() []int { return []int{10, 25, 50, 100, 200} }

const defaultPerPage = 50

type column struct {
	Label    string
	Href     string
	AriaSort string // ascending / descending on the sorted column
	Arrow    string
	Num      bool
}

type userRow struct {
	Token    string
	Path     string // the user's page under the mount, for the row's actions
	Short    string
	Href     string
	Nickname string
	Type     string
	Status   string
	Prompts  int64
	Used     int64
	IPs      int // addresses recorded (what the column sorts by)
	Counted  int // places they take of the IP limit
	Created  int64
	LastUsed int64
}

type listPage struct {
	*layout
	Back       string // this page, for the rows' actions to come back to
	Rows       []userRow
	Columns    []column
	Total      int
	Page       int
	Pages      int
	Per        int
	PerChoices []int
	Sort       string
	Q          string
	PrevHref   string
	NextHref   string
}

type listColumn struct {
	label, field string
	num          bool
}

// listColumns are the list's columns and the sort field each orders by;
// numbers and dates sort biggest/newest first on the first click.
func listColumns() []listColumn {
	return []listColumn{
		{"Token", "token", false},
		{"Nickname", "nickname", false},
		{"Type", "type", false},
		{"Prompts", "promptCount", true},
		{"Tokens used", "tokenCounts", true},
		{"IPs", "ip", true},
		{"Created", "createdAt", true},
		{"Last used", "lastUsedAt", true},
		{"Status", "disabledAt", true},
	}
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request, s session) {
	l := h.layout(r, &s, "Users", "users")
	q := r.URL.Query()
	sortSpec := strings.TrimSpace(q.Get("sort"))
	keys, err := users.ParseSort(sortSpec)
	if err != nil {
		l.SetError(err)
		sortSpec = ""
		keys = users.DefaultSort()
	}
	per := defaultPerPage
	if n, err := strconv.Atoi(q.Get("per")); err == nil && slices.Contains(perPageChoices(), n) {
		per = n
	}
	page := 1
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 {
		page = n
	}
	search := strings.TrimSpace(q.Get("q"))

	list, ok := h.listAll(w, r)
	if !ok {
		return
	}
	if search != "" {
		list = filterUsers(list, search)
	}
	users.Sort(list, keys)

	p := &listPage{layout: l, Total: len(list), Per: per, PerChoices: perPageChoices(), Sort: sortSpec, Q: search, Back: r.URL.RequestURI()}
	p.Pages = max(1, (len(list)+per-1)/per)
	p.Page = min(page, p.Pages)
	now := h.now()
	for _, u := range list[(p.Page-1)*per : min(p.Page*per, len(list))] {
		p.Rows = append(p.Rows, userRow{
			Token: u.Token, Short: shortToken(u.Token), Href: l.URL(userPath(u.Token)), Path: userPath(u.Token),
			Nickname: u.Nickname, Type: string(u.Type), Status: status(u, now),
			Prompts: u.PromptCount, Used: sum(u.TokenCounts), IPs: len(u.IP), Counted: u.IPsCounted(),
			Created: u.CreatedAt, LastUsed: u.LastUsedAt,
		})
	}
	pageHref := func(sort string, page int) string {
		v := url.Values{}
		if sort != "" {
			v.Set("sort", sort)
		}
		if per != defaultPerPage {
			v.Set("per", strconv.Itoa(per))
		}
		if search != "" {
			v.Set("q", search)
		}
		if page > 1 {
			v.Set("page", strconv.Itoa(page))
		}
		if len(v) == 0 {
			return l.URL("/manage/users")
		}
		return l.URL("/manage/users") + "?" + v.Encode()
	}
	for _, c := range listColumns() {
		col := column{Label: c.label, Num: c.num}
		next := c.field
		if c.num {
			next = "-" + c.field
		}
		if keys[0].Field == c.field {
			if keys[0].Desc {
				col.AriaSort, col.Arrow, next = "descending", " ▼", c.field
			} else {
				col.AriaSort, col.Arrow, next = "ascending", " ▲", "-"+c.field
			}
		}
		col.Href = pageHref(next, 1)
		p.Columns = append(p.Columns, col)
	}
	if p.Page > 1 {
		p.PrevHref = pageHref(sortSpec, p.Page-1)
	}
	if p.Page < p.Pages {
		p.NextHref = pageHref(sortSpec, p.Page+1)
	}
	h.render(w, r, http.StatusOK, "list", p)
}

func filterUsers(list []*users.User, search string) []*users.User {
	needle := strings.ToLower(search)
	out := list[:0]
	for _, u := range list {
		if strings.Contains(strings.ToLower(u.Token), needle) || strings.Contains(strings.ToLower(u.Nickname), needle) {
			out = append(out, u)
		}
	}
	return out
}

type quotaRow struct {
	Family         string
	Used           int64
	Limit          int64
	Refresh        int64 // the user's own tokenRefresh
	DefaultRefresh int64 // TOKEN_QUOTA_<F>, used when Refresh is 0
	Remaining      int64
}

type userPage struct {
	*layout
	U        *users.User
	Path     string
	Status   string
	IPLimit  int64
	Quotas   []quotaRow
	Meta     string
	JSON     string
	Schedule string
	// Events (EVENT_LOGGING): the latest, and the last 30 days' chart.
	Logging    bool
	Events     []users.Event
	MoreEvents bool
	Chart      *chart
}

func (h *handler) viewUser(w http.ResponseWriter, r *http.Request, s session) {
	u, ok := h.loadUser(w, r)
	if !ok {
		return
	}
	h.showUser(w, r, s, u, http.StatusOK, nil)
}

// showUser renders the user page, with err (of a failed action) if any.
func (h *handler) showUser(w http.ResponseWriter, r *http.Request, s session, u *users.User, code int, err error) {
	title := "User " + shortToken(u.Token)
	if u.Nickname != "" {
		title = "User " + u.Nickname
	}
	p := &userPage{
		layout:   h.layout(r, &s, title, "users"),
		U:        u,
		Path:     userPath(u.Token),
		Status:   status(u, h.now()),
		IPLimit:  u.MaxIPsOr(h.cfg.MaxIPsPerUser),
		Schedule: h.cfg.QuotaRefreshSpec,
	}
	if err != nil {
		p.SetError(err)
	}
	for _, f := range familiesOf(u.TokenCounts, u.TokenLimits, u.TokenRefresh) {
		row := quotaRow{Family: f, Used: u.TokenCounts[f], Limit: u.TokenLimits[f], Refresh: u.TokenRefresh[f], DefaultRefresh: h.cfg.TokenQuota[f]}
		if row.Limit > 0 {
			row.Remaining = max(0, row.Limit-row.Used)
		}
		p.Quotas = append(p.Quotas, row)
	}
	if u.Meta != nil {
		b, _ := json.Marshal(u.Meta)
		p.Meta = string(b)
	}
	b, _ := json.MarshalIndent(u, "", "  ")
	p.JSON = string(b)
	if ev, ok := h.store.(users.Events); ok && h.cfg.EventLogging {
		p.Logging = true
		recent, more, err := h.userEvents(r.Context(), ev, u.Token)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		p.Events = recent[:min(len(recent), latestEvents)]
		p.MoreEvents = more || len(recent) > latestEvents
		p.Chart = buildChart("user-chart", recent, h.now())
	}
	logging.FromContext(r.Context()).SetToken(u.Token)
	h.render(w, r, code, "user", p)
}

// loadUser reads the user named by the path, answering 404 itself.
func (h *handler) loadUser(w http.ResponseWriter, r *http.Request) (*users.User, bool) {
	token := r.PathValue("token")
	logging.FromContext(r.Context()).SetToken(token)
	ctx, cancel := context.WithTimeout(r.Context(), web.OneUserTimeout)
	defer cancel()
	u, err := h.svc.Store.Get(ctx, token)
	if err != nil {
		if users.IsNotFound(err) {
			h.renderError(w, r, http.StatusNotFound, "No user has this token.")
		} else {
			h.fail(w, r, err)
		}
		return nil, false
	}
	return u, true
}

func (h *handler) disableUser(w http.ResponseWriter, r *http.Request, s session) {
	u, ok := h.loadUser(w, r)
	if !ok {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if utf8.RuneCountInString(reason) > users.MaxTextLen {
		h.showUser(w, r, s, u, http.StatusBadRequest, invalid("disabledReason", "must be at most "+strconv.Itoa(users.MaxTextLen)+" characters"))
		return
	}
	h.userAction(w, r, s, u, "disabled", func(ctx context.Context) (*users.User, error) {
		return h.svc.Disable(ctx, u.Token, reason)
	})
}

// simpleAction is a user page's button that needs nothing but the user:
// do runs on its token, then the page shows done's message.
func (h *handler) simpleAction(done string, do func(context.Context, string) (*users.User, error)) func(http.ResponseWriter, *http.Request, session) {
	return func(w http.ResponseWriter, r *http.Request, s session) {
		u, ok := h.loadUser(w, r)
		if !ok {
			return
		}
		h.userAction(w, r, s, u, done, func(ctx context.Context) (*users.User, error) {
			return do(ctx, u.Token)
		})
	}
}

// userAction runs one service call on u, then goes back to the user page
// with done's message, or shows the error there.
func (h *handler) userAction(w http.ResponseWriter, r *http.Request, s session, u *users.User, done string, do func(context.Context) (*users.User, error)) {
	ctx, cancel := context.WithTimeout(r.Context(), web.OneUserTimeout)
	defer cancel()
	if _, err := do(ctx); err != nil {
		e := web.AsError(err)
		if web.Status(e.Code) >= 500 {
			h.fail(w, r, err)
			return
		}
		h.showUser(w, r, s, u, web.Status(e.Code), e)
		return
	}
	if back, ok := listBack(r.PostFormValue("back")); ok {
		redirect(w, r, back+"done="+done)
		return
	}
	redirect(w, r, userPath(u.Token)+"?done="+done)
}

// listBack reads the list page a row's action came from (its path and
// query under the mount), ready for one more parameter; only the list is
// a place to go back to.
func listBack(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Path != "/manage/users" {
		return "", false
	}
	q := u.Query()
	q.Del("done")
	if len(q) == 0 {
		return u.Path + "?", true
	}
	return u.Path + "?" + q.Encode() + "&", true
}

// userPath is a user's page, relative to the mount.
func userPath(token string) string { return "/manage/users/" + url.PathEscape(token) }

// shortToken abbreviates a token for lists and titles.
func shortToken(t string) string {
	if utf8.RuneCountInString(t) <= 12 {
		return t
	}
	return t[:8] + "…"
}

// status is how a user stands at now: active, disabled or expired.
func status(u *users.User, now time.Time) string {
	switch {
	case u.Disabled():
		return "disabled"
	case u.Expired(now):
		return "expired"
	default:
		return "active"
	}
}

func sum(m map[string]int64) int64 {
	t := int64(0)
	for _, v := range m {
		t += v
	}
	return t
}

// familiesOf lists the families named in any of maps: the known ones in
// the model table's order, then any others (old or foreign names from an
// import) alphabetically, so nothing stored is hidden.
func familiesOf(maps ...map[string]int64) []string {
	seen := map[string]bool{}
	for _, m := range maps {
		for f := range m {
			seen[f] = true
		}
	}
	var out []string
	for _, f := range models.Families {
		if seen[f.Name] {
			out = append(out, f.Name)
			delete(seen, f.Name)
		}
	}
	rest := make([]string, 0, len(seen))
	for f := range seen {
		rest = append(rest, f)
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// invalid is a one-issue validation error, worded as the service's.
func invalid(path, msg string) *users.Error {
	return &users.Error{Code: users.CodeInvalid, Message: "Invalid value at " + path + ": " + msg, Issues: []users.Issue{{Path: path, Message: msg}}}
}
