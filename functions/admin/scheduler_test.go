package admin

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	schedSA  = "tollgate-scheduler@my-proj.iam.gserviceaccount.com"
	schedAud = "https://europe-west1-my-proj.cloudfunctions.net/admin"
)

// jwks serves a test RSA key as Google serves its ID-token keys.
type jwks struct {
	key     *rsa.PrivateKey
	kid     string
	srv     *httptest.Server
	fetches atomic.Int64
	down    atomic.Bool
}

func newJWKS(t *testing.T) *jwks {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	j := &jwks{key: key, kid: "test-key-1"}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		if j.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		b64 := base64.RawURLEncoding.EncodeToString
		w.Header().Set("Cache-Control", "public, max-age=3600") // as Google sends
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "alg": "RS256", "use": "sig", "kid": j.kid,
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(j.srv.Close)
	return j
}

// token signs claims (over the valid defaults) with key.
func (j *jwks) token(t *testing.T, key *rsa.PrivateKey, edit func(c map[string]any)) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{
		"iss": "https://accounts.google.com", "aud": schedAud, "azp": "1234",
		"sub": "1234", "email": schedSA, "email_verified": true,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": j.kid}) + "." + enc(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func schedulerEnv(t *testing.T, j *jwks) *env {
	return newEnv(t, map[string]string{
		"SCHEDULER_SERVICE_ACCOUNT": schedSA,
		"SCHEDULER_AUDIENCE":        schedAud,
		"SCHEDULER_CERTS_URL":       j.srv.URL + "/oauth2/v3/certs",
	})
}

// TestSchedulerToken: Cloud Scheduler's OIDC token opens the maintenance
// route, and only a token Google signed for our audience and service
// account, not expired; it opens nothing else.
func TestSchedulerToken(t *testing.T) {
	j := newJWKS(t)
	e := schedulerEnv(t, j)
	maint := "/admin/maintenance/refresh-quotas"
	valid := j.token(t, j.key, nil)

	rec := e.do(req{method: http.MethodPost, path: maint, key: valid})
	if rec.Code != http.StatusOK {
		t.Fatalf("valid scheduler token: %d %s", rec.Code, rec.Body.String())
	}
	if rec := e.do(req{method: http.MethodPost, path: "/maintenance/purge-temporary", key: valid}); rec.Code != http.StatusOK {
		t.Fatalf("valid token at the function root: %d %s", rec.Code, rec.Body.String())
	}
	if j.fetches.Load() != 1 {
		t.Fatalf("keys fetched %d times, want once (cached)", j.fetches.Load())
	}

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"wrong audience":        j.token(t, j.key, func(c map[string]any) { c["aud"] = "https://elsewhere.example/admin" }),
		"wrong service account": j.token(t, j.key, func(c map[string]any) { c["email"] = "intruder@my-proj.iam.gserviceaccount.com" }),
		"wrong issuer":          j.token(t, j.key, func(c map[string]any) { c["iss"] = "https://evil.example" }),
		"expired":               j.token(t, j.key, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }),
		"email not verified":    j.token(t, j.key, func(c map[string]any) { c["email_verified"] = false }),
		"bad signature":         j.token(t, other, nil),
	} {
		e := schedulerEnv(t, j) // a fresh lockout per case
		rec := e.do(req{method: http.MethodPost, path: maint, key: tok})
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, rec.Code, rec.Body.String())
			continue
		}
		if msg := decode[apiError](t, rec).Error.Message; msg != "Invalid scheduler token ("+name+")." {
			t.Errorf("%s: message %q", name, msg)
		}
	}

	// Never on the users routes, nor the UI.
	for _, r := range []req{
		{path: "/admin/users"},
		{path: "/admin/users/someone"},
		{method: http.MethodPut, path: "/admin/users/someone", body: `{"nickname":"x"}`},
		{method: http.MethodPost, path: "/admin/users"},
	} {
		r.key = valid
		if rec := e.do(r); rec.Code != http.StatusUnauthorized || decode[apiError](t, rec).Error.Message != "Invalid admin key." {
			t.Errorf("%s %s with a scheduler token: %d %s", r.method, r.path, rec.Code, rec.Body.String())
		}
	}
	ui := httptest.NewRequest(http.MethodGet, "/admin/manage/users", nil)
	ui.RemoteAddr = "192.0.2.10:4321"
	ui.Header.Set("Authorization", "Bearer "+valid)
	uiRec := httptest.NewRecorder()
	e.h.ServeHTTP(uiRec, ui)
	if uiRec.Code == http.StatusOK || strings.Contains(uiRec.Body.String(), "Sign out") {
		t.Errorf("UI with a scheduler token: %d", uiRec.Code)
	}

	// The admin key still works on the maintenance route.
	if rec := e.do(req{method: http.MethodPost, path: maint}); rec.Code != http.StatusOK {
		t.Fatalf("admin key: %d", rec.Code)
	}
}

// Without SCHEDULER_* a token is only a wrong admin key; with the keys
// unreachable the answer is 503, not a refusal.
func TestSchedulerTokenNotConfiguredOrKeysDown(t *testing.T) {
	j := newJWKS(t)
	valid := j.token(t, j.key, nil)
	plain := newEnv(t, nil)
	if rec := plain.do(req{method: http.MethodPost, path: "/admin/maintenance/refresh-quotas", key: valid}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("unconfigured: %d %s", rec.Code, rec.Body.String())
	}
	j.down.Store(true)
	e := schedulerEnv(t, j)
	if rec := e.do(req{method: http.MethodPost, path: "/admin/maintenance/refresh-quotas", key: valid}); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("keys down: %d %s", rec.Code, rec.Body.String())
	}
}

// A token with a mangled signature, or signed by an unknown key id, is a
// 401, never a 503.
func TestSchedulerTokenMalformed(t *testing.T) {
	j := newJWKS(t)
	valid := j.token(t, j.key, nil)
	head, _, _ := strings.Cut(valid, ".")
	unknownKid := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"nope"}`)) + valid[len(head):]
	for name, tok := range map[string]string{
		"signature not base64": valid[:strings.LastIndex(valid, ".")+1] + "!!!",
		"unknown key id":       unknownKid,
		"alg none":             base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + valid[len(head):],
	} {
		e := schedulerEnv(t, j)
		rec := e.do(req{method: http.MethodPost, path: "/admin/maintenance/expire-temporary", key: tok})
		if rec.Code != http.StatusUnauthorized || decode[apiError](t, rec).Error.Message != "Invalid scheduler token (bad signature)." {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body.String())
		}
	}
}
