package users

import "time"

// CheckQuota refuses a request whose family count plus the requested tokens
// would pass the user's limit (0 or a missing family: unlimited). Special
// users are never refused.
func CheckQuota(u *User, family string, requested int64) error {
	return CheckFamilyQuota(u.Type, family, u.TokenLimits[family], u.TokenCounts[family], requested)
}

// CheckFamilyQuota is CheckQuota of a user of type typ whose family has
// limit and has used used.
func CheckFamilyQuota(typ Type, family string, limit, used, requested int64) error {
	if typ == Special {
		return nil
	}
	if limit <= 0 {
		return nil
	}
	if used+requested <= limit {
		return nil
	}
	return &Error{
		Code:      CodeQuota,
		Message:   "You have exceeded your token quota for the " + family + " model family.",
		Quota:     limit,
		Used:      used,
		Requested: requested,
	}
}

// Schedule yields the boundaries of the quota refresh period; a parsed cron
// expression satisfies it.
type Schedule interface {
	Next(time.Time) time.Time
}

// RefreshDue reports whether a refresh boundary lies after the user's last
// refresh (createdAt until the first) and at or before now. Temporary users
// are never refreshed lazily.
func RefreshDue(u *User, s Schedule, now time.Time) bool {
	if s == nil || u.Type == Temporary {
		return false
	}
	last := u.RefreshedAt
	if last == 0 {
		last = u.CreatedAt
	}
	next := s.Next(time.UnixMilli(last).UTC())
	return !next.IsZero() && !next.After(now)
}

// RefreshQuota grants each family with a refresh amount q (the user's
// tokenRefresh when above 0, else the default quota: the original's
// `tokenRefresh[f] || TOKEN_QUOTA_<F>`) a limit of count + q, 2^53 at
// most (the database's largest exact number). Counts are never reset. It
// reports whether any limit changed.
func RefreshQuota(u *User, defaults map[string]int64, now time.Time) bool {
	changed := false
	grant := func(f string, q int64) {
		if q <= 0 {
			return
		}
		if l := min(u.TokenCounts[f]+min(q, maxExact), maxExact); u.TokenLimits[f] != l {
			if u.TokenLimits == nil {
				u.TokenLimits = map[string]int64{}
			}
			u.TokenLimits[f] = l
			changed = true
		}
	}
	for f, q := range u.TokenRefresh {
		grant(f, q)
	}
	for f, q := range defaults {
		if u.TokenRefresh[f] <= 0 { // 0 falls back to the default
			grant(f, q)
		}
	}
	u.RefreshedAt = now.UnixMilli()
	return changed
}

// MaxIPs is the user's IP limit: its own maxIps when set, else the default.
// 0 means unlimited.
func (u *User) MaxIPsOr(def int64) int64 {
	if u.MaxIPs != nil {
		return *u.MaxIPs
	}
	return def
}

// IPVerdict is the outcome of admitting a client IP for a user.
type IPVerdict int

const (
	IPKnown   IPVerdict = iota // already seen: nothing to write
	IPAdded                    // new and within the limit: recorded
	IPRefused                  // new and over the limit: refused, user untouched
	IPBanned                   // new and over the limit: user disabled
)

// IPLimitReason is the disabled reason set by the IP auto-ban.
const IPLimitReason = "IP address limit exceeded."

// MaxRecordedIPs bounds a user's recorded addresses, so that a client
// moving through the addresses of its IPv6 network cannot grow its record,
// which every charge writes, without end. The oldest make way, those of a
// network recorded again later first (trimIPs).
const MaxRecordedIPs = 1000

// AdmitIP applies the IP limit for a request from ip. The limit counts
// networks (ipGroup): a new address of an IPv6 /64 already recorded is
// recorded without taking a place. Special users are exempt; with autoBan
// an excess disables the user.
func AdmitIP(u *User, ip string, defaultMax int64, autoBan bool, now time.Time) IPVerdict {
	if u.HasIP(ip) {
		return IPKnown
	}
	limit := u.MaxIPsOr(defaultMax)
	if u.Type == Special || limit <= 0 || roomFor(u.IP, ip, limit) {
		u.IP = trimIPs(append(u.IP, ip), MaxRecordedIPs)
		return IPAdded
	}
	if autoBan {
		u.Disable(now, IPLimitReason)
		return IPBanned
	}
	return IPRefused
}

// Charge records one prompt of tokens in family at the time at.
func (u *User) Charge(family string, tokens int64, at time.Time) {
	u.PromptCount++
	if u.TokenCounts == nil {
		u.TokenCounts = map[string]int64{}
	}
	u.TokenCounts[family] += tokens
	if ms := at.UnixMilli(); ms > u.LastUsedAt {
		u.LastUsedAt = ms
	}
}

// ExpiredReason is the disabled reason of a temporary user whose time is up.
const ExpiredReason = "Temporary token expired."

// DefaultPurgeAfter is how long a disabled temporary user is kept before
// purging when a Service does not say (POW_TOKEN_PURGE_HOURS's default).
const DefaultPurgeAfter = 48 * time.Hour
