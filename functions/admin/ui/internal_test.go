package ui

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSignerRoundTrip(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newSigner("", "admin-key")
	ss := newSession(kindAdmin, now, time.Hour)
	v := s.encode(ss)
	cases := []struct {
		name   string
		signer *signer
		value  string
		at     time.Time
		maxTTL time.Duration
		ok     bool
	}{
		{"valid", s, v, now, time.Hour, true},
		{"just before expiry", s, v, now.Add(time.Hour - time.Second), time.Hour, true},
		{"at expiry", s, v, now.Add(time.Hour), time.Hour, false},
		{"claims more than the max life", s, v, now, time.Minute, false},
		{"other admin key", newSigner("", "other-key"), v, now, time.Hour, false},
		{"same signing key, other admin key", newSigner("sk", "other-key"), newSigner("sk", "admin-key").encode(ss), now, time.Hour, false},
		{"no admin key", newSigner("sk", ""), newSigner("sk", "").encode(ss), now, time.Hour, false},
		{"truncated", s, v[:len(v)-1], now, time.Hour, false},
		{"extra part", s, v + ".x", now, time.Hour, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.signer.decode(tc.value, tc.at, tc.maxTTL)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && (got.ID != ss.ID || got.Kind != ss.Kind || !got.Expires.Equal(ss.Expires)) {
				t.Fatalf("decoded %+v, want %+v", got, ss)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	s := newSigner("", "admin-key")
	tok := s.csrf("sid1", "/manage/new")
	if !s.checkCSRF("sid1", "/manage/new", tok) {
		t.Fatal("own token refused")
	}
	for name, c := range map[string][3]string{
		"other session": {"sid2", "/manage/new", tok},
		"other form":    {"sid1", "/logout", tok},
		"empty":         {"sid1", "/manage/new", ""},
		"not base64":    {"sid1", "/manage/new", "***"},
		"other key":     {"sid1", "/manage/new", newSigner("", "k2").csrf("sid1", "/manage/new")},
	} {
		if s.checkCSRF(c[0], c[1], c[2]) {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzSessionDecode: a cookie is outside input. Decoding never panics, and
// whatever is accepted is exactly what this signer would have written.
func FuzzSessionDecode(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	s := newSigner("sk", "admin-key")
	f.Add(s.encode(newSession(kindAdmin, now, time.Hour)))
	f.Add(s.encode(newSession(kindLogin, now, time.Minute)))
	valid := s.encode(newSession(kindAdmin, now, time.Hour))
	f.Add(valid[:len(valid)-10] + "\n" + valid[len(valid)-10:]) // base64 decoders skip line breaks
	f.Add("v1.a..1700003600.")
	f.Add("v1.a.x.-1.AAAA")
	f.Add("....")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		ss, ok := s.decode(v, now, 12*time.Hour)
		if !ok {
			return
		}
		if got := s.encode(ss); got != v {
			t.Fatalf("accepted %q, which encodes back as %q", v, got)
		}
	})
}

func TestRelative(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		30 * time.Second:             "now",
		5 * time.Minute:              "in 5 min",
		-5 * time.Minute:             "5 min ago",
		3*time.Hour - time.Minute:    "in 2 h 59 min",
		3 * time.Hour:                "in 3 h",
		-30 * time.Hour:              "30 h ago",
		72 * time.Hour:               "in 3 d",
		-(72*time.Hour + time.Hour):  "3 d ago",
		10*time.Hour + 5*time.Minute: "in 10 h",
	} {
		if got := relative(now.Add(d).UnixMilli(), now); got != want {
			t.Errorf("relative(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/manage/users?sort=-nickname": "/manage/users?sort=-nickname",
		"/manage":                      "/manage",
		"":                             "",
		"/login":                       "",
		"https://evil.example/manage":  "",
		"//evil.example/manage":        "",
		"/manage//evil":                "",
		"/manage\\evil":                "",
		"/manage/\r\nSet-Cookie: x":    "",
		"/manage/\tusers":              "",
		"/manage/users x":              "",
		"/manage/\x7fusers":            "",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "42": 42, "1,000,000": 1000000, " 2 000 ": 2000, "3_000": 3000} {
		if got, ok := parseCount(in); !ok || got != want {
			t.Errorf("parseCount(%q) = %d, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "-1", "1.5", "1e6", "lots", "99999999999999999999"} {
		if _, ok := parseCount(in); ok {
			t.Errorf("parseCount(%q) accepted", in)
		}
	}
}

func TestMergeQuotas(t *testing.T) {
	cases := []struct {
		name    string
		cur     map[string]int64
		posted  map[string]int64
		want    map[string]int64
		changed bool
	}{
		{"untouched", map[string]int64{"turbo": 0, "gpt4": 5}, map[string]int64{"turbo": 0, "gpt4": 5, "claude": 0}, map[string]int64{"turbo": 0, "gpt4": 5}, false},
		{"nil stays nil", nil, map[string]int64{"claude": 0}, nil, false},
		{"set one", map[string]int64{"gpt4": 5}, map[string]int64{"gpt4": 5, "claude": 7}, map[string]int64{"gpt4": 5, "claude": 7}, true},
		{"to zero keeps the key", map[string]int64{"gpt4": 5}, map[string]int64{"gpt4": 0}, map[string]int64{"gpt4": 0}, true},
		{"not posted kept", map[string]int64{"aws-claude": 9}, map[string]int64{"claude": 1}, map[string]int64{"aws-claude": 9, "claude": 1}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := mergeQuotas(tc.cur, tc.posted)
			if changed != tc.changed || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v, %v", got, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		v, unit string
		want    time.Duration
		err     string
	}{
		{"6", "hours", 6 * time.Hour, ""},
		{"90", "minutes", 90 * time.Minute, ""},
		{"366", "days", 366 * 24 * time.Hour, ""},
		{"367", "days", 0, "at most a year"},
		{"0", "hours", 0, "above 0"},
		{"1", "weeks", 0, "unit"},
	} {
		got, err := parseDuration(tc.v, tc.unit)
		if got != tc.want || !strings.Contains(err, tc.err) || (tc.err == "") != (err == "") {
			t.Errorf("parseDuration(%q, %q) = %s, %q", tc.v, tc.unit, got, err)
		}
	}
}
