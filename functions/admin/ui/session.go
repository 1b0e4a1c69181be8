package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"tollgate.dev/tollgate/shared/web"
)

// cookieName is the only cookie Firebase Hosting forwards to functions.
const cookieName = "__session"

// Session kinds: a logged-in admin, or a visitor of the login form (whose
// session only anchors the login form's CSRF token).
const (
	kindAdmin = "a"
	kindLogin = "l"
)

// Lifetimes of the two kinds of session.
const (
	defaultSessionTTL = 12 * time.Hour
	loginFormTTL      = 2 * time.Hour
)

// session is what a signed cookie carries; nothing is kept server-side, so
// every admin instance accepts every other's sessions.
type session struct {
	ID      string
	Kind    string
	Expires time.Time
}

// signer signs session cookies and CSRF tokens. Its key comes from
// SIGNING_KEY, or from ADMIN_KEY when that is empty, so every instance
// derives the same key; the ADMIN_KEY fingerprint is in every session MAC,
// so changing ADMIN_KEY logs everybody out even with a fixed SIGNING_KEY.
type signer struct {
	*web.Signer
	adminFP string
	enabled bool // false without ADMIN_KEY: no session is ever valid
}

func newSigner(signingKey, adminKey string) *signer {
	base := signingKey
	if base == "" {
		base = adminKey
	}
	fp := sha256.Sum256([]byte("tollgate-admin-key\x00" + adminKey))
	return &signer{
		Signer:  web.NewSigner([]byte(base), "tollgate-session"),
		adminFP: string(fp[:]),
		enabled: adminKey != "",
	}
}

// newSession returns a fresh session of kind that ends ttl after now.
func newSession(kind string, now time.Time, ttl time.Duration) session {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return session{ID: base64.RawURLEncoding.EncodeToString(b[:]), Kind: kind, Expires: now.Add(ttl).Truncate(time.Second)}
}

// encode is the cookie value: v1.kind.id.expiry.mac, all cookie-safe.
func (s *signer) encode(ss session) string {
	return strings.Join([]string{"v1", ss.Kind, ss.ID, s.Seal(ss.Expires, "session-v1", ss.Kind, ss.ID, s.adminFP)}, ".")
}

// decode verifies a cookie value at now: a bad MAC (tampered, or signed
// under another key or ADMIN_KEY), an expired session, or one claiming to
// last longer than maxTTL is refused.
func (s *signer) decode(v string, now time.Time, maxTTL time.Duration) (session, bool) {
	if !s.enabled {
		return session{}, false
	}
	parts := strings.Split(v, ".")
	if len(parts) != 5 || parts[0] != "v1" || (parts[1] != kindAdmin && parts[1] != kindLogin) || parts[2] == "" {
		return session{}, false
	}
	exp, ok := s.Open(parts[3]+"."+parts[4], now, maxTTL, "session-v1", parts[1], parts[2], s.adminFP)
	if !ok {
		return session{}, false
	}
	return session{ID: parts[2], Kind: parts[1], Expires: exp}, true
}

// csrf is the token a form posting to purpose (its action path) carries
// within session sid.
func (s *signer) csrf(sid, purpose string) string { return s.Sign("csrf-v1", sid, purpose) }

// checkCSRF compares in constant time, as text (one valid spelling).
func (s *signer) checkCSRF(sid, purpose, got string) bool {
	return s.Verify(got, "csrf-v1", sid, purpose)
}
