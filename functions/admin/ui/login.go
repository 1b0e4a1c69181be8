package ui

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"tollgate.dev/tollgate/shared/web"
)

type loginPage struct {
	*layout
	Next     string
	Disabled bool
}

// loginForm shows the key form. A visitor gets a short login-form session
// to anchor the form's CSRF token (kept if it already has one, so two open
// tabs both work).
func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.session(r, kindAdmin); ok {
		redirect(w, r, "/manage/users")
		return
	}
	h.showLogin(w, r, http.StatusOK, "")
}

func (h *handler) showLogin(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	p := &loginPage{Next: safeNext(r.FormValue("next")), Disabled: h.cfg.AdminKey == ""}
	p.layout = h.layout(r, nil, "Log in", "")
	p.Error = errMsg
	if !p.Disabled {
		s, ok := h.session(r, kindLogin)
		if !ok {
			s = newSession(kindLogin, h.now(), loginFormTTL)
			h.setSession(w, r, s)
		}
		p.sid = s.ID
	}
	h.render(w, r, status, "login", p)
}

// login checks the admin key in constant time. A locked-out address is
// refused before its key is looked at; each wrong key counts in the
// lockout shared with the REST API.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if h.cfg.AdminKey == "" {
		h.renderError(w, r, http.StatusForbidden, "The admin UI is disabled: set ADMIN_KEY.")
		return
	}
	pre, ok := h.session(r, kindLogin)
	if !h.parseForm(w, r, maxFormBody) {
		return
	}
	if !ok || !h.sign.checkCSRF(pre.ID, r.URL.Path, r.PostFormValue("csrf")) {
		h.renderError(w, r, http.StatusForbidden, "The login form expired or did not come from this site. Reload the login page and try again.")
		return
	}
	ip := h.clientIP(r)
	now := h.now()
	if secs, locked := web.LockedOut(w, h.lockout, ip, now); locked {
		h.renderError(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts from your address. Try again in %s.", waitText(secs)))
		return
	}
	key := strings.TrimSpace(r.PostFormValue("key"))
	got, want := sha256.Sum256([]byte(key)), sha256.Sum256([]byte(h.cfg.AdminKey))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		h.lockout.Fail(ip, now)
		h.showLogin(w, r, http.StatusUnauthorized, "Wrong admin key.")
		return
	}
	h.lockout.Succeed(ip)
	// A new session ID at login, so nothing seen before it is worth
	// anything after.
	h.setSession(w, r, newSession(kindAdmin, now, h.sessionTTL))
	next := safeNext(r.PostFormValue("next"))
	if next == "" {
		next = "/manage/users"
	}
	redirect(w, r, next)
}

// logout drops the cookie. Sessions are stateless: changing ADMIN_KEY or
// SIGNING_KEY is what ends every session at once.
func (h *handler) logout(w http.ResponseWriter, r *http.Request, _ session) {
	h.clearSession(w, r)
	redirect(w, r, "/login?done=logout")
}

// safeNext keeps a post-login destination only when it is a UI page of
// this function, so the login form cannot redirect elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/manage") || strings.Contains(next, "//") || strings.ContainsFunc(next, unsafeInPath) {
		return ""
	}
	return next
}

// unsafeInPath: a backslash (browsers read it as a slash), a control
// character (a tab or line break in a Location header) or a space.
func unsafeInPath(r rune) bool { return r == '\\' || r <= ' ' || r == 0x7f }

func waitText(secs int) string {
	if secs < 60 {
		return plural(secs, "second")
	}
	return plural((secs+59)/60, "minute")
}
