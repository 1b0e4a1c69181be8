package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math"
	"net/http"
	"strings"

	"tollgate.dev/tollgate/shared/users"
)

// authenticate checks Authorization: Bearer <ADMIN_KEY>, or, on the
// maintenance route only, Cloud Scheduler's OIDC ID token. A locked-out IP
// is refused before its credential is even looked at, so the right key
// cannot be found by guessing through the lockout. Only a wrong credential
// counts as a failure; a missing one guesses nothing.
func (a *api) authenticate(r *http.Request) error {
	_, pattern := a.mux.Handler(r)
	scheduler := a.scheduler != nil && pattern == maintenancePattern
	if !a.keySet && !scheduler {
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
	if scheduler && looksLikeJWT(key) {
		err := a.scheduler.verify(r.Context(), key)
		if err == nil {
			a.lockout.Succeed(ip)
			return nil
		}
		if e := (*users.Error)(nil); errors.As(err, &e) {
			return err // the keys could not be fetched: not the caller's fault
		}
		if !a.keySet || !a.keyMatches(key) {
			a.lockout.Fail(ip, now)
			return users.Errorf(users.CodeUnauthorized, "Invalid scheduler token (%s).", err)
		}
	}
	if !a.keySet {
		return users.Errorf(users.CodeForbidden, "Admin API disabled: set ADMIN_KEY")
	}
	if !a.keyMatches(key) {
		a.lockout.Fail(ip, now)
		return users.Errorf(users.CodeUnauthorized, "Invalid admin key.")
	}
	a.lockout.Succeed(ip)
	return nil
}

// keyMatches compares key with ADMIN_KEY. Hashing both sides first makes
// the comparison's time independent of the key's length as well as its
// content.
func (a *api) keyMatches(key string) bool {
	sum := sha256.Sum256([]byte(key))
	return subtle.ConstantTimeCompare(sum[:], a.keyHash[:]) == 1
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
