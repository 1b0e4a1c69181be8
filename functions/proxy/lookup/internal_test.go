package lookup

import (
	"io"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users/memory"
)

func testHandler(t testing.TB, now time.Time) *handler {
	cfg, err := config.FromMap(map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": "k"})
	if err != nil {
		t.Fatal(err)
	}
	d := &app.Deps{Config: cfg, Store: memory.New(), Log: logging.New(io.Discard, "info"), Now: func() time.Time { return now }, Drain: app.NewDrain()}
	return New(Options{Deps: d}).(*handler)
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50": "8d5f…4f50",
		"abcdefghijkl":                         "abcd…ijkl",
		"abcdefgh":                             "…gh",
		"abcd":                                 "…",
	} {
		if got := mask(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
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
