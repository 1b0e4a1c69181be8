package users_test

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"tollgate.dev/tollgate/shared/users"
)

// t0 is Sunday 2026-03-01 10:30 UTC.
var t0 = time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func schedule(t *testing.T, spec string) users.Schedule {
	t.Helper()
	s, err := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow).Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckQuota(t *testing.T) {
	tests := []struct {
		name      string
		typ       users.Type
		limits    map[string]int64
		counts    map[string]int64
		family    string
		requested int64
		refused   bool
	}{
		{"no limits", users.Normal, nil, map[string]int64{"gpt4o": 1e12}, "gpt4o", 1e6, false},
		{"limit 0 is unlimited", users.Normal, map[string]int64{"gpt4o": 0}, map[string]int64{"gpt4o": 50}, "gpt4o", 1e6, false},
		{"other family limited only", users.Normal, map[string]int64{"claude": 1}, map[string]int64{"claude": 5}, "gpt4o", 1e6, false},
		{"exactly at the limit", users.Normal, map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 900}, "gpt4o", 100, false},
		{"one over", users.Normal, map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 900}, "gpt4o", 101, true},
		{"already over, nothing requested", users.Normal, map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 1001}, "gpt4o", 0, true},
		{"no count yet", users.Normal, map[string]int64{"gpt4o": 10}, nil, "gpt4o", 11, true},
		{"temporary users are limited", users.Temporary, map[string]int64{"claude": 10}, map[string]int64{"claude": 10}, "claude", 1, true},
		{"special users are never refused", users.Special, map[string]int64{"gpt4o": 1}, map[string]int64{"gpt4o": 900}, "gpt4o", 1e6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &users.User{Type: tt.typ, TokenLimits: tt.limits, TokenCounts: tt.counts}
			err := users.CheckQuota(u, tt.family, tt.requested)
			if !tt.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *users.Error
			if !errors.As(err, &e) || e.Code != users.CodeQuota {
				t.Fatalf("err = %v, want a quota error", err)
			}
			if e.Quota != tt.limits[tt.family] || e.Used != tt.counts[tt.family] || e.Requested != tt.requested {
				t.Errorf("quota %d used %d requested %d", e.Quota, e.Used, e.Requested)
			}
			if !strings.Contains(e.Message, tt.family) {
				t.Errorf("message %q does not name the family", e.Message)
			}
		})
	}
}

type zeroSchedule struct{}

func (zeroSchedule) Next(time.Time) time.Time { return time.Time{} }

func TestRefreshDue(t *testing.T) {
	hourly := schedule(t, "0 * * * *")
	daily := schedule(t, "0 0 * * *")
	at := func(h, m int) time.Time { return time.Date(2026, 3, 1, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name      string
		s         users.Schedule
		typ       users.Type
		created   time.Time
		refreshed time.Time // zero: never
		now       time.Time
		want      bool
	}{
		{"no schedule", nil, users.Normal, at(1, 0), time.Time{}, at(23, 0), false},
		{"before the first boundary", hourly, users.Normal, at(10, 30), time.Time{}, at(10, 59), false},
		{"at the boundary", hourly, users.Normal, at(10, 30), time.Time{}, at(11, 0), true},
		{"after the boundary", hourly, users.Normal, at(10, 30), time.Time{}, at(11, 1), true},
		{"created on a boundary: not due at once", hourly, users.Normal, at(10, 0), time.Time{}, at(10, 0), false},
		{"refreshed after the last boundary", hourly, users.Normal, at(1, 0), at(11, 5), at(11, 59), false},
		{"refreshed before the last boundary", hourly, users.Normal, at(1, 0), at(10, 59), at(11, 0), true},
		{"daily, same day", daily, users.Normal, at(0, 30), time.Time{}, at(23, 59), false},
		{"daily, next day", daily, users.Normal, at(0, 30), time.Time{}, at(24, 0), true},
		{"special users too", hourly, users.Special, at(1, 0), time.Time{}, at(3, 0), true},
		{"temporary users never", hourly, users.Temporary, at(1, 0), time.Time{}, at(23, 0), false},
		{"schedule without a next time", zeroSchedule{}, users.Normal, at(1, 0), time.Time{}, at(23, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &users.User{Type: tt.typ, CreatedAt: tt.created.UnixMilli()}
			if !tt.refreshed.IsZero() {
				u.RefreshedAt = tt.refreshed.UnixMilli()
			}
			if got := users.RefreshDue(u, tt.s, tt.now); got != tt.want {
				t.Errorf("RefreshDue = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRefreshQuota(t *testing.T) {
	tests := []struct {
		name        string
		counts      map[string]int64
		limits      map[string]int64
		refresh     map[string]int64
		defaults    map[string]int64
		wantLimits  map[string]int64
		wantChanged bool
	}{
		{"default quota: limit = count + q", map[string]int64{"gpt4o": 900}, map[string]int64{"gpt4o": 1000}, nil,
			map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 1900}, true},
		{"no count: limit = q", nil, nil, nil,
			map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 1000}, true},
		{"own refresh overrides the default", map[string]int64{"gpt4o": 900}, map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 200},
			map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 1100}, true},
		{"own refresh 0 falls back to the default", map[string]int64{"gpt4o": 900}, map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 0},
			map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 1900}, true},
		{"own refresh 0 and no default: untouched", map[string]int64{"gpt4o": 900}, map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 0},
			nil, map[string]int64{"gpt4o": 1000}, false},
		{"own refresh without a default", map[string]int64{"aws-claude": 50}, nil, map[string]int64{"aws-claude": 10},
			nil, map[string]int64{"aws-claude": 60}, true},
		{"family without q keeps its limit", map[string]int64{"claude": 5}, map[string]int64{"claude": 7}, nil,
			map[string]int64{"gpt4o": 10}, map[string]int64{"claude": 7, "gpt4o": 10}, true},
		{"already refreshed: unchanged", map[string]int64{"gpt4o": 900}, map[string]int64{"gpt4o": 1900}, nil,
			map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 1900}, false},
		{"count over the old limit", map[string]int64{"gpt4o": 5000}, map[string]int64{"gpt4o": 1000}, nil,
			map[string]int64{"gpt4o": 1000}, map[string]int64{"gpt4o": 6000}, true},
		{"nothing to refresh", nil, nil, nil, nil, map[string]int64{}, false},
		{"limit held at 2^53, what the database keeps exactly", map[string]int64{"gpt4o": 10}, nil, map[string]int64{"gpt4o": 1 << 53},
			nil, map[string]int64{"gpt4o": 1 << 53}, true},
		{"a default of 2^53 too", map[string]int64{"gpt4o": 10}, nil, nil,
			map[string]int64{"gpt4o": 1 << 53}, map[string]int64{"gpt4o": 1 << 53}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := users.New("tok", users.Normal, t0, nil)
			if tt.counts != nil {
				u.TokenCounts = maps.Clone(tt.counts)
			}
			if tt.limits != nil {
				u.TokenLimits = maps.Clone(tt.limits)
			}
			u.TokenRefresh = tt.refresh
			now := t0.Add(time.Hour)
			changed := users.RefreshQuota(u, tt.defaults, now)
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if !maps.Equal(u.TokenLimits, tt.wantLimits) {
				t.Errorf("limits = %v, want %v", u.TokenLimits, tt.wantLimits)
			}
			if tt.counts != nil && !maps.Equal(u.TokenCounts, tt.counts) {
				t.Errorf("counts changed: %v", u.TokenCounts)
			}
			if u.RefreshedAt != now.UnixMilli() {
				t.Errorf("refreshedAt = %d", u.RefreshedAt)
			}
		})
	}
}

func TestRefreshQuotaOnBareUser(t *testing.T) {
	u := &users.User{Token: "t"} // not normalized: nil maps
	if !users.RefreshQuota(u, map[string]int64{"gpt4o": 5}, t0) || u.TokenLimits["gpt4o"] != 5 {
		t.Errorf("limits = %v", u.TokenLimits)
	}
}

func TestAdmitIP(t *testing.T) {
	tests := []struct {
		name       string
		typ        users.Type
		have       []string
		maxIPs     *int64
		defaultMax int64
		autoBan    bool
		ip         string
		want       users.IPVerdict
	}{
		{"known IP", users.Normal, []string{"1.1.1.1"}, nil, 1, false, "1.1.1.1", users.IPKnown},
		{"known IP over the limit", users.Normal, []string{"1.1.1.1", "2.2.2.2"}, nil, 1, true, "2.2.2.2", users.IPKnown},
		{"unlimited by default", users.Normal, []string{"1.1.1.1", "2.2.2.2"}, nil, 0, false, "3.3.3.3", users.IPAdded},
		{"under the default limit", users.Normal, []string{"1.1.1.1"}, nil, 2, false, "3.3.3.3", users.IPAdded},
		{"at the default limit", users.Normal, []string{"1.1.1.1", "2.2.2.2"}, nil, 2, false, "3.3.3.3", users.IPRefused},
		{"at the limit with auto-ban", users.Normal, []string{"1.1.1.1", "2.2.2.2"}, nil, 2, true, "3.3.3.3", users.IPBanned},
		{"own limit above the default", users.Normal, []string{"1.1.1.1", "2.2.2.2"}, ptr(3), 2, true, "3.3.3.3", users.IPAdded},
		{"own limit below the default", users.Normal, []string{"1.1.1.1"}, ptr(1), 5, false, "3.3.3.3", users.IPRefused},
		{"own limit 0 is unlimited", users.Normal, []string{"1.1.1.1", "2.2.2.2"}, ptr(0), 1, true, "3.3.3.3", users.IPAdded},
		{"special users exempt", users.Special, []string{"1.1.1.1", "2.2.2.2"}, ptr(1), 1, true, "3.3.3.3", users.IPAdded},
		{"temporary users limited", users.Temporary, []string{"1.1.1.1"}, nil, 1, false, "2001:db8::1", users.IPRefused},
		{"first IP with limit 1", users.Normal, nil, nil, 1, true, "1.1.1.1", users.IPAdded},
		{"new address of a recorded IPv6 /64", users.Normal, []string{"2001:db8:1:2::1", "2001:db8:1:2::2"}, nil, 1, true, "2001:db8:1:2:a:b:c:d", users.IPAdded},
		{"new IPv6 /64 under the limit", users.Normal, []string{"2001:db8:1:2::1", "2001:db8:1:2::2"}, nil, 2, true, "2001:db8:1:3::1", users.IPAdded},
		{"new IPv6 /64 at the limit", users.Normal, []string{"2001:db8:1:2::1", "2001:db8:1:2::2"}, nil, 1, false, "2001:db8:1:3::1", users.IPRefused},
		{"new IPv6 /64 at the limit with auto-ban", users.Normal, []string{"2001:db8:1:2::1", "2001:db8:1:2::2"}, nil, 1, true, "2001:db8:1:3::1", users.IPBanned},
		{"IPv4 addresses count apart", users.Normal, []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "203.0.113.1"}, nil, 2, false, "203.0.113.2", users.IPRefused},
		{"IPv4 under the limit beside a /64", users.Normal, []string{"2001:db8:1:2::1", "2001:db8:1:2::2"}, nil, 2, false, "203.0.113.1", users.IPAdded},
		{"same RisuAI user in a recorded /64", users.Normal, []string{users.RisuIP("7", "2001:db8:1:2::1")}, nil, 1, true, users.RisuIP("7", "2001:db8:1:2::2"), users.IPAdded},
		{"another RisuAI user in the /64", users.Normal, []string{users.RisuIP("7", "2001:db8:1:2::1"), users.RisuIP("7", "2001:db8:1:2::2")}, nil, 1, false, users.RisuIP("8", "2001:db8:1:2::3"), users.IPRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := users.New("tok", tt.typ, t0, nil)
			u.IP = slices.Clone(tt.have)
			if u.IP == nil {
				u.IP = []string{}
			}
			u.MaxIPs = tt.maxIPs
			before := u.Clone()
			got := users.AdmitIP(u, tt.ip, tt.defaultMax, tt.autoBan, t0)
			if got != tt.want {
				t.Fatalf("verdict = %v, want %v", got, tt.want)
			}
			after := before.Clone()
			switch got {
			case users.IPAdded:
				after.IP = append(after.IP, tt.ip)
			case users.IPBanned:
				after.DisabledAt = t0.UnixMilli()
				after.DisabledReason = users.IPLimitReason
			}
			if !reflect.DeepEqual(u, after) {
				t.Errorf("user after %v:\n got %+v\nwant %+v", got, u, after)
			}
		})
	}
}

func TestUserMethods(t *testing.T) {
	u := users.New("tok", users.Temporary, t0, map[string]int64{"gpt4o": 10, "claude": 0, "o1": -1})
	if !maps.Equal(u.TokenLimits, map[string]int64{"gpt4o": 10}) {
		t.Errorf("New limits = %v: only positive defaults", u.TokenLimits)
	}
	if u.IP == nil || u.TokenCounts == nil || u.CreatedAt != t0.UnixMilli() || u.Type != users.Temporary {
		t.Errorf("New = %+v", u)
	}
	// Expired only for temporary users with an expiry, at or after it.
	u.ExpiresAt = t0.Add(time.Hour).UnixMilli()
	for _, c := range []struct {
		typ  users.Type
		exp  int64
		at   time.Time
		want bool
	}{
		{users.Temporary, u.ExpiresAt, t0, false},
		{users.Temporary, u.ExpiresAt, t0.Add(time.Hour - time.Millisecond), false},
		{users.Temporary, u.ExpiresAt, t0.Add(time.Hour), true},
		{users.Temporary, 0, t0.Add(1000 * time.Hour), false},
		{users.Normal, u.ExpiresAt, t0.Add(2 * time.Hour), false},
		{users.Special, u.ExpiresAt, t0.Add(2 * time.Hour), false},
	} {
		v := &users.User{Type: c.typ, ExpiresAt: c.exp}
		if got := v.Expired(c.at); got != c.want {
			t.Errorf("Expired(%s, exp %d, at %s) = %v", c.typ, c.exp, c.at, got)
		}
	}
	// Refreshable reads meta.refreshable, and only a true bool.
	for _, c := range []struct {
		meta map[string]any
		want bool
	}{
		{map[string]any{"refreshable": true}, true},
		{map[string]any{"refreshable": false}, false},
		{map[string]any{"refreshable": "true"}, false},
		{map[string]any{}, false},
		{nil, false},
	} {
		if got := (&users.User{Meta: c.meta}).Refreshable(); got != c.want {
			t.Errorf("Refreshable(%v) = %v", c.meta, got)
		}
	}
	// Disable / Reactivate.
	u.Disable(t0, "r")
	if !u.Disabled() || u.DisabledReason != "r" || u.DisabledAt != t0.UnixMilli() {
		t.Errorf("Disable: %+v", u)
	}
	u.Reactivate()
	if u.Disabled() || u.DisabledReason != "" {
		t.Errorf("Reactivate: %+v", u)
	}
	// MaxIPsOr.
	if u.MaxIPsOr(7) != 7 {
		t.Error("MaxIPsOr without own limit")
	}
	u.MaxIPs = ptr(0)
	if u.MaxIPsOr(7) != 0 {
		t.Error("MaxIPsOr with own 0")
	}
	// Charge: counts add up, lastUsedAt never goes back.
	u.Charge("gpt4o", 100, t0.Add(time.Minute))
	u.Charge("gpt4o", 50, t0) // older, reported late
	u.Charge("claude", 0, t0)
	if u.PromptCount != 3 || u.TokenCounts["gpt4o"] != 150 || u.TokenCounts["claude"] != 0 || u.LastUsedAt != t0.Add(time.Minute).UnixMilli() {
		t.Errorf("Charge: %+v", u)
	}
	bare := &users.User{}
	bare.Charge("x", 1, t0)
	if bare.TokenCounts["x"] != 1 {
		t.Error("Charge on a bare user")
	}
	// Normalize.
	n := &users.User{}
	n.Normalize()
	if n.IP == nil || n.TokenCounts == nil || n.TokenLimits == nil || n.Type != users.Normal || n.TokenRefresh != nil || n.Meta != nil {
		t.Errorf("Normalize = %+v", n)
	}
}

func TestCloneSharesNothing(t *testing.T) {
	u := &users.User{
		Token: "t", IP: []string{"1.1.1.1"}, TokenCounts: map[string]int64{"a": 1}, TokenLimits: map[string]int64{"a": 2},
		TokenRefresh: map[string]int64{"a": 3}, MaxIPs: ptr(4),
		Meta: map[string]any{"list": []any{map[string]any{"k": "v"}}, "m": map[string]any{"x": 1.0}},
	}
	c := u.Clone()
	if !reflect.DeepEqual(u, c) {
		t.Fatalf("clone differs: %+v", c)
	}
	c.IP[0] = "9.9.9.9"
	c.TokenCounts["a"] = 9
	c.TokenLimits["a"] = 9
	c.TokenRefresh["a"] = 9
	*c.MaxIPs = 9
	c.Meta["list"].([]any)[0].(map[string]any)["k"] = "changed"
	c.Meta["m"].(map[string]any)["x"] = 9.0
	if u.IP[0] != "1.1.1.1" || u.TokenCounts["a"] != 1 || u.TokenLimits["a"] != 2 || u.TokenRefresh["a"] != 3 || *u.MaxIPs != 4 ||
		u.Meta["list"].([]any)[0].(map[string]any)["k"] != "v" || u.Meta["m"].(map[string]any)["x"] != 1.0 {
		t.Errorf("original changed through its clone: %+v", u)
	}
	var empty users.User
	if c := empty.Clone(); c.MaxIPs != nil || c.Meta != nil || c.TokenRefresh != nil {
		t.Errorf("clone of empty = %+v", c)
	}
}

func TestErrors(t *testing.T) {
	cause := errors.New("socket closed at 10.0.0.9")
	wrapped := fmt.Errorf("store: %w", &users.Error{Code: users.CodeUnavailable, Message: "down", Err: cause})
	if users.ErrorCode(wrapped) != users.CodeUnavailable || !errors.Is(wrapped, cause) {
		t.Errorf("ErrorCode/Is through wrapping failed")
	}
	if users.ErrorCode(cause) != users.CodeInternal {
		t.Error("plain error not internal")
	}
	ae := users.AsError(cause)
	if ae.Code != users.CodeInternal || strings.Contains(ae.Message, "10.0.0.9") || !errors.Is(ae, cause) {
		t.Errorf("AsError(plain) = %+v", ae)
	}
	if users.AsError(wrapped).Message != "down" {
		t.Error("AsError lost the application error")
	}
	if !users.IsNotFound(fmt.Errorf("x: %w", users.ErrNotFound)) || users.IsNotFound(cause) {
		t.Error("IsNotFound")
	}
	e := users.Errorf(users.CodeForbidden, "no %s", "way")
	if e.Error() != "forbidden: no way" {
		t.Errorf("Error() = %q", e.Error())
	}
	if got := (&users.Error{Code: users.CodeInternal, Message: "m", Err: cause}).Error(); got != "internal: m: socket closed at 10.0.0.9" {
		t.Errorf("Error() with cause = %q", got)
	}
}

// Without a limit the recorded addresses stop at MaxRecordedIPs, the
// oldest making way: a client moving through its IPv6 network cannot grow
// its record without end.
func TestAdmitIPKeepsTheLatestAddresses(t *testing.T) {
	for _, typ := range []users.Type{users.Normal, users.Special} {
		u := users.New("tok", typ, t0, nil)
		for i := range users.MaxRecordedIPs + 10 {
			if v := users.AdmitIP(u, fmt.Sprintf("2001:db8::%x", i), 0, false, t0); v != users.IPAdded {
				t.Fatalf("%s, address %d: %v", typ, i, v)
			}
		}
		if n := len(u.IP); n != users.MaxRecordedIPs {
			t.Fatalf("%s: %d addresses recorded, want %d", typ, n, users.MaxRecordedIPs)
		}
		if u.IP[0] != "2001:db8::a" || u.IP[len(u.IP)-1] != fmt.Sprintf("2001:db8::%x", users.MaxRecordedIPs+9) {
			t.Errorf("%s: kept %s … %s, want the latest", typ, u.IP[0], u.IP[len(u.IP)-1])
		}
	}
}

// At the cap the oldest address of a network recorded again later makes
// way, not the only address of another: the record keeps every network the
// IP limit counts (an IPv6 /64, a RisuAI user's network, an IPv4 address).
func TestAdmitIPKeepsEveryNetworkAtTheCap(t *testing.T) {
	lone := []string{"198.51.100.1", "2001:db8:1:1::1", users.RisuIP("7", "2001:db8:2:2::1")}
	u := users.New("tok", users.Normal, t0, nil)
	u.IP = slices.Clone(lone)
	for i := range users.MaxRecordedIPs + 10 {
		if v := users.AdmitIP(u, fmt.Sprintf("2001:db8:9:9::%x", i), 0, false, t0); v != users.IPAdded {
			t.Fatalf("address %d: %v", i, v)
		}
	}
	if n := len(u.IP); n != users.MaxRecordedIPs {
		t.Fatalf("%d addresses recorded, want %d", n, users.MaxRecordedIPs)
	}
	if !slices.Equal(u.IP[:len(lone)], lone) {
		t.Errorf("the only addresses of their networks made way: record starts %v", u.IP[:len(lone)])
	}
	if last := u.IP[len(u.IP)-1]; last != fmt.Sprintf("2001:db8:9:9::%x", users.MaxRecordedIPs+9) {
		t.Errorf("latest address %s not kept", last)
	}
}

// An IPv6 client moves through the addresses of its /64 (temporary
// addresses, RFC 8981): they take one place under the IP limit, and each
// is recorded. A second /64 past the limit is refused, or disables the
// user with auto-ban; IPv4 addresses take a place each, as before.
func TestAdmitIPCountsAnIPv6Slash64Once(t *testing.T) {
	type step struct {
		ip   string
		want users.IPVerdict
	}
	tests := []struct {
		name    string
		max     int64
		autoBan bool
		steps   []step
	}{
		{"one /64 under a limit of 1, with auto-ban", 1, true, []step{
			{"2001:db8:1:2::1", users.IPAdded}, {"2001:db8:1:2::2", users.IPAdded},
			{"2001:db8:1:2:8a2e:370:7334:1", users.IPAdded}, {"2001:db8:1:2::1", users.IPKnown},
		}},
		{"a second /64 past a limit of 1 is refused", 1, false, []step{
			{"2001:db8:1:2::1", users.IPAdded}, {"2001:db8:1:2::2", users.IPAdded},
			{"2001:db8:1:3::1", users.IPRefused}, {"2001:db8:1:2::3", users.IPAdded},
		}},
		{"a second /64 past a limit of 1 bans", 1, true, []step{
			{"2001:db8:1:2::1", users.IPAdded}, {"2001:db8:1:2::2", users.IPAdded},
			{"2001:db8:1:3::1", users.IPBanned},
		}},
		{"IPv4 addresses each take a place", 2, false, []step{
			{"2001:db8:1:2::1", users.IPAdded}, {"2001:db8:1:2::2", users.IPAdded},
			{"203.0.113.1", users.IPAdded}, {"203.0.113.2", users.IPRefused}, {"2001:db8:1:2::3", users.IPAdded},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := users.New("tok", users.Normal, t0, nil)
			var recorded []string
			for i, s := range tt.steps {
				if got := users.AdmitIP(u, s.ip, tt.max, tt.autoBan, t0); got != s.want {
					t.Fatalf("step %d, %s: %v, want %v", i, s.ip, got, s.want)
				}
				if s.want == users.IPAdded {
					recorded = append(recorded, s.ip)
				}
			}
			if !slices.Equal(u.IP, recorded) {
				t.Errorf("recorded %v, want %v", u.IP, recorded)
			}
			if banned := tt.steps[len(tt.steps)-1].want == users.IPBanned; u.Disabled() != banned {
				t.Errorf("disabled = %v, want %v", u.Disabled(), banned)
			}
		})
	}
}

// With a limit, the cap keeps every counted network too: a client moving
// through one /64 never frees the place of another, so a third network
// stays refused past a limit of 2.
func TestAdmitIPCapKeepsTheLimit(t *testing.T) {
	u := users.New("tok", users.Normal, t0, nil)
	if v := users.AdmitIP(u, "2001:db8:1:1::1", 2, false, t0); v != users.IPAdded {
		t.Fatalf("first network: %v", v)
	}
	for i := range users.MaxRecordedIPs + 10 {
		if v := users.AdmitIP(u, fmt.Sprintf("2001:db8:9:9::%x", i), 2, false, t0); v != users.IPAdded {
			t.Fatalf("address %d of the second network: %v", i, v)
		}
	}
	if len(u.IP) != users.MaxRecordedIPs || u.IP[0] != "2001:db8:1:1::1" {
		t.Fatalf("%d recorded, first %s: the first network made way", len(u.IP), u.IP[0])
	}
	if v := users.AdmitIP(u, "2001:db8:5:5::1", 2, true, t0); v != users.IPBanned {
		t.Errorf("a third network past a limit of 2: %v, want banned", v)
	}
}

// Some IPv6 addresses are an IPv4 client's, written into a prefix that
// many clients share: Teredo (2001::/32: the server's address and flags,
// then the client's port and IPv4 address, inverted) and NAT64/SIIT
// (64:ff9b::/96, RFC 6052; the local-use 64:ff9b:1::/48, RFC 8215). One
// such /64 holds clients anywhere, so the IP limit counts each client's
// IPv4 address, and the same client over IPv4 takes no second place.
// 6to4 (2002::/16) gives each IPv4 client a /48 of its own, so its /64s
// stay apart as they are.
func TestAdmitIPCountsEmbeddedIPv4ClientsApart(t *testing.T) {
	// Teredo clients of the server 192.0.2.1: 198.51.100.1 (ports 4096
	// and 4097) and 203.0.113.7 (port 4096).
	const (
		teredoA      = "2001:0:c000:201:0:efff:39cc:9bfe"
		teredoAPort2 = "2001:0:c000:201:0:effe:39cc:9bfe"
		teredoB      = "2001:0:c000:201:0:efff:34ff:8ef8"
	)
	tests := []struct {
		name string
		have []string
		ip   string
		want users.IPVerdict
	}{
		{"second Teredo client of one server", []string{teredoA}, teredoB, users.IPRefused},
		{"a Teredo client's second port", []string{teredoA}, teredoAPort2, users.IPAdded},
		{"a Teredo client over IPv4", []string{teredoA}, "198.51.100.1", users.IPAdded},
		{"an IPv4 client over Teredo", []string{"198.51.100.1"}, teredoA, users.IPAdded},
		{"second IPv4 client through NAT64", []string{"64:ff9b::198.51.100.1"}, "64:ff9b::203.0.113.7", users.IPRefused},
		{"a NAT64 client over IPv4", []string{"64:ff9b::198.51.100.1"}, "198.51.100.1", users.IPAdded},
		{"second client through a local-use NAT64 prefix", []string{"64:ff9b:1::c633:6401"}, "64:ff9b:1::cb00:7107", users.IPRefused},
		{"second 6to4 site", []string{"2002:c633:6401::1"}, "2002:cb00:7107::1", users.IPRefused},
		{"a 6to4 site's second /64", []string{"2002:c633:6401::1"}, "2002:c633:6401:1::1", users.IPRefused},
		{"a 6to4 /64's second address", []string{"2002:c633:6401::1"}, "2002:c633:6401::2", users.IPAdded},
		{"second RisuAI user through NAT64", []string{users.RisuIP("7", "64:ff9b::198.51.100.1")}, users.RisuIP("7", "64:ff9b::203.0.113.7"), users.IPRefused},
		{"a native /64 after a Teredo client", []string{teredoA}, "2001:db8:1:2::1", users.IPRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := users.New("tok", users.Normal, t0, nil)
			u.IP = slices.Clone(tt.have)
			if got := users.AdmitIP(u, tt.ip, 1, false, t0); got != tt.want {
				t.Fatalf("%s after %v under a limit of 1: %v, want %v", tt.ip, tt.have, got, tt.want)
			}
			if n := u.IPsCounted(); n != 1 {
				t.Errorf("%v counted as %d places, want 1", u.IP, n)
			}
		})
	}
}
