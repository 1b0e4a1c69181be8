package lookup

import (
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users/memory"
)

func testHandler(t testing.TB, now time.Time) *handler {
	cfg, err := config.FromMap(map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": "k"})
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Config: cfg, Store: memory.New(), Now: func() time.Time { return now }}).(*handler)
}

// FuzzCheckCSRF: the nickname form's token is outside input. Checking never
// panics and accepts only what this page issued for this user token.
func FuzzCheckCSRF(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	h := testHandler(f, now)
	f.Add(h.csrf("user-token-1"))
	f.Add("1700003600.")
	f.Add(".")
	f.Add("-1.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		if h.checkCSRF("user-token-1", v) && v != h.csrf("user-token-1") {
			t.Fatalf("accepted %q", v)
		}
	})
}
