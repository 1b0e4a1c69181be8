package users_test

import (
	"regexp"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

// The rules ValidToken and ValidFamily implement without a regexp.
var (
	tokenPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	familyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

var nameSeeds = []string{"", "a", "Z9", "-a", "_a", ".a", "a-", "a_", "a.", "a b", "a\n", "\na", "a\x00", "ä", "aä",
	"8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "gemini-1.5", strings.Repeat("z", 64), strings.Repeat("z", 65),
	strings.Repeat("z", 128), strings.Repeat("z", 129), "a/b", "a+b", "a~b", "a:b"}

func checkNames(t *testing.T, s string) {
	if got, want := users.ValidToken(s), tokenPattern.MatchString(s); got != want {
		t.Errorf("ValidToken(%q) = %v, the pattern says %v", s, got, want)
	}
	if got, want := users.ValidFamily(s), familyPattern.MatchString(s); got != want {
		t.Errorf("ValidFamily(%q) = %v, the pattern says %v", s, got, want)
	}
}

func TestValidNamesMatchPatterns(t *testing.T) {
	for _, s := range nameSeeds {
		checkNames(t, s)
	}
	// Every byte in every position that matters.
	for c := 0; c < 256; c++ {
		for _, s := range []string{string(rune(c)), "a" + string([]byte{byte(c)}), string([]byte{byte(c)}) + "a"} {
			checkNames(t, s)
		}
	}
}

func FuzzValidNames(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(checkNames)
}
