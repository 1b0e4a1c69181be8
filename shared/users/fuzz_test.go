package users_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// FuzzParsePatchList: a bulk import never panics, refuses with a 400
// listing issues, and accepts exactly what single-user parsing accepts:
// every entry parses alone to the same patch, names a token, and no token
// appears twice.
func FuzzParsePatchList(f *testing.F) {
	for _, s := range []string{
		`{"users":[{"token":"a","ip":["1.2.3.4"]},{"token":"b","tokenLimits":{"gpt4o":5},"maxIps":null}]}`,
		`{"users":[{"token":"a"},{"token":"a"}]}`,
		`{"users":[{"nickname":"no token"}],"extra":1}`,
		`{"users":[{"token":null}]}`,
		`{"users":{}}`, `{"users":null}`, `{"users":[]}`, `[]`, `{"users":[1,"x",null]}`,
		`{"users":[{"token":"t","meta":{"a":[1,{"b":null}]},"tokenCount":3,"type":"temporary","expiresAt":9}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := users.ParsePatchList(data)
		if err != nil {
			var e *users.Error
			if !asError(err, &e) || e.Code != users.CodeInvalid || len(e.Issues) == 0 || e.Message == "" {
				t.Fatalf("refusal %#v is not a 400 with issues", err)
			}
			return
		}
		var doc struct{ Users []json.RawMessage }
		if err := json.Unmarshal(data, &doc); err != nil || len(doc.Users) != len(ps) {
			t.Fatalf("accepted %q but it is not {users:[…]} with %d entries: %v", data, len(ps), err)
		}
		seen := map[string]bool{}
		for i, p := range ps {
			if !p.Token.Set || p.Token.Null || !users.ValidToken(p.Token.Value) {
				t.Fatalf("entry %d accepted without a valid token: %+v", i, p.Token)
			}
			if seen[p.Token.Value] {
				t.Fatalf("token %q accepted twice", p.Token.Value)
			}
			seen[p.Token.Value] = true
			alone, err := users.ParsePatch(doc.Users[i])
			if err != nil {
				t.Fatalf("entry %d accepted in a list but not alone: %v", i, err)
			}
			if !reflect.DeepEqual(alone, p) {
				t.Fatalf("entry %d parses differently alone:\n%+v\n%+v", i, alone, p)
			}
		}
	})
}

// FuzzUserJSONRoundTrip: any user the domain accepts (a partial update
// applied to a new user, then validated) exports as JSON that imports back
// into exactly the same user, and exports again byte for byte the same —
// the guarantee behind "an export imports unchanged and exports back
// equal".
func FuzzUserJSONRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"ip":["203.0.113.7","::ffff:198.51.100.1","2001:DB8::1"],"nickname":"night owl","type":"temporary","expiresAt":5,"promptCount":12}`,
		`{"tokenCounts":{"gpt4o":5,"0":1},"tokenLimits":{},"tokenRefresh":{},"meta":{},"maxIps":0}`,
		`{"meta":{"refreshable":true,"n":1e300,"s":"%null","a":[[],{},null,-0.5]},"adminNote":"\u00e9\u0000"}`,
		`{"disabledAt":1,"disabledReason":"why","lastUsedAt":2,"refreshedAt":3,"createdAt":4,"type":"special"}`,
		`{"token":"other-token","promptCount":9007199254740993}`,
		`{"nickname":null,"tokenRefresh":null,"meta":null,"maxIps":null,"ip":null}`,
	} {
		f.Add([]byte(s))
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := users.ParsePatch(data)
		if err != nil {
			return
		}
		u := users.New("tok-fuzz", users.Normal, created, map[string]int64{"gpt4o": 100})
		p.Apply(u)
		if u.Validate() != nil {
			return
		}
		exported, err := json.Marshal(u)
		if err != nil {
			t.Fatalf("accepted user does not encode: %v", err)
		}
		back, err := users.ParsePatch(exported)
		if err != nil {
			t.Fatalf("export %s does not import: %v", exported, err)
		}
		// Imported into an empty store: a new user with other defaults, then
		// the export applied.
		got := users.New(u.Token, users.Normal, created.Add(time.Hour), map[string]int64{"claude": 7})
		back.Apply(got)
		if err := got.Validate(); err != nil {
			t.Fatalf("imported user is invalid: %v", err)
		}
		if !reflect.DeepEqual(got, u) {
			t.Fatalf("round trip changed the user:\n got %+v\nwant %+v\n(export %s)", got, u, exported)
		}
		again, err := json.Marshal(got)
		if err != nil || !bytes.Equal(again, exported) {
			t.Fatalf("export changed:\n%s\n%s", again, exported)
		}
	})
}

func asError(err error, target **users.Error) bool {
	e, ok := err.(*users.Error)
	if ok {
		*target = e
	}
	return ok
}

// FuzzAdmitIP: whatever a record holds (imports bring any address, zoned,
// mapped, RisuAI entries), the IP limit never panics and never lets the
// networks counted grow past the limit: a new address takes at most one
// place, is refused only when every place is taken, and a refusal
// changes nothing.
func FuzzAdmitIP(f *testing.F) {
	for _, s := range []struct {
		have, ip string
		limit    uint8
	}{
		{"2001:db8:1:2::1\n2001:db8:1:2::2", "2001:db8:1:2::3", 1},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", 1},
		{"203.0.113.1\n::ffff:203.0.113.2", "203.0.113.2", 2},
		{"fe80::1%eth0\nrisu7-2001:db8::1", "risu7-2001:db8::2", 2},
		{"risu-1.2.3.4\nnot an address", "risu8-2001:db8::1", 3},
		{"2001:0:c000:201:0:efff:39cc:9bfe\n198.51.100.1", "2001:0:c000:201:0:efff:34ff:8ef8", 2},
		{"64:ff9b::198.51.100.1\n64:ff9b:1::c633:6401", "risu7-64:ff9b::203.0.113.7", 2},
		{"", "", 0},
	} {
		f.Add(s.have, s.ip, s.limit)
	}
	f.Fuzz(func(t *testing.T, have, ip string, limit uint8) {
		u := users.New("tok", users.Normal, t0, nil)
		if have != "" {
			u.IP = strings.Split(have, "\n")
		}
		before, counted := slices.Clone(u.IP), u.IPsCounted()
		switch v := users.AdmitIP(u, ip, int64(limit), false, t0); v {
		case users.IPKnown, users.IPRefused:
			if !slices.Equal(u.IP, before) {
				t.Fatalf("%v changed the record: %q → %q", v, before, u.IP)
			}
			if v == users.IPRefused && (limit == 0 || counted < int(limit)) {
				t.Fatalf("refused %q with %d of %d places taken (%q)", ip, counted, limit, before)
			}
		case users.IPAdded:
			now := u.IPsCounted()
			if !slices.Contains(u.IP, ip) || len(u.IP) > max(len(before), users.MaxRecordedIPs) {
				t.Fatalf("added %q: record %q", ip, u.IP)
			}
			if now > counted+1 || limit > 0 && now > max(counted, int(limit)) {
				t.Fatalf("added %q: %d places taken after %d, limit %d (%q)", ip, now, counted, limit, u.IP)
			}
		default:
			t.Fatalf("verdict %v without auto-ban", v)
		}
	})
}
