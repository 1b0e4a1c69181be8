package gatekeeper_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

const (
	adminKey = "admin-key-0123456789"
	proxyKey = "proxy-key-0123456789"
	tokA     = "11111111-1111-4111-8111-111111111111"
	tokB     = "22222222-2222-4222-8222-222222222222"
	clientIP = "198.51.100.7"
)

// t0 is a Sunday 10:30 UTC; boundaries of "hourly" are at :00.
var t0 = time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	gk    *gatekeeper.Gatekeeper
	store users.Store
	mem   *memory.Store
	clock *clock
	cfg   *config.Config
}

func newFixture(t *testing.T, env map[string]string) *fixture {
	t.Helper()
	return newFixtureOn(t, env, nil)
}

// newFixtureOn builds a gatekeeper over wrap(memory store), or the memory
// store itself when wrap is nil.
func newFixtureOn(t *testing.T, env map[string]string, wrap func(*memory.Store) users.Store) *fixture {
	t.Helper()
	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	mem := memory.New()
	var store users.Store = mem
	if wrap != nil {
		store = wrap(mem)
	}
	c := &clock{t: t0}
	return &fixture{gk: gatekeeper.New(cfg, store, c.Now), store: store, mem: mem, clock: c, cfg: cfg}
}

func userEnv(extra ...string) map[string]string {
	env := map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": adminKey}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// addUser stores a normal user created at t0 with defaults, then edit.
func (f *fixture) addUser(t *testing.T, token string, edit func(u *users.User)) {
	t.Helper()
	_, err := f.mem.Modify(ctx(t), token, true, func(u *users.User, _ bool) error {
		*u = *users.New(token, users.Normal, t0, f.cfg.TokenQuota)
		if edit != nil {
			edit(u)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) user(t *testing.T, token string) *users.User {
	t.Helper()
	u, err := f.mem.Get(ctx(t), token)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// request comes through one trusted proxy (TRUSTED_PROXIES=1) from ip.
func request(ip, bearer string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/openai/v1/chat/completions", nil)
	r.RemoteAddr = "10.0.0.1:443"
	r.Header.Set("X-Forwarded-For", "6.6.6.6, "+ip) // leftmost is the client's own forgery
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	return r
}

func (f *fixture) auth(t *testing.T, ip, token string) (*gatekeeper.Principal, error) {
	t.Helper()
	return f.gk.Authenticate(ctx(t), request(ip, token))
}

func wantCode(t *testing.T, err error, code users.Code, msg string) *users.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s %q", code, msg)
	}
	var e *users.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not a *users.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%v), want %s", e.Code, err, code)
	}
	if msg != "" && e.Message != msg {
		t.Fatalf("message = %q, want %q", e.Message, msg)
	}
	return e
}

func TestExtractToken(t *testing.T) {
	tests := []struct {
		name      string
		headers   map[string]string
		query     string
		want      string
		wantQuery string
	}{
		{name: "nothing", query: "a=1", want: "", wantQuery: "a=1"},
		{name: "bearer", headers: map[string]string{"Authorization": "Bearer tok"}, want: "tok"},
		{name: "bearer any case, extra spaces", headers: map[string]string{"Authorization": "  bEaReR    tok  "}, want: "tok"},
		{name: "x-api-key", headers: map[string]string{"x-api-key": " tok "}, want: "tok"},
		{name: "x-goog-api-key", headers: map[string]string{"x-goog-api-key": "tok"}, want: "tok"},
		{name: "query key, others kept in order", query: "z=9&alt=sse&key=tok&b=a%2Fb", want: "tok", wantQuery: "z=9&alt=sse&b=a%2Fb"},
		{name: "query key only", query: "key=tok", want: "tok", wantQuery: ""},
		{name: "escaped query key", query: "k%65y=tok&alt=sse", want: "tok", wantQuery: "alt=sse"},
		{name: "escaped query value", query: "key=a%2Bb", want: "a+b", wantQuery: ""},
		{name: "repeated query key: first wins, all removed", query: "key=a&x=1&key=b", want: "a", wantQuery: "x=1"},
		{name: "empty query key then another", query: "key=&key=b", want: "b", wantQuery: ""},
		{name: "look-alike params untouched", query: "apikey=x&monkey=y&keys=z", want: "", wantQuery: "apikey=x&monkey=y&keys=z"},
		{name: "all four: bearer first", headers: map[string]string{"Authorization": "Bearer one", "x-api-key": "two", "x-goog-api-key": "three"}, query: "key=four&alt=sse", want: "one", wantQuery: "alt=sse"},
		{name: "api key before goog and query", headers: map[string]string{"x-api-key": "two", "x-goog-api-key": "three"}, query: "key=four", want: "two"},
		{name: "goog before query", headers: map[string]string{"x-goog-api-key": "three"}, query: "key=four", want: "three"},
		{name: "non-bearer authorization ignored but removed", headers: map[string]string{"Authorization": "Basic dXNlcjpwYXNz", "x-api-key": "two"}, want: "two"},
		{name: "empty bearer falls through", headers: map[string]string{"Authorization": "Bearer ", "x-goog-api-key": "three"}, want: "three"},
		{name: "blank api key falls through", headers: map[string]string{"x-api-key": "  "}, query: "key=four", want: "four"},
		{name: "bare authorization value", headers: map[string]string{"Authorization": "tok"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/google-ai/v1beta/models", nil)
			r.URL.RawQuery = tt.query
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("Content-Type", "application/json")
			if got := gatekeeper.ExtractToken(r); got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
			for _, h := range []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"} {
				if v := r.Header.Values(h); len(v) != 0 {
					t.Errorf("%s still present: %q", h, v)
				}
			}
			if r.Header.Get("Content-Type") != "application/json" {
				t.Error("another header was removed")
			}
			if r.URL.Query().Has("key") {
				t.Errorf("key still in query %q", r.URL.RawQuery)
			}
			wantQuery := tt.wantQuery
			if wantQuery == "" && !strings.Contains(tt.query, "key") {
				wantQuery = tt.query
			}
			if r.URL.RawQuery != wantQuery {
				t.Errorf("query = %q, want %q", r.URL.RawQuery, wantQuery)
			}
		})
	}
}

func TestAuthenticateModes(t *testing.T) {
	none := map[string]string{}
	noneWithAdmin := map[string]string{"ADMIN_KEY": adminKey}
	pk := map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey, "ADMIN_KEY": adminKey}
	pkNoAdmin := map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey}
	ut := userEnv()
	black := func(env map[string]string) map[string]string {
		env = maps.Clone(env)
		env["IP_BLACKLIST"] = "198.51.100.0/24, 2001:db8::/32"
		return env
	}
	const (
		pass  = users.Code("")
		admin = users.Code("admin")
	)
	tests := []struct {
		name  string
		env   map[string]string
		ip    string
		token string
		want  users.Code // pass, admin, or the error's code
		msg   string
	}{
		{"none: no token", none, clientIP, "", pass, ""},
		{"none: any token", none, clientIP, "whatever", pass, ""},
		{"none: admin key", noneWithAdmin, clientIP, adminKey, admin, ""},
		{"none without ADMIN_KEY: token is not admin", none, clientIP, "x", pass, ""},
		{"proxy_key: right key", pk, clientIP, proxyKey, pass, ""},
		{"proxy_key: admin key", pk, clientIP, adminKey, admin, ""},
		{"proxy_key: wrong key", pk, clientIP, "wrong", users.CodeUnauthorized, "Invalid proxy key."},
		{"proxy_key: key prefix", pk, clientIP, proxyKey[:len(proxyKey)-1], users.CodeUnauthorized, "Invalid proxy key."},
		{"proxy_key: key plus suffix", pk, clientIP, proxyKey + "0", users.CodeUnauthorized, "Invalid proxy key."},
		{"proxy_key: missing", pk, clientIP, "", users.CodeUnauthorized, "Missing proxy key: send it as a Bearer token or an API key."},
		{"proxy_key without ADMIN_KEY: right key", pkNoAdmin, clientIP, proxyKey, pass, ""},
		{"user_token: admin key", ut, clientIP, adminKey, admin, ""},
		{"user_token: missing", ut, clientIP, "", users.CodeUnauthorized, "Missing user token: send it as a Bearer token or an API key."},
		{"user_token: malformed", ut, clientIP, "not a token!", users.CodeUnauthorized, "Invalid user token."},
		{"user_token: unknown", ut, clientIP, tokB, users.CodeUnauthorized, "Invalid user token."},
		{"user_token: proxy key is no user", userEnv("PROXY_KEY", proxyKey), clientIP, proxyKey, users.CodeUnauthorized, "Invalid user token."},
		{"user_token: known", ut, clientIP, tokA, pass, ""},
		{"blacklist none", black(none), clientIP, "", users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."},
		{"blacklist none admin", black(noneWithAdmin), clientIP, adminKey, users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."},
		{"blacklist proxy_key right key", black(pk), clientIP, proxyKey, users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."},
		{"blacklist proxy_key admin", black(pk), clientIP, adminKey, users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."},
		{"blacklist user_token admin", black(ut), clientIP, adminKey, users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."},
		{"blacklist user_token user", black(ut), clientIP, tokA, users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."},
		{"blacklist v6", black(ut), "2001:db8::9", tokA, users.CodeForbidden, "Forbidden (by IP_BLACKLIST)."},
		{"blacklist other address passes", black(ut), "203.0.113.1", tokA, pass, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.env)
			f.addUser(t, tokA, nil)
			r := request(tt.ip, tt.token)
			r.URL.RawQuery = "key=" + tt.token + "&alt=sse"
			p, err := f.gk.Authenticate(ctx(t), r)
			if h := r.Header.Get("Authorization"); h != "" || r.URL.RawQuery != "alt=sse" {
				t.Errorf("token left in the request: Authorization %q, query %q", h, r.URL.RawQuery)
			}
			switch tt.want {
			case pass, admin:
				if err != nil {
					t.Fatalf("error %v, want a principal", err)
				}
				if p.IP != tt.ip {
					t.Errorf("IP = %q, want %q", p.IP, tt.ip)
				}
				if tt.want == admin {
					if !p.Admin || !p.Exempt || p.Token != "" {
						t.Errorf("admin principal = %+v", p)
					}
					return
				}
				if p.Admin {
					t.Errorf("principal is admin: %+v", p)
				}
				if f.cfg.Gatekeeper == config.ModeUserToken {
					if limits, _ := p.Quota(); p.Token != tt.token || p.Key != tt.token || limits["gpt4o"] != f.user(t, tt.token).TokenLimits["gpt4o"] || p.Exempt {
						t.Errorf("user principal = %+v", p)
					}
				} else if limits, _ := p.Quota(); p.Key != "ip:"+tt.ip || len(limits) != 0 || p.Token != "" || p.Exempt {
					t.Errorf("principal = %+v, want keyed by IP", p)
				}
			default:
				if p != nil {
					t.Errorf("principal %+v with error", p)
				}
				wantCode(t, err, tt.want, tt.msg)
			}
		})
	}
}

func TestAuthenticateUserState(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		edit func(u *users.User)
		at   time.Time
		code users.Code // "" passes
		msg  string
	}{
		{"normal", userEnv(), nil, t0, "", ""},
		{"disabled with reason", userEnv(), func(u *users.User) { u.Disable(t0, "Sharing the token.") }, t0, users.CodeForbidden, "Your token has been disabled: Sharing the token."},
		{"disabled without reason", userEnv(), func(u *users.User) { u.DisabledAt = t0.UnixMilli() }, t0, users.CodeForbidden, "Your token has been disabled: no reason given"},
		{"temporary before expiry", userEnv(), func(u *users.User) {
			u.Type = users.Temporary
			u.ExpiresAt = t0.Add(time.Hour).UnixMilli()
		}, t0.Add(time.Hour - time.Millisecond), "", ""},
		{"temporary at expiry", userEnv(), func(u *users.User) {
			u.Type = users.Temporary
			u.ExpiresAt = t0.Add(time.Hour).UnixMilli()
		}, t0.Add(time.Hour), users.CodeForbidden, "Temporary token expired."},
		{"temporary long expired, not yet swept", userEnv(), func(u *users.User) {
			u.Type = users.Temporary
			u.ExpiresAt = t0.Add(time.Minute).UnixMilli()
		}, t0.Add(72 * time.Hour), users.CodeForbidden, "Temporary token expired."},
		{"expired temporary already disabled shows the reason", userEnv(), func(u *users.User) {
			u.Type = users.Temporary
			u.ExpiresAt = t0.UnixMilli()
			u.Disable(t0, users.ExpiredReason)
		}, t0.Add(time.Hour), users.CodeForbidden, "Your token has been disabled: Temporary token expired."},
		{"normal user with a past expiresAt is not expired", userEnv(), func(u *users.User) { u.ExpiresAt = t0.UnixMilli() }, t0.Add(time.Hour), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.env)
			f.addUser(t, tokA, tt.edit)
			f.clock.Set(tt.at)
			p, err := f.auth(t, clientIP, tokA)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if u := f.user(t, tokA); p.Token != tokA || !u.HasIP(clientIP) {
					t.Errorf("principal %+v, user %+v", p, u)
				}
				return
			}
			wantCode(t, err, tt.code, tt.msg)
			if u := f.user(t, tokA); len(u.IP) != 0 {
				t.Errorf("a refused request recorded its IP: %v", u.IP)
			}
		})
	}
}

func TestIPLimit(t *testing.T) {
	const refused = "IP address limit exceeded for this token."
	const banned = "Your token has been disabled: IP address limit exceeded."
	maxIPs := func(n int64) func(u *users.User) { return func(u *users.User) { u.MaxIPs = &n } }
	special := func(u *users.User) { u.Type = users.Special }
	v4 := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "2001:db8::4", "203.0.113.5"}
	// One IPv6 client's temporary addresses (RFC 8981), all in 2001:db8:1:2::/64.
	v6 := []string{"2001:db8:1:2::1", "2001:db8:1:2:8a2e:370:7334:1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::5"}
	other64 := "2001:db8:1:3::1"
	tests := []struct {
		name string
		env  map[string]string
		edit func(u *users.User)
		ips  []string
		// per request from ips[i]: "" passes (and its address is
		// recorded), else the message
		want       []string
		wantBanned bool
	}{
		{"unlimited by default", userEnv(), nil, v4, []string{"", "", "", "", ""}, false},
		{"limit 2 refuses the third", userEnv("MAX_IPS_PER_USER", "2"), nil, v4, []string{"", "", refused, refused, refused}, false},
		{"limit 2 with auto-ban disables", userEnv("MAX_IPS_PER_USER", "2", "MAX_IPS_AUTO_BAN", "true"), nil, v4, []string{"", "", banned, banned, banned}, true},
		{"user maxIps 3 overrides default 2", userEnv("MAX_IPS_PER_USER", "2"), maxIPs(3), v4, []string{"", "", "", refused, refused}, false},
		{"user maxIps 1 overrides default 5", userEnv("MAX_IPS_PER_USER", "5"), maxIPs(1), v4, []string{"", refused, refused, refused, refused}, false},
		{"user maxIps 0 is unlimited", userEnv("MAX_IPS_PER_USER", "1", "MAX_IPS_AUTO_BAN", "true"), maxIPs(0), v4, []string{"", "", "", "", ""}, false},
		{"special users are exempt", userEnv("MAX_IPS_PER_USER", "1", "MAX_IPS_AUTO_BAN", "true"), special, v4, []string{"", "", "", "", ""}, false},
		// An IPv6 /64 is one place under the limit, as one client for lockouts.
		{"one IPv6 /64 under limit 1 with auto-ban", userEnv("MAX_IPS_PER_USER", "1", "MAX_IPS_AUTO_BAN", "true"), nil, v6, []string{"", "", "", ""}, false},
		{"user maxIps 1 counts a /64 once", userEnv(), maxIPs(1), v6, []string{"", "", "", ""}, false},
		{"a second /64 past limit 1 is refused", userEnv("MAX_IPS_PER_USER", "1"), nil,
			[]string{v6[0], v6[1], other64, v6[2]}, []string{"", "", refused, ""}, false},
		{"a second /64 past limit 1 with auto-ban disables", userEnv("MAX_IPS_PER_USER", "1", "MAX_IPS_AUTO_BAN", "true"), nil,
			[]string{v6[0], v6[1], other64, v6[2]}, []string{"", "", banned, banned}, true},
		{"IPv4 addresses count one each beside a /64", userEnv("MAX_IPS_PER_USER", "2"), nil,
			[]string{v6[0], v6[1], "203.0.113.1", "203.0.113.2", v6[2]}, []string{"", "", "", refused, ""}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.env)
			f.addUser(t, tokA, tt.edit)
			var passed []string
			for i, ip := range tt.ips {
				p, err := f.auth(t, ip, tokA)
				if tt.want[i] == "" {
					if err != nil {
						t.Fatalf("request %d from %s: %v", i, ip, err)
					}
					if p.Token != tokA || !f.user(t, tokA).HasIP(ip) {
						t.Errorf("the admitted user lacks its new IP %s", ip)
					}
					passed = append(passed, ip)
					continue
				}
				wantCode(t, err, users.CodeForbidden, tt.want[i])
			}
			u := f.user(t, tokA)
			if !slices.Equal(u.IP, passed) {
				t.Errorf("IPs = %v, want the addresses let through, %v", u.IP, passed)
			}
			if u.Disabled() != tt.wantBanned {
				t.Errorf("disabled = %v, want %v", u.Disabled(), tt.wantBanned)
			}
			if tt.wantBanned && (u.DisabledReason != users.IPLimitReason || u.DisabledAt != t0.UnixMilli()) {
				t.Errorf("disabled %d %q, want at t0 with %q", u.DisabledAt, u.DisabledReason, users.IPLimitReason)
			}
			// A known IP still works unless the user was banned.
			_, err := f.auth(t, tt.ips[0], tokA)
			if (err == nil) == tt.wantBanned {
				t.Errorf("known IP after the limit: err = %v, banned %v", err, tt.wantBanned)
			}
		})
	}
}

func TestLazyQuotaRefresh(t *testing.T) {
	f := newFixture(t, userEnv("QUOTA_REFRESH_PERIOD", "hourly", "TOKEN_QUOTA_GPT4O", "1000", "TOKEN_QUOTA_CLAUDE", "500"))
	f.addUser(t, tokA, func(u *users.User) {
		u.TokenCounts = map[string]int64{"gpt4o": 900, "claude": 50, "gemini-pro": 7}
		u.TokenRefresh = map[string]int64{"claude": 200}
	})
	// 10:30 → 10:59: no boundary since creation.
	f.clock.Set(t0.Add(29 * time.Minute))
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Quota(); got["gpt4o"] != 1000 || got["claude"] != 500 || f.user(t, tokA).RefreshedAt != 0 {
		t.Fatalf("refreshed before the boundary: %v, refreshedAt %d", got, f.user(t, tokA).RefreshedAt)
	}
	// 11:05: the 11:00 boundary passed → limits = counts + q; counts kept.
	at := time.Date(2026, 3, 1, 11, 5, 0, 0, time.UTC)
	f.clock.Set(at)
	p, err = f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"gpt4o": 1900, "claude": 250}
	if limits, used := p.Quota(); !maps.Equal(limits, want) {
		t.Fatalf("limits after refresh = %v, want %v", limits, want)
	} else if used["gpt4o"] != 900 {
		t.Errorf("counts reset: %v", used)
	}
	stored := f.user(t, tokA)
	if !maps.Equal(stored.TokenLimits, want) || stored.RefreshedAt != at.UnixMilli() {
		t.Fatalf("stored limits %v refreshedAt %d", stored.TokenLimits, stored.RefreshedAt)
	}
	// Usage, then 11:50: no new boundary, so no second refresh.
	if err := f.gk.Charge(ctx(t), p, "gpt4o", 600); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(at.Add(45 * time.Minute))
	p, err = f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	if limits, _ := p.Quota(); limits["gpt4o"] != 1900 {
		t.Fatalf("refreshed twice within one period: %v", limits)
	}
	// 12:00 exactly is the next boundary.
	f.clock.Set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	p, err = f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	if limits, _ := p.Quota(); limits["gpt4o"] != 1500+1000 {
		t.Fatalf("limits at 12:00 = %v, want gpt4o 2500", limits)
	}
}

func TestLazyQuotaRefreshSkips(t *testing.T) {
	env := userEnv("QUOTA_REFRESH_PERIOD", "daily", "TOKEN_QUOTA_GPT4O", "1000")
	tests := []struct {
		name string
		env  map[string]string
		edit func(u *users.User)
	}{
		{"temporary users are not refreshed", env, func(u *users.User) {
			u.Type = users.Temporary
			u.ExpiresAt = t0.Add(72 * time.Hour).UnixMilli()
			u.Meta = map[string]any{"refreshable": true}
		}},
		{"no period, no refresh", userEnv("TOKEN_QUOTA_GPT4O", "1000"), nil},
		{"refreshed after the boundary already", env, func(u *users.User) {
			u.RefreshedAt = time.Date(2026, 3, 3, 0, 0, 1, 0, time.UTC).UnixMilli() // after the last boundary
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.env)
			f.addUser(t, tokA, func(u *users.User) {
				u.TokenCounts["gpt4o"] = 900
				if tt.edit != nil {
					tt.edit(u)
				}
			})
			before := f.user(t, tokA)
			f.clock.Set(t0.Add(48 * time.Hour))
			p, err := f.auth(t, clientIP, tokA)
			if err != nil {
				t.Fatal(err)
			}
			if limits, _ := p.Quota(); limits["gpt4o"] != 1000 {
				t.Errorf("limits = %v, want unchanged", limits)
			}
			if after := f.user(t, tokA); after.RefreshedAt != before.RefreshedAt {
				t.Errorf("refreshedAt changed %d → %d", before.RefreshedAt, after.RefreshedAt)
			}
		})
	}
}

func TestAdmitFamilyAndQuota(t *testing.T) {
	env := userEnv("ALLOWED_MODEL_FAMILIES", "gpt4o,claude", "TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "0")
	f := newFixture(t, env)
	f.addUser(t, tokA, func(u *users.User) {
		u.TokenLimits = map[string]int64{"gpt4o": 1000}
		u.TokenCounts = map[string]int64{"gpt4o": 900, "claude": 1e9}
	})
	f.addUser(t, tokB, func(u *users.User) {
		u.Type = users.Special
		u.TokenLimits = map[string]int64{"gpt4o": 1}
		u.TokenCounts = map[string]int64{"gpt4o": 900}
	})
	normal, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	special, err := f.auth(t, clientIP, tokB)
	if err != nil {
		t.Fatal(err)
	}
	if !special.Exempt {
		t.Fatal("special user is not exempt")
	}
	admin, err := f.auth(t, clientIP, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		p         *gatekeeper.Principal
		family    string
		requested int64
		code      users.Code
	}{
		{"within quota, to the token", normal, "gpt4o", 100, ""},
		{"one over quota", normal, "gpt4o", 101, users.CodeQuota},
		{"no limit for the family", normal, "claude", 1e6, ""},
		{"family not allowed", normal, "gpt4", 1, users.CodeForbidden},
		{"family not allowed, special too", special, "o1", 1, users.CodeForbidden},
		{"special exempt from quota", special, "gpt4o", 1e6, ""},
		{"admin may use any family", admin, "o1", 1e6, ""},
		{"admin may use image families", admin, "dall-e", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := f.gk.Admit(context.Background(), tt.p, tt.family, tt.requested)
			defer a.Release()
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Admit: %v", err)
				}
				return
			}
			e := wantCode(t, err, tt.code, "")
			switch tt.code {
			case users.CodeQuota:
				if e.Quota != 1000 || e.Used != 900 || e.Requested != tt.requested {
					t.Errorf("quota %d used %d requested %d", e.Quota, e.Used, e.Requested)
				}
				if !strings.Contains(e.Message, tt.family) {
					t.Errorf("message %q does not name the family", e.Message)
				}
			case users.CodeForbidden:
				if e.Message != "The "+tt.family+" model family is not allowed on this proxy." {
					t.Errorf("message %q", e.Message)
				}
			}
		})
	}
}

func TestAdmitRateLimit(t *testing.T) {
	env := userEnv("TEXT_MODEL_RATE_LIMIT", "2", "IMAGE_MODEL_RATE_LIMIT", "1", "USER_CONCURRENCY_LIMIT", "0",
		"ALLOWED_MODEL_FAMILIES", "gpt4o,claude,dall-e")
	f := newFixture(t, env)
	f.addUser(t, tokA, nil)
	f.addUser(t, tokB, nil)
	f.addUser(t, "33333333-3333-4333-8333-333333333333", func(u *users.User) { u.Type = users.Special })
	pa, _ := f.auth(t, clientIP, tokA)
	pb, _ := f.auth(t, clientIP, tokB)
	ps, _ := f.auth(t, clientIP, "33333333-3333-4333-8333-333333333333")

	admit := func(p *gatekeeper.Principal, family string) (*gatekeeper.Admission, error) {
		t.Helper()
		a, err := f.gk.Admit(context.Background(), p, family, 10)
		a.Release()
		return a, err
	}
	a, err := admit(pa, "gpt4o")
	if err != nil || a.Rate.Limit != 2 || a.Rate.Remaining != 1 || !a.Rate.Reset.Equal(t0.Add(time.Minute)) {
		t.Fatalf("first: %+v %v", a, err)
	}
	f.clock.Add(15 * time.Second)
	// Text families share one window per token.
	if a, err := admit(pa, "claude"); err != nil || a.Rate.Remaining != 0 {
		t.Fatalf("second: %+v %v", a, err)
	}
	a, err = admit(pa, "gpt4o")
	e := wantCode(t, err, users.CodeRateLimited, "")
	if e.RetryAfterSeconds != 45 {
		t.Errorf("RetryAfterSeconds = %d, want 45", e.RetryAfterSeconds)
	}
	if a == nil || a.Rate.Allowed || a.Rate.Limit != 2 || a.Rate.Remaining != 0 {
		t.Errorf("refused admission's rate = %+v", a)
	}
	// Images have their own window, and so has every other token.
	if _, err := admit(pa, "dall-e"); err != nil {
		t.Fatalf("image after text limit: %v", err)
	}
	_, err = admit(pa, "dall-e")
	wantCode(t, err, users.CodeRateLimited, "")
	if _, err := admit(pb, "gpt4o"); err != nil {
		t.Fatalf("another token: %v", err)
	}
	// Special users are exempt.
	for range 10 {
		if _, err := admit(ps, "gpt4o"); err != nil {
			t.Fatalf("special: %v", err)
		}
	}
	// The window slides: at 60s the first request has left.
	f.clock.Set(t0.Add(59*time.Second + 600*time.Millisecond))
	_, err = admit(pa, "gpt4o")
	if e := wantCode(t, err, users.CodeRateLimited, ""); e.RetryAfterSeconds != 1 {
		t.Errorf("RetryAfterSeconds = %d with 0.4s to go, want at least 1", e.RetryAfterSeconds)
	}
	f.clock.Set(t0.Add(time.Minute))
	if _, err := admit(pa, "gpt4o"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestAdmitRateLimitByIPWithoutToken(t *testing.T) {
	for _, env := range []map[string]string{
		{"TEXT_MODEL_RATE_LIMIT": "1"},
		{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey, "TEXT_MODEL_RATE_LIMIT": "1"},
	} {
		f := newFixture(t, env)
		p1, err := f.auth(t, "203.0.113.1", proxyKey)
		if err != nil {
			t.Fatal(err)
		}
		p1again, _ := f.auth(t, "203.0.113.1", proxyKey)
		p2, _ := f.auth(t, "203.0.113.2", proxyKey)
		if a, err := f.gk.Admit(context.Background(), p1, "gpt4o", 1); err != nil {
			t.Fatal(err)
		} else {
			a.Release()
		}
		_, err = f.gk.Admit(context.Background(), p1again, "gpt4o", 1)
		wantCode(t, err, users.CodeRateLimited, "")
		if a, err := f.gk.Admit(context.Background(), p2, "gpt4o", 1); err != nil {
			t.Fatalf("%v: another IP limited: %v", env, err)
		} else {
			a.Release()
		}
	}
}

func TestAdmitConcurrency(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "1"))
	f.addUser(t, tokA, nil)
	f.addUser(t, tokB, func(u *users.User) { u.Type = users.Special })
	pa, _ := f.auth(t, clientIP, tokA)
	pb, _ := f.auth(t, clientIP, tokB)

	first, err := f.gk.Admit(context.Background(), pa, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.gk.Admit(context.Background(), pa, "claude", 1)
	wantCode(t, err, users.CodeConcurrency, "")
	// Special users are never limited.
	var held []*gatekeeper.Admission
	for range 5 {
		a, err := f.gk.Admit(context.Background(), pb, "gpt4o", 1)
		if err != nil {
			t.Fatalf("special: %v", err)
		}
		held = append(held, a)
	}
	first.Release()
	first.Release() // safe, and frees nothing more
	second, err := f.gk.Admit(context.Background(), pa, "gpt4o", 1)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_, err = f.gk.Admit(context.Background(), pa, "gpt4o", 1)
	wantCode(t, err, users.CodeConcurrency, "")
	second.Release()
	for _, a := range held {
		a.Release()
	}
	var nilAdmission *gatekeeper.Admission
	nilAdmission.Release() // must not panic
}

// failingStore is a users.Store whose reads or writes fail.
type failingStore struct {
	*memory.Store
	lookupErr, modifyErr error
}

func (s *failingStore) Lookup(ctx context.Context, token string, read func(*users.User)) error {
	if s.lookupErr != nil {
		return s.lookupErr
	}
	return s.Store.Lookup(ctx, token, read)
}

func (s *failingStore) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	if s.modifyErr != nil {
		return nil, s.modifyErr
	}
	return s.Store.Modify(ctx, token, create, fn)
}

func TestStoreOutage(t *testing.T) {
	down := errors.New("dial tcp 10.1.2.3:443: connection refused (db-secret-host)")
	already := users.Errorf(users.CodeUnavailable, "Database busy.")
	tests := []struct {
		name      string
		env       map[string]string
		lookupErr error
		modifyErr error
		knownIP   bool
		code      users.Code
		sameErr   error // the error must be this one, passed through
	}{
		{"lookup fails", userEnv(), down, nil, true, users.CodeUnavailable, nil},
		{"lookup fails with its own unavailable error", userEnv(), already, nil, true, users.CodeUnavailable, already},
		{"lookup deadline", userEnv(), context.DeadlineExceeded, nil, true, users.CodeUnavailable, nil},
		// Under a limit, a new network is admitted by a write of its own
		// (without one it is recorded with the next flush).
		{"recording a new IP fails", userEnv("MAX_IPS_PER_USER", "3"), nil, down, false, users.CodeUnavailable, nil},
		{"user deleted while recording its IP", userEnv("MAX_IPS_PER_USER", "3"), nil, users.ErrNotFound, false, users.CodeUnauthorized, nil},
		{"refresh fails", userEnv("QUOTA_REFRESH_PERIOD", "hourly"), nil, down, true, users.CodeUnavailable, nil},
		{"known IP, no write needed", userEnv(), nil, down, true, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureOn(t, tt.env, func(m *memory.Store) users.Store {
				return &failingStore{Store: m, lookupErr: tt.lookupErr, modifyErr: tt.modifyErr}
			})
			f.addUser(t, tokA, func(u *users.User) {
				if tt.knownIP {
					u.IP = []string{clientIP}
				}
			})
			f.clock.Add(2 * time.Hour)
			p, err := f.auth(t, clientIP, tokA)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if p != nil {
				t.Errorf("principal with error: %+v", p)
			}
			e := wantCode(t, err, tt.code, "")
			if tt.sameErr != nil && error(e) != tt.sameErr {
				t.Errorf("error %v, want %v passed through", e, tt.sameErr)
			}
			if tt.code == users.CodeUnavailable && tt.sameErr == nil {
				if strings.Contains(e.Message, "10.1.2.3") || strings.Contains(e.Message, "secret") {
					t.Errorf("client message leaks internals: %q", e.Message)
				}
				cause := tt.lookupErr
				if cause == nil {
					cause = tt.modifyErr
				}
				if !errors.Is(err, cause) {
					t.Errorf("cause %v not wrapped in %v", cause, err)
				}
			}
		})
	}
}

// countingStore counts usage writes.
type countingStore struct {
	*memory.Store
	mu    sync.Mutex
	usage int
}

func (s *countingStore) RecordUsage(ctx context.Context, token string, u users.Usage) error {
	s.mu.Lock()
	s.usage++
	s.mu.Unlock()
	return s.Store.RecordUsage(ctx, token, u)
}

func TestCharge(t *testing.T) {
	var cs *countingStore
	f := newFixtureOn(t, userEnv(), func(m *memory.Store) users.Store {
		cs = &countingStore{Store: m}
		return cs
	})
	f.addUser(t, tokA, func(u *users.User) { u.TokenCounts["gpt4o"] = 5 })
	p, err := f.auth(t, clientIP, tokA)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(3 * time.Second)
	if err := f.gk.Charge(ctx(t), p, "gpt4o", 150); err != nil {
		t.Fatal(err)
	}
	if err := f.gk.Charge(ctx(t), p, "claude", 7); err != nil {
		t.Fatal(err)
	}
	u := f.user(t, tokA)
	if u.PromptCount != 2 || u.TokenCounts["gpt4o"] != 155 || u.TokenCounts["claude"] != 7 {
		t.Errorf("after charge: prompts %d counts %v", u.PromptCount, u.TokenCounts)
	}
	if u.LastUsedAt != t0.Add(3*time.Second).UnixMilli() {
		t.Errorf("lastUsedAt = %d", u.LastUsedAt)
	}

	// Admin, none and proxy_key principals have no user to charge.
	admin, err := f.auth(t, clientIP, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	fn := newFixture(t, map[string]string{})
	anon, err := fn.auth(t, clientIP, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*gatekeeper.Principal{admin, anon} {
		if err := f.gk.Charge(ctx(t), p, "gpt4o", 1000); err != nil {
			t.Errorf("Charge(%+v): %v", p, err)
		}
	}
	if cs.usage != 2 {
		t.Errorf("usage writes = %d, want only the user's 2", cs.usage)
	}
	if u2 := f.user(t, tokA); u2.PromptCount != 2 {
		t.Errorf("admin request charged the user: %d", u2.PromptCount)
	}
}

// Authenticate, Admit and Charge from many goroutines: the IP limit holds
// and every charge lands.
func TestConcurrentRequests(t *testing.T) {
	f := newFixture(t, userEnv("MAX_IPS_PER_USER", "3", "TEXT_MODEL_RATE_LIMIT", "0", "USER_CONCURRENCY_LIMIT", "0"))
	f.addUser(t, tokA, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	charged := 0
	for i := range 40 {
		wg.Go(func() {
			ip := []string{"203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5"}[i%5]
			p, err := f.auth(t, ip, tokA)
			if err != nil {
				return
			}
			a, err := f.gk.Admit(context.Background(), p, "gpt4o", 1)
			if err != nil {
				t.Error(err)
				return
			}
			defer a.Release()
			if err := f.gk.Charge(context.Background(), p, "gpt4o", 10); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			charged++
			mu.Unlock()
		})
	}
	wg.Wait()
	u := f.user(t, tokA)
	if len(u.IP) != 3 {
		t.Errorf("IPs = %v, want 3", u.IP)
	}
	if u.PromptCount != int64(charged) || u.TokenCounts["gpt4o"] != int64(10*charged) {
		t.Errorf("prompts %d tokens %d, want %d charges", u.PromptCount, u.TokenCounts["gpt4o"], charged)
	}
}

func BenchmarkAuthenticateAdmit(b *testing.B) {
	cfg, err := config.FromMap(userEnv("TEXT_MODEL_RATE_LIMIT", "0"))
	if err != nil {
		b.Fatal(err)
	}
	mem := memory.New()
	mem.Modify(context.Background(), tokA, true, func(u *users.User, _ bool) error {
		*u = *users.New(tokA, users.Normal, t0, nil)
		u.IP = []string{clientIP}
		return nil
	})
	gk := gatekeeper.New(cfg, mem, func() time.Time { return t0 })
	b.ReportAllocs()
	for b.Loop() {
		p, err := gk.Authenticate(context.Background(), request(clientIP, tokA))
		if err != nil {
			b.Fatal(err)
		}
		a, err := gk.Admit(context.Background(), p, "gpt4o", 100)
		if err != nil {
			b.Fatal(err)
		}
		a.Release()
	}
}

// A request refused for concurrency never ran, so it must not use up the
// per-minute rate limit.
func TestConcurrencyRefusalKeepsRateBudget(t *testing.T) {
	f := newFixture(t, userEnv("TEXT_MODEL_RATE_LIMIT", "2", "USER_CONCURRENCY_LIMIT", "1"))
	f.addUser(t, tokA, nil)
	pa, _ := f.auth(t, clientIP, tokA)
	first, err := f.gk.Admit(context.Background(), pa, "gpt4o", 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		a, err := f.gk.Admit(context.Background(), pa, "gpt4o", 1)
		wantCode(t, err, users.CodeConcurrency, "")
		if a.Rate.Remaining != 1 {
			t.Fatalf("remaining after a concurrency refusal = %d, want 1", a.Rate.Remaining)
		}
	}
	first.Release()
	second, err := f.gk.Admit(context.Background(), pa, "gpt4o", 1)
	if err != nil {
		t.Fatalf("second request of a 2/min budget refused: %v", err)
	}
	second.Release()
}
