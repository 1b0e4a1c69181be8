package users_test

import (
	"net/netip"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

// FuzzParseIPList: an operator's list never panics; what it accepts is
// canonical (parsing it again gives it back), valid for the stores, and
// has no entry twice; what it refuses names the list.
func FuzzParseIPList(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8, 203.0.113.7\n2001:db8::1", "::ffff:1.2.3.4", "1.2.3.4/33", "fe80::1%eth0",
		"", " , \n", "10.1.2.3/8 10.0.0.0/8", "example.com", "::/0,0.0.0.0/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		list, err := users.ParseIPList("blacklist", text)
		if err != nil {
			e := users.AsError(err)
			if e.Code != users.CodeInvalid || len(e.Issues) == 0 || e.Issues[0].Path != "blacklist" {
				t.Fatalf("refusal %v (%+v)", err, e.Issues)
			}
			return
		}
		again, err := users.ParseIPList("blacklist", strings.Join(list, "\n"))
		if err != nil || strings.Join(again, ",") != strings.Join(list, ",") {
			t.Fatalf("not canonical: %q → %q, %v", list, again, err)
		}
		if err := (users.IPLists{Blacklist: list}).Validate(); err != nil {
			t.Fatalf("accepted %q but Validate refuses: %v", list, err)
		}
		seen := map[string]bool{}
		for _, e := range list {
			if seen[e] {
				t.Fatalf("%q twice in %q", e, list)
			}
			seen[e] = true
			if _, err := netip.ParsePrefix(e); err != nil {
				if _, err := netip.ParseAddr(e); err != nil {
					t.Fatalf("entry %q is neither an address nor a range", e)
				}
			}
		}
	})
}

// FuzzCheckEventPage: a cursor and a page size from a query never
// panic; an accepted one is an event ID (or empty) and a size in range.
func FuzzCheckEventPage(f *testing.F) {
	f.Add("", 0)
	f.Add("1764712800000-0123456789ab", 50)
	f.Add("../../users", 10)
	f.Add("1764712800000-0123456789ab", 501)
	f.Fuzz(func(t *testing.T, cursor string, limit int) {
		n, err := users.CheckEventPage(cursor, limit)
		if err != nil {
			if users.AsError(err).Code != users.CodeInvalid {
				t.Fatalf("refusal %v", err)
			}
			return
		}
		if n < 1 || n > users.MaxEventPage {
			t.Fatalf("limit %d accepted as %d", limit, n)
		}
		if cursor != "" && (len(cursor) != 26 || strings.ContainsAny(cursor, "/.$#[]")) {
			t.Fatalf("cursor %q accepted", cursor)
		}
	})
}
