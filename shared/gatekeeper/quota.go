package gatekeeper

import (
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// userQuota is what the quota checks need of a user, copied from the
// store's record as it was read at authentication: its type and expiry,
// and the limit and count of each family it has a quota in. (A copy of
// the whole record would cost every request its maps and lists.)
type userQuota struct {
	typ       users.Type
	expiresAt int64
	families  []familyQuota // the families with a limit above 0
}

type familyQuota struct {
	family      string
	limit, used int64
}

// quotaOf copies u's quota.
func quotaOf(u *users.User) userQuota {
	q := userQuota{typ: u.Type, expiresAt: u.ExpiresAt}
	n := 0
	for _, limit := range u.TokenLimits {
		if limit > 0 {
			n++
		}
	}
	if n == 0 {
		return q
	}
	q.families = make([]familyQuota, 0, n)
	for f, limit := range u.TokenLimits {
		if limit > 0 {
			q.families = append(q.families, familyQuota{family: f, limit: limit, used: u.TokenCounts[f]})
		}
	}
	return q
}

// of is family's limit and count; a limit of 0 is no quota, as a
// missing one is in the user's record.
func (q *userQuota) of(family string) (limit, used int64) {
	for _, f := range q.families {
		if f.family == family {
			return f.limit, f.used
		}
	}
	return 0, 0
}

// expired is users.User.Expired of the user as read.
func (q *userQuota) expired(now time.Time) bool {
	return (&users.User{Type: q.typ, ExpiresAt: q.expiresAt}).Expired(now)
}
