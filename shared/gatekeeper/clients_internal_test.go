package gatekeeper

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

var (
	testRisuKey     *rsa.PrivateKey
	testRisuKeyOnce sync.Once
)

func risuSigner(t *testing.T) *rsa.PrivateKey {
	testRisuKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testRisuKey = k
	})
	return testRisuKey
}

// risuToken signs data as RisuAI does: the header is base64 of
// {"data":…,"sig":base64(PKCS#1 v1.5 SHA-256 of data's JSON)}.
func risuToken(t *testing.T, k *rsa.PrivateKey, data string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(data))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"data":%s,"sig":%q}`, data, base64.StdEncoding.EncodeToString(sig))
	return base64.StdEncoding.EncodeToString([]byte(body))
}

var tRisu = time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)

func risuGatekeeper(t *testing.T, env map[string]string) (*Gatekeeper, *memory.Store) {
	t.Helper()
	cfg, err := config.FromMap(env)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.New()
	g := New(cfg, mem, func() time.Time { return tRisu })
	g.risuKey = &risuSigner(t).PublicKey
	return g, mem
}

func risuRequest(ip, bearer, risu string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/openai/v1/chat/completions", nil)
	r.RemoteAddr = "10.0.0.1:443"
	r.Header.Set("X-Forwarded-For", ip)
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	if risu != "" {
		r.Header.Set("x-risu-tk", risu)
	}
	return r
}

func TestRisuKeyParses(t *testing.T) {
	k := parseRisuKey()
	if k == nil || k.N.BitLen() != 2048 {
		t.Fatalf("RisuAI's key: %v", k)
	}
}

func TestRisuToken(t *testing.T) {
	k := risuSigner(t)
	future := tRisu.Add(time.Hour).Unix()
	valid := risuToken(t, k, fmt.Sprintf(`{"id":"user-1","expiresIn":%d}`, future))
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name, header, want string
	}{
		{"valid", valid, "user-1"},
		{"URL-escaped, as some clients send it", url.QueryEscape(valid), "user-1"},
		{"numeric id", risuToken(t, k, fmt.Sprintf(`{"id":12345,"expiresIn":%d}`, future)), "12345"},
		{"expired", risuToken(t, k, fmt.Sprintf(`{"id":"user-1","expiresIn":%d}`, tRisu.Add(-time.Second).Unix())), ""},
		{"signed by someone else", risuToken(t, other, fmt.Sprintf(`{"id":"user-1","expiresIn":%d}`, future)), ""},
		{"id unfit for a store key", risuToken(t, k, fmt.Sprintf(`{"id":"a/b$c","expiresIn":%d}`, future)), ""},
		{"no expiry", risuToken(t, k, `{"id":"user-1"}`), ""},
		{"not base64", "%%%", ""},
		{"not JSON", base64.StdEncoding.EncodeToString([]byte("hello")), ""},
		{"oversized", string(make([]byte, maxRisuHeader+1)), ""},
	}
	// A valid token whose data was changed after signing.
	tampered := fmt.Sprintf(`{"data":{"id":"user-2","expiresIn":%d},"sig":%q}`, future, sigOf(t, valid))
	tests = append(tests, struct{ name, header, want string }{"tampered", base64.StdEncoding.EncodeToString([]byte(tampered)), ""})
	g, _ := risuGatekeeper(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := risuRequest("203.0.113.9", "", tt.header)
			if got := g.risuID(r, tRisu); got != tt.want {
				t.Errorf("risuID = %q, want %q", got, tt.want)
			}
			if r.Header.Get("X-Risu-Tk") != "" {
				t.Error("x-risu-tk left for the upstream")
			}
		})
	}
}

func sigOf(t *testing.T, header string) string {
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Sig string }
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v.Sig
}

// RisuAI users behind one address have limits of their own, as in the
// original; without a valid token they share the address's.
func TestRisuUsersLimitedApart(t *testing.T) {
	k := risuSigner(t)
	g, _ := risuGatekeeper(t, map[string]string{"TEXT_MODEL_RATE_LIMIT": "1", "USER_CONCURRENCY_LIMIT": "0"})
	ctx := context.Background()
	tok := func(id string) string {
		return risuToken(t, k, fmt.Sprintf(`{"id":%q,"expiresIn":%d}`, id, tRisu.Add(time.Hour).Unix()))
	}
	for _, id := range []string{"alice", "bob"} {
		p, err := g.Authenticate(ctx, risuRequest("203.0.113.9", "", tok(id)))
		if err != nil || p.Key != "risu:"+id || p.IP != "203.0.113.9" {
			t.Fatalf("%s: %+v %v", id, p, err)
		}
		a, err := g.Admit(ctx, p, "gpt4o", 1)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		a.Release()
	}
	p, _ := g.Authenticate(ctx, risuRequest("203.0.113.9", "", tok("alice")))
	if _, err := g.Admit(ctx, p, "gpt4o", 1); users.ErrorCode(err) != users.CodeRateLimited {
		t.Errorf("alice's second request: %v", err)
	}
	p, _ = g.Authenticate(ctx, risuRequest("203.0.113.9", "", ""))
	if p.Key != "ip:203.0.113.9" {
		t.Errorf("without a token: key %q", p.Key)
	}
}

// In user_token mode each RisuAI id counts as an address of the user's,
// written as the original wrote it, so a token shared among RisuAI users
// meets MAX_IPS_PER_USER.
func TestRisuUsersCountAsAddresses(t *testing.T) {
	k := risuSigner(t)
	g, mem := risuGatekeeper(t, map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": "admin-key-0123456789", "MAX_IPS_PER_USER": "1"})
	const tk = "11111111-1111-4111-8111-111111111111"
	ctx := context.Background()
	if _, err := mem.Modify(ctx, tk, true, func(u *users.User, _ bool) error {
		*u = *users.New(tk, users.Normal, tRisu, nil)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok := func(id string) string {
		return risuToken(t, k, fmt.Sprintf(`{"id":%q,"expiresIn":%d}`, id, tRisu.Add(time.Hour).Unix()))
	}
	if p, err := g.Authenticate(ctx, risuRequest("203.0.113.9", tk, tok("alice"))); err != nil || p.IP != "203.0.113.9" || p.Key != tk {
		t.Fatalf("%+v %v", p, err)
	}
	u, _ := mem.Get(ctx, tk)
	if !slices.Equal(u.IP, []string{"risualice-203.0.113.9"}) {
		t.Errorf("IPs = %v", u.IP)
	}
	if _, err := g.Authenticate(ctx, risuRequest("203.0.113.9", tk, tok("alice"))); err != nil {
		t.Errorf("the same RisuAI user again: %v", err)
	}
	_, err := g.Authenticate(ctx, risuRequest("203.0.113.9", tk, tok("bob")))
	if users.ErrorCode(err) != users.CodeForbidden {
		t.Errorf("a second RisuAI user on a one-address token: %v", err)
	}
}

// Agnai's shared addresses are exempt from the rate limit kept per
// address and get five times the concurrency, as in the original; a user
// token from them is limited as anywhere.
func TestAgnaiSharedAddresses(t *testing.T) {
	const agnai = "157.245.148.56"
	g, mem := risuGatekeeper(t, map[string]string{"TEXT_MODEL_RATE_LIMIT": "1", "USER_CONCURRENCY_LIMIT": "1"})
	ctx := context.Background()
	var held []*Admission
	for i := range SharedConcurrencyFactor {
		p, err := g.Authenticate(ctx, risuRequest(agnai, "", ""))
		if err != nil || !p.Shared {
			t.Fatalf("%+v %v", p, err)
		}
		a, err := g.Admit(ctx, p, "gpt4o", 1)
		if err != nil {
			t.Fatalf("request %d from Agnai: %v", i+1, err)
		}
		held = append(held, a)
	}
	p, _ := g.Authenticate(ctx, risuRequest(agnai, "", ""))
	if _, err := g.Admit(ctx, p, "gpt4o", 1); users.ErrorCode(err) != users.CodeConcurrency {
		t.Errorf("beyond five in flight: %v", err)
	}
	for _, a := range held {
		a.Release()
	}
	if p, _ := g.Authenticate(ctx, risuRequest("203.0.113.9", "", "")); p.Shared {
		t.Error("an ordinary address is shared")
	}
	// In user_token mode the user's own limits apply.
	cfg, _ := config.FromMap(map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": "admin-key-0123456789", "TEXT_MODEL_RATE_LIMIT": "1"})
	g = New(cfg, mem, func() time.Time { return tRisu })
	const tk = "11111111-1111-4111-8111-111111111111"
	_, _ = mem.Modify(ctx, tk, true, func(u *users.User, _ bool) error { *u = *users.New(tk, users.Normal, tRisu, nil); return nil })
	for i := range 2 {
		p, err := g.Authenticate(ctx, risuRequest(agnai, tk, ""))
		if err != nil || p.Shared {
			t.Fatalf("%+v %v", p, err)
		}
		a, err := g.Admit(ctx, p, "gpt4o", 1)
		if i == 1 && users.ErrorCode(err) != users.CodeRateLimited {
			t.Errorf("a user's second request from Agnai: %v", err)
		}
		if a != nil {
			a.Release()
		}
	}
}

// FuzzRisuToken: any header is read without failing, and only a token
// signed with the key yields an id, one fit for a store key.
func FuzzRisuToken(f *testing.F) {
	k := risuSigner(nil)
	f.Add("")
	f.Add("e30=")
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"data":{"id":"x","expiresIn":99999999999},"sig":"AAAA"}`)))
	f.Add(url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(`{"data":[],"sig":null}`))))
	g := &Gatekeeper{risuKey: &k.PublicKey}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("X-Risu-Tk", header)
		if id := g.risuID(r, tRisu); id != "" {
			t.Errorf("an unsigned header gave id %q", id)
		}
	})
}
