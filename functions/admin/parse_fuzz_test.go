package admin

import (
	"strings"
	"testing"
)

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "Basic abc", "Bearer", "Bearer ", "", "BEARER a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		cred, ok := bearer(h)
		if ok != (cred != "") {
			t.Fatalf("bearer(%q) = %q, %v", h, cred, ok)
		}
		if ok && (!strings.Contains(h, cred) || cred != strings.TrimSpace(cred)) {
			t.Fatalf("bearer(%q) = %q", h, cred)
		}
	})
}
