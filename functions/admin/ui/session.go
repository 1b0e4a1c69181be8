package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
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
	key     []byte
	adminFP [sha256.Size]byte
	enabled bool // false without ADMIN_KEY: no session is ever valid
}

func newSigner(signingKey, adminKey string) *signer {
	base := signingKey
	if base == "" {
		base = adminKey
	}
	m := hmac.New(sha256.New, []byte(base))
	m.Write([]byte("tollgate-session"))
	return &signer{
		key:     m.Sum(nil),
		adminFP: sha256.Sum256([]byte("tollgate-admin-key\x00" + adminKey)),
		enabled: adminKey != "",
	}
}

func (s *signer) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

func (s *signer) sessionMAC(kind, id, exp string) []byte {
	return s.mac("session-v1", kind, id, exp, string(s.adminFP[:]))
}

// newSession returns a fresh session of kind that ends ttl after now.
func newSession(kind string, now time.Time, ttl time.Duration) session {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return session{ID: base64.RawURLEncoding.EncodeToString(b[:]), Kind: kind, Expires: now.Add(ttl).Truncate(time.Second)}
}

// encode is the cookie value: v1.kind.id.expiry.mac, all cookie-safe.
func (s *signer) encode(ss session) string {
	exp := strconv.FormatInt(ss.Expires.Unix(), 10)
	mac := base64.RawURLEncoding.EncodeToString(s.sessionMAC(ss.Kind, ss.ID, exp))
	return strings.Join([]string{"v1", ss.Kind, ss.ID, exp, mac}, ".")
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
	// MACs are compared as text, so exactly one spelling is valid.
	want := base64.RawURLEncoding.EncodeToString(s.sessionMAC(parts[1], parts[2], parts[3]))
	if !hmac.Equal([]byte(parts[4]), []byte(want)) {
		return session{}, false
	}
	sec, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		return session{}, false
	}
	exp := time.Unix(sec, 0)
	if !now.Before(exp) || exp.Sub(now) > maxTTL {
		return session{}, false
	}
	return session{ID: parts[2], Kind: parts[1], Expires: exp}, true
}

// csrf is the token a form posting to purpose (its action path) carries
// within session sid.
func (s *signer) csrf(sid, purpose string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf-v1", sid, purpose))
}

// checkCSRF compares in constant time, as text (one valid spelling).
func (s *signer) checkCSRF(sid, purpose, got string) bool {
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrf(sid, purpose)))
}
