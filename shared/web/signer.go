package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
)

// Signer signs what a page hands a browser and must get back unchanged:
// session cookies and CSRF tokens. Nothing is kept server-side, so every
// instance whose secret is the same accepts every other's signatures.
type Signer struct {
	key []byte
}

// NewSigner derives the key for one purpose from secret, so that a
// signature made for one purpose is never valid for another.
func NewSigner(secret []byte, purpose string) *Signer {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return &Signer{key: m.Sum(nil)}
}

// Sign is the MAC of parts (each preceded by its length, so that no two
// lists sign alike), in unpadded base64url: cookie- and form-safe.
func (s *Signer) Sign(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write(binary.AppendUvarint(nil, uint64(len(p))))
		m.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is Sign(parts...), in constant time. It
// compares text, not decoded bytes, so exactly one spelling is valid.
func (s *Signer) Verify(sig string, parts ...string) bool {
	return sig != "" && hmac.Equal([]byte(sig), []byte(s.Sign(parts...)))
}

// Seal is "expiry.mac": parts signed together with an expiry (Unix
// seconds).
func (s *Signer) Seal(expires time.Time, parts ...string) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + s.Sign(append(parts[:len(parts):len(parts)], exp)...)
}

// Open checks a Seal of parts at now: the MAC must match, the expiry be
// after now and at most maxTTL away (a seal made under a longer lifetime
// is refused). It returns the expiry.
func (s *Signer) Open(sealed string, now time.Time, maxTTL time.Duration, parts ...string) (time.Time, bool) {
	exp, sig, ok := strings.Cut(sealed, ".")
	if !ok || !s.Verify(sig, append(parts[:len(parts):len(parts)], exp)...) {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	t := time.Unix(sec, 0)
	if !now.Before(t) || t.Sub(now) > maxTTL {
		return time.Time{}, false
	}
	return t, true
}
