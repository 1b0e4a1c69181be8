// Package users is tollgate's domain: the user record, the Store that holds
// users, and the quota, refresh, expiry and IP rules as plain functions.
// It imports no HTTP, database or logging package.
package users

import (
	"maps"
	"slices"
	"time"
)

// Type is a user's kind.
type Type string

const (
	Normal    Type = "normal"
	Special   Type = "special" // exempt from quotas, IP limits, rate limits and output clamps
	Temporary Type = "temporary"
)

// Valid reports whether t is a known type.
func (t Type) Valid() bool { return t == Normal || t == Special || t == Temporary }

// User is the stored record. JSON names are the original's, so its exports
// import unchanged: maps that the original always writes are always written,
// optional ones are written when present (even empty), scalars when set.
type User struct {
	Token          string           `json:"token"`
	IP             []string         `json:"ip"`
	Nickname       string           `json:"nickname,omitempty"`
	Type           Type             `json:"type"`
	PromptCount    int64            `json:"promptCount"`
	TokenCounts    map[string]int64 `json:"tokenCounts"`
	TokenLimits    map[string]int64 `json:"tokenLimits"`
	TokenRefresh   map[string]int64 `json:"tokenRefresh,omitzero"`
	CreatedAt      int64            `json:"createdAt"`
	LastUsedAt     int64            `json:"lastUsedAt,omitempty"`
	DisabledAt     int64            `json:"disabledAt,omitempty"`
	DisabledReason string           `json:"disabledReason,omitempty"`
	ExpiresAt      int64            `json:"expiresAt,omitempty"`
	AdminNote      string           `json:"adminNote,omitempty"`
	MaxIPs         *int64           `json:"maxIps,omitempty"`
	Meta           map[string]any   `json:"meta,omitzero"`
	// RefreshedAt is when quotas were last refreshed (epoch ms); tollgate's
	// own field, absent until the first refresh (createdAt counts until then).
	RefreshedAt int64 `json:"refreshedAt,omitempty"`
}

// Normalize makes the always-written collections non-nil so they encode
// as [] and {} rather than null.
func (u *User) Normalize() {
	if u.IP == nil {
		u.IP = []string{}
	}
	if u.TokenCounts == nil {
		u.TokenCounts = map[string]int64{}
	}
	if u.TokenLimits == nil {
		u.TokenLimits = map[string]int64{}
	}
	if u.Type == "" {
		u.Type = Normal
	}
}

// Clone returns a deep copy that shares nothing with u.
func (u *User) Clone() *User {
	c := *u
	c.IP = slices.Clone(u.IP)
	c.TokenCounts = maps.Clone(u.TokenCounts)
	c.TokenLimits = maps.Clone(u.TokenLimits)
	c.TokenRefresh = maps.Clone(u.TokenRefresh)
	if u.MaxIPs != nil {
		v := *u.MaxIPs
		c.MaxIPs = &v
	}
	c.Meta = cloneMeta(u.Meta)
	return &c
}

func cloneMeta(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = cloneAny(v)
	}
	return c
}

func cloneAny(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return cloneMeta(t)
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = cloneAny(e)
		}
		return c
	default:
		return v
	}
}

// Disabled reports whether the user has been disabled.
func (u *User) Disabled() bool { return u.DisabledAt != 0 }

// Expired reports whether a temporary user's time is up at now.
func (u *User) Expired(now time.Time) bool {
	return u.Type == Temporary && u.ExpiresAt != 0 && now.UnixMilli() >= u.ExpiresAt
}

// Refreshable reports meta.refreshable, set on temporary users that may be
// given more quota.
func (u *User) Refreshable() bool {
	b, _ := u.Meta["refreshable"].(bool)
	return b
}

// HasIP reports whether ip was already seen for this user.
func (u *User) HasIP(ip string) bool { return slices.Contains(u.IP, ip) }

// Disable marks the user disabled at now with reason.
func (u *User) Disable(now time.Time, reason string) {
	u.DisabledAt = now.UnixMilli()
	u.DisabledReason = reason
}

// Ban is an administrator's disable: as in the original, a temporary
// token disabled by hand can no longer be refreshed (one disabled by its
// expiry still can).
func (u *User) Ban(now time.Time, reason string) {
	u.Disable(now, reason)
	if u.Type == Temporary && u.Refreshable() {
		u.Meta["refreshable"] = false
	}
}

// Reactivate clears the disabled state.
func (u *User) Reactivate() {
	u.DisabledAt = 0
	u.DisabledReason = ""
}

// New returns a user of type t created at now, with quotas from defaults.
func New(token string, t Type, now time.Time, defaults map[string]int64) *User {
	u := &User{Token: token, Type: t, CreatedAt: now.UnixMilli()}
	u.Normalize()
	for f, q := range defaults {
		if q > 0 {
			u.TokenLimits[f] = q
		}
	}
	return u
}
