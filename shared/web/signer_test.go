package web_test

import (
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/web"
)

func TestSigner(t *testing.T) {
	s := web.NewSigner([]byte("secret"), "purpose-a")
	sig := s.Sign("a", "b")
	if !s.Verify(sig, "a", "b") {
		t.Fatal("own signature refused")
	}
	for name, ok := range map[string]bool{
		"other parts":      s.Verify(sig, "a", "c"),
		"parts regrouped":  s.Verify(sig, "ab"),
		"parts shifted":    s.Verify(s.Sign("a\x00b"), "a", "b"),
		"empty signature":  s.Verify("", "a", "b"),
		"padded spelling":  s.Verify(sig+"=", "a", "b"),
		"other purpose":    web.NewSigner([]byte("secret"), "purpose-b").Verify(sig, "a", "b"),
		"other secret":     web.NewSigner([]byte("secret2"), "purpose-a").Verify(sig, "a", "b"),
		"tampered":         s.Verify(strings.ToUpper(sig[:1])+sig[1:]+"x", "a", "b"),
		"signature of one": s.Verify(s.Sign("a"), "a", "b"),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
	if strings.ContainsAny(sig, "+/=.;, ") {
		t.Errorf("signature %q is not cookie-safe", sig)
	}
}

func TestSealOpen(t *testing.T) {
	s := web.NewSigner([]byte("secret"), "p")
	now := time.Unix(1_700_000_000, 0)
	sealed := s.Seal(now.Add(time.Hour), "user-1")
	if exp, ok := s.Open(sealed, now, time.Hour, "user-1"); !ok || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("fresh seal: %v %v", exp, ok)
	}
	if _, ok := s.Open(sealed, now.Add(59*time.Minute), time.Hour, "user-1"); !ok {
		t.Error("refused before expiry")
	}
	for name, ok := range map[string]bool{
		"at expiry":         open(s, sealed, now.Add(time.Hour), time.Hour, "user-1"),
		"other parts":       open(s, sealed, now, time.Hour, "user-2"),
		"longer than max":   open(s, sealed, now, 30*time.Minute, "user-1"),
		"expiry moved":      open(s, "1700009999"+sealed[strings.Index(sealed, "."):], now, 24*time.Hour, "user-1"),
		"no dot":            open(s, strings.Replace(sealed, ".", "", 1), now, time.Hour, "user-1"),
		"empty":             open(s, "", now, time.Hour, "user-1"),
		"expiry not number": open(s, "x."+s.Sign("user-1", "x"), now, time.Hour, "user-1"),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

func open(s *web.Signer, v string, now time.Time, ttl time.Duration, parts ...string) bool {
	_, ok := s.Open(v, now, ttl, parts...)
	return ok
}

// FuzzOpen: a sealed value is outside input. Opening never panics and
// accepts only the one value Seal made.
func FuzzOpen(f *testing.F) {
	s := web.NewSigner([]byte("secret"), "p")
	now := time.Unix(1_700_000_000, 0)
	good := s.Seal(now.Add(time.Hour), "user-1")
	f.Add(good)
	f.Add("1700003600.")
	f.Add(".")
	f.Add("-1.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		if _, ok := s.Open(v, now, time.Hour, "user-1"); ok && v != good {
			t.Fatalf("accepted %q", v)
		}
	})
}
