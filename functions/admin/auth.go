package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net/http"
	"strings"

	"tollgate.dev/tollgate/shared/users"
)

// authenticate checks Authorization: Bearer <ADMIN_KEY>. A locked-out IP is
// refused before its key is even looked at, so the right key cannot be
// found by guessing through the lockout. Only a wrong key counts as a
// failure; a missing one guesses nothing.
func (a *api) authenticate(r *http.Request) error {
	if !a.keySet {
		return users.Errorf(users.CodeForbidden, "Admin API disabled: set ADMIN_KEY")
	}
	ip := a.clientIP(r)
	now := a.now()
	if locked, wait := a.lockout.Locked(ip, now); locked {
		secs := max(1, int(math.Ceil(wait.Seconds())))
		return &users.Error{
			Code:              users.CodeRateLimited,
			Message:           "Too many failed admin key attempts from your address; try again later.",
			RetryAfterSeconds: secs,
		}
	}
	key, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return users.Errorf(users.CodeUnauthorized, "Missing admin key: send Authorization: Bearer <ADMIN_KEY>.")
	}
	// Hashing both sides first makes the comparison's time independent of
	// the key's length as well as its content.
	sum := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(sum[:], a.keyHash[:]) != 1 {
		a.lockout.Fail(ip, now)
		return users.Errorf(users.CodeUnauthorized, "Invalid admin key.")
	}
	a.lockout.Succeed(ip)
	return nil
}

// bearer extracts the credential of an "Authorization: Bearer x" header;
// the scheme is case-insensitive (RFC 9110).
func bearer(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}
