package users_test

import (
	"slices"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

// A RisuAI user's entry in the IP list (users.RisuIP, as the original
// wrote it) is accepted by patches and imports, so exports import back.
func TestRisuIPEntries(t *testing.T) {
	entry := users.RisuIP("alice-1", "2001:db8::1")
	if entry != "risualice-1-2001:db8::1" {
		t.Fatalf("RisuIP = %q", entry)
	}
	p, err := users.ParsePatch([]byte(`{"ip":["` + entry + `","risu7-198.51.100.1","` + entry + `","::ffff:198.51.100.2"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{entry, "risu7-198.51.100.1", "198.51.100.2"}; !slices.Equal(p.IP.Value, want) {
		t.Errorf("IP = %v, want %v", p.IP.Value, want)
	}
	for _, bad := range []string{"risu-198.51.100.1", "risualice-not-an-ip", "risualice", "xrisu1-198.51.100.1"} {
		if _, err := users.ParsePatch([]byte(`{"ip":["` + bad + `"]}`)); err == nil || !strings.Contains(err.Error(), "IP address") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
