package gatekeeper_test

import (
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

const otherIP = "198.51.100.99"

func TestProxyKeyLockout(t *testing.T) {
	f := newFixture(t, map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey, "ADMIN_KEY": adminKey})
	for i := range ratelimit.KeyLockoutMax {
		_, err := f.auth(t, clientIP, "wrong-key-"+string(rune('a'+i)))
		wantCode(t, err, users.CodeUnauthorized, "Invalid proxy key.")
	}
	// Locked out: even the right keys are not looked at.
	for _, key := range []string{proxyKey, adminKey, "wrong-again"} {
		_, err := f.auth(t, clientIP, key)
		if e := wantCode(t, err, users.CodeRateLimited, "Too many failed keys from your address; try again later."); e.RetryAfterSeconds < 1 {
			t.Errorf("Retry-After %d", e.RetryAfterSeconds)
		}
	}
	// The lockout is per address.
	if _, err := f.auth(t, otherIP, proxyKey); err != nil {
		t.Fatalf("another address is locked out too: %v", err)
	}
	// The lock decays.
	f.clock.Add(ratelimit.KeyLockoutWindow + time.Second)
	if _, err := f.auth(t, clientIP, proxyKey); err != nil {
		t.Fatalf("lockout did not decay: %v", err)
	}
}

func TestAdminKeyOnlyFromTheWhitelist(t *testing.T) {
	modes := []map[string]string{
		{"GATEKEEPER": "user_token"},
		{"GATEKEEPER": "proxy_key", "PROXY_KEY": proxyKey},
		{"GATEKEEPER": "none"},
	}
	for _, env := range modes {
		t.Run(env["GATEKEEPER"], func(t *testing.T) {
			env["ADMIN_KEY"] = adminKey
			env["ADMIN_WHITELIST"] = "203.0.113.0/24"
			f := newFixture(t, env)
			p, err := f.auth(t, "203.0.113.9", adminKey)
			if err != nil || !p.Admin {
				t.Fatalf("admin key from the whitelist: %+v, %v", p, err)
			}
			// Elsewhere it is any wrong token: the answer tells nothing.
			p, err = f.auth(t, clientIP, adminKey)
			_, wrongErr := f.auth(t, otherIP, "not-the-admin-key-0000")
			switch env["GATEKEEPER"] {
			case "none":
				if err != nil || p.Admin || p.Exempt {
					t.Fatalf("admin key outside the whitelist: %+v, %v", p, err)
				}
			default:
				if users.ErrorCode(err) != users.CodeUnauthorized || err.Error() != wrongErr.Error() {
					t.Fatalf("admin key outside the whitelist: %v; a wrong key: %v", err, wrongErr)
				}
			}
		})
	}
}

func TestUserTokenModeLockout(t *testing.T) {
	f := newFixture(t, userEnv())
	f.addUser(t, tokA, nil)
	p, err := f.auth(t, clientIP, adminKey)
	if err != nil || !p.Admin {
		t.Fatalf("admin key before any failure: %+v %v", p, err)
	}
	for range ratelimit.KeyLockoutMax {
		_, err := f.auth(t, clientIP, "33333333-3333-4333-8333-333333333333")
		wantCode(t, err, users.CodeUnauthorized, "Invalid user token.")
	}
	// The admin key is refused as any unknown token is...
	_, adminErr := f.auth(t, clientIP, adminKey)
	_, wrongErr := f.auth(t, clientIP, "not-a-token")
	wantCode(t, adminErr, users.CodeRateLimited, "Too many failed keys from your address; try again later.")
	wantCode(t, wrongErr, users.CodeRateLimited, "Too many failed keys from your address; try again later.")
	// ... while a real user's token still works from that address, and a
	// missing token is told what is missing.
	if p, err := f.auth(t, clientIP, tokA); err != nil || p.Token != tokA {
		t.Fatalf("user token from a locked-out address: %+v %v", p, err)
	}
	_, err = f.auth(t, clientIP, "")
	wantCode(t, err, users.CodeUnauthorized, "Missing user token: send it as a Bearer token or an API key.")
	if p, err := f.auth(t, otherIP, adminKey); err != nil || !p.Admin {
		t.Fatalf("admin key from another address: %+v %v", p, err)
	}
}

func TestNoneModeLockout(t *testing.T) {
	f := newFixture(t, map[string]string{"GATEKEEPER": "none", "ADMIN_KEY": adminKey})
	for range ratelimit.KeyLockoutMax {
		p, err := f.auth(t, clientIP, "sk-anything")
		if err != nil || p.Admin {
			t.Fatalf("ordinary token: %+v %v", p, err)
		}
	}
	// Still served, but a guess at ADMIN_KEY no longer lifts the limits.
	p, err := f.auth(t, clientIP, adminKey)
	if err != nil || p.Admin || p.Exempt {
		t.Fatalf("admin key after %d failures: %+v %v", ratelimit.KeyLockoutMax, p, err)
	}
	if p, err := f.auth(t, otherIP, adminKey); err != nil || !p.Admin {
		t.Fatalf("admin key from another address: %+v %v", p, err)
	}
}
