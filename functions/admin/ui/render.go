package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"time"

	"tollgate.dev/tollgate/shared/web"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/*
var staticFS embed.FS

// pages holds one template set per page: the shared layout plus the page's
// "content".
type pages struct {
	byName map[string]*template.Template
}

// loadPages parses the embedded templates; they are part of the binary, so
// a parse error is a bug that every test run catches.
func loadPages(now func() time.Time) *pages {
	funcs := template.FuncMap{
		"num":  web.FormatNum,
		"when": web.FormatTime,
		"rel":  func(ms int64) string { return relative(ms, now()) },
	}
	base := web.Partials(template.Must(template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/quotas.html", "templates/chart.html")))
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range []string{"login", "message", "list", "user", "edit", "new", "import", "maintenance", "abuse", "dashboard"} {
		t := template.Must(base.Clone())
		p.byName[n] = template.Must(t.ParseFS(templateFS, "templates/"+n+".html"))
	}
	return p
}

// render executes page name into a buffer first, so a template error
// yields a clean 500 rather than half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages.byName[name].ExecuteTemplate(&buf, "base", data); err != nil {
		logging.FromContext(r.Context()).SetError("rendering " + name + ": " + err.Error())
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// layout is what every page shows around its content.
type layout struct {
	Title    string
	Nav      string
	Base     string
	Banners  []string
	Flash    string
	Error    string
	Issues   []users.Issue
	More     int // issues not shown
	LoggedIn bool
	sid      string
	sign     *signer
	assets   assets
}

// URL is p under the function's mount.
func (l *layout) URL(p string) string { return l.Base + p }

// CSRF is the token of the form that posts to p.
func (l *layout) CSRF(p string) string { return l.sign.csrf(l.sid, p) }

// Asset is the versioned URL of a static file, so browsers may cache it.
func (l *layout) Asset(name string) string {
	return l.Base + "/static/" + name + "?v=" + l.assets[name].version
}

// maxIssues bounds the issues listed on a page; a bad import can have
// thousands.
const maxIssues = 50

// SetError shows err's message and issues (safe texts: *users.Error
// messages are written for clients).
func (l *layout) SetError(err error) {
	e := users.AsError(err)
	l.Error = e.Message
	l.Issues = e.Issues
	if len(l.Issues) > maxIssues {
		l.More = len(l.Issues) - maxIssues
		l.Issues = l.Issues[:maxIssues]
	}
}

// layout builds the frame of a page; s is nil for visitors.
func (h *handler) layout(r *http.Request, s *session, title, nav string) *layout {
	l := &layout{
		Title:  title,
		Nav:    nav,
		Base:   web.BasePath(r.Context()),
		Flash:  flash(r.URL.Query()),
		sign:   h.sign,
		assets: h.static,
	}
	if s != nil {
		l.LoggedIn = true
		l.sid = s.ID
		l.Banners = banners(h.cfg)
	}
	return l
}

// banners warn about settings under which the UI's changes are fragile or
// have no effect.
func banners(c *config.Config) []string {
	var out []string
	if c.Store == config.StoreMemory {
		out = append(out, "GATEKEEPER_STORE is memory: users live in this instance only, and the data is lost when this instance stops. Export users.json to keep them.")
	}
	if c.Gatekeeper != config.ModeUserToken {
		out = append(out, fmt.Sprintf("GATEKEEPER is %s, not user_token: the proxy does not check user tokens, so the users managed here have no effect.", c.Gatekeeper))
	}
	return out
}

// flash turns a redirect's ?done= code into its message; only known codes
// and numbers are shown, never text from the URL.
func flash(q url.Values) string {
	n, _ := strconv.Atoi(q.Get("n"))
	switch q.Get("done") {
	case "created":
		return "User created. Give the user this token and the proxy's URL."
	case "saved":
		return "Changes saved."
	case "unchanged":
		return "Nothing to save: no field was changed."
	case "disabled":
		return "User disabled."
	case "reactivated":
		return "User reactivated."
	case "refreshed":
		return "Quota refreshed."
	case "imported":
		return fmt.Sprintf("Imported %s.", plural(n, "user"))
	case "maintained":
		if a := q.Get("action"); a == users.ActionPruneEvents {
			return fmt.Sprintf("%s done: %s deleted.", a, plural(n, "event"))
		} else if a == users.ActionPruneLimits {
			return fmt.Sprintf("%s done: %s deleted.", a, plural(n, "limits record"))
		} else if slices.Contains(users.Actions, a) {
			return fmt.Sprintf("%s done: %s changed.", a, plural(n, "user"))
		}
	case "lists":
		return fmt.Sprintf("IP lists saved (%d entries in all); every instance applies them within USER_CACHE_TTL.", n)
	case "reason":
		return "Reason saved."
	case "rechecked":
		return "Upstream keys rechecked."
	case "logout":
		return "You are logged out."
	}
	return ""
}

// message is a page with only a message and a way on.
type message struct {
	*layout
	Text     string
	LinkText string
	LinkHref string
}

// renderError shows msg with status, in the frame the visitor may see.
func (h *handler) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	var s *session
	if ss, ok := h.session(r, kindAdmin); ok {
		s = &ss
	}
	l := h.layout(r, s, http.StatusText(status), "")
	l.Flash = ""
	m := &message{layout: l, Text: msg, LinkText: "Back to the users", LinkHref: l.URL("/manage/users")}
	if s == nil {
		m.LinkText, m.LinkHref = "Log in", l.URL("/login")
	}
	h.render(w, r, status, "message", m)
}

// fail shows an error of the users service with its status. Internal
// errors show nothing of their cause; the log line gets it.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	_, code, msg, logText := web.Failure(err)
	logging.FromContext(r.Context()).SetError(logText)
	h.renderError(w, r, code, msg)
}

// formFailed shows a service error: a client's (4xx) on the form, through
// fail, anything else as an error page.
func (h *handler) formFailed(w http.ResponseWriter, r *http.Request, err error, fail func(int, error)) {
	if e := web.AsError(err); web.Status(e.Code) < 500 {
		fail(web.Status(e.Code), e)
		return
	}
	h.fail(w, r, err)
}

// listAll reads every user, or shows why it could not.
func (h *handler) listAll(w http.ResponseWriter, r *http.Request) ([]*users.User, bool) {
	ctx, cancel := context.WithTimeout(r.Context(), web.AllUsersTimeout)
	defer cancel()
	list, err := h.svc.Store.List(ctx)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return list, true
}

// asset is one embedded static file.
type asset struct {
	body    []byte
	ctype   string
	version string // content hash: changes whenever the file does
}

type assets map[string]asset

func loadAssets() assets {
	entries, err := staticFS.ReadDir("static")
	if err != nil {
		panic(fmt.Errorf("reading embedded static files: %w", err))
	}
	out := assets{}
	for _, e := range entries {
		body, err := staticFS.ReadFile("static/" + e.Name())
		if err != nil {
			panic(fmt.Errorf("reading embedded %s: %w", e.Name(), err))
		}
		sum := sha256.Sum256(body)
		ctype := "text/plain; charset=utf-8"
		switch path.Ext(e.Name()) {
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		}
		out[e.Name()] = asset{body: body, ctype: ctype, version: hex.EncodeToString(sum[:6])}
	}
	return out
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	a, ok := h.static[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("ETag", `"`+a.version+`"`)
	if r.URL.Query().Get("v") == a.version {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "public, max-age=300")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// relative is a rough "in 3 h" / "2 d ago" beside a date.
func relative(ms int64, now time.Time) string {
	if ms == 0 {
		return ""
	}
	d := time.UnixMilli(ms).Sub(now)
	future := d > 0
	if !future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "now"
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 10*time.Hour && d%time.Hour >= time.Minute:
		s = fmt.Sprintf("%d h %d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%d d", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
