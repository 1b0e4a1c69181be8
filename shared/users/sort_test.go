package users

import (
	"slices"
	"strings"
	"testing"
)

func sortFixture() []*User {
	three := int64(3)
	zero := int64(0)
	return []*User{
		{Token: "a", IP: []string{"1.1.1.1"}, Type: Normal, PromptCount: 5, CreatedAt: 300, LastUsedAt: 900,
			TokenCounts: map[string]int64{"gpt4": 10, "claude": 5}, Nickname: "zed", MaxIPs: &three},
		{Token: "b", IP: []string{}, Type: Special, PromptCount: 9, CreatedAt: 100,
			TokenCounts: map[string]int64{"gpt4": 1}, TokenRefresh: map[string]int64{"gpt4": 7}},
		{Token: "c", IP: []string{"1.1.1.1", "2.2.2.2", "::1"}, Type: Temporary, PromptCount: 5, CreatedAt: 200, LastUsedAt: 950,
			TokenCounts: map[string]int64{}, Nickname: "amy", MaxIPs: &zero, Meta: map[string]any{"refreshable": true}},
		{Token: "d", IP: []string{"3.3.3.3"}, Type: Normal, PromptCount: 0, CreatedAt: 200,
			TokenCounts: map[string]int64{"claude": 40}, DisabledAt: 1000, DisabledReason: "x"},
	}
}

func tokens(list []*User) string {
	var out []string
	for _, u := range list {
		out = append(out, u.Token)
	}
	return strings.Join(out, ",")
}

func TestSort(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		{"", "b,c,a,d"},             // default: -promptCount,-lastUsedAt (then token)
		{"promptCount", "d,a,c,b"},  // ties broken by token
		{"-promptCount", "b,a,c,d"}, // a and c tie on count: token order
		{"promptCount,-lastUsedAt", "d,c,a,b"},
		{"createdAt", "b,c,d,a"},
		{"-createdAt", "a,c,d,b"},
		{"lastUsedAt", "a,c,b,d"},  // never used sorts last ascending…
		{"-lastUsedAt", "c,a,b,d"}, // …and descending
		{"nickname", "c,a,b,d"},
		{"-nickname", "a,c,b,d"},
		{"ip", "b,a,d,c"}, // arrays by length
		{"-ip", "c,a,d,b"},
		{"type", "a,d,b,c"},
		{"tokenCounts", "c,b,a,d"},       // maps by total
		{"-tokenCounts.gpt4", "a,b,c,d"}, // one family; missing last
		{"tokenCounts.claude", "a,d,b,c"},
		{"maxIps", "c,a,b,d"}, // nil maxIps last
		{"tokenRefresh", "b,a,c,d"},
		{"disabledAt", "d,a,b,c"},
		{"meta", "c,a,b,d"},
		{" token , ", "a,b,c,d"},
		{"-token", "d,c,b,a"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			keys, err := ParseSort(tc.spec)
			if err != nil {
				t.Fatalf("ParseSort(%q): %v", tc.spec, err)
			}
			list := sortFixture()
			Sort(list, keys)
			if got := tokens(list); got != tc.want {
				t.Errorf("sort %q = %s, want %s", tc.spec, got, tc.want)
			}
		})
	}
}

func TestSortIsTotalWhateverTheInputOrder(t *testing.T) {
	keys, _ := ParseSort("type")
	base := sortFixture()
	want := ""
	for i := 0; i < 6; i++ {
		list := slices.Clone(base)
		// Rotate the input: the output must not depend on it.
		list = append(list[i%len(list):], list[:i%len(list)]...)
		Sort(list, keys)
		got := tokens(list)
		if want == "" {
			want = got
		}
		if got != want {
			t.Fatalf("rotation %d: %s, want %s", i, got, want)
		}
	}
}

func TestParseSortRejects(t *testing.T) {
	for _, spec := range []string{"password", "tokenCounts.", "nickname.x", "-", "tokenCounts.a b", "token,token,token,token,token,token,token,token,token"} {
		_, err := ParseSort(spec)
		e, ok := err.(*Error)
		if !ok || e.Code != CodeInvalid || len(e.Issues) != 1 || e.Issues[0].Path != "sort" {
			t.Errorf("ParseSort(%q) = %v, want an invalid error at sort", spec, err)
		}
	}
	for _, f := range SortFields() {
		if _, err := ParseSort("-" + f); err != nil {
			t.Errorf("listed field %q is refused: %v", f, err)
		}
	}
}

func FuzzParseSort(f *testing.F) {
	for _, s := range []string{"", "-promptCount,lastUsedAt", "tokenCounts.gpt4", "-", ",,", "meta,-meta", "tokenLimits.claude-opus", "x.y.z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		if _, err := ParseAPISort(spec); err != nil {
			if e, ok := err.(*Error); !ok || e.Code != CodeInvalid {
				t.Fatalf("ParseAPISort(%q): %v is not an invalid-input error", spec, err)
			}
		}
		keys, err := ParseSort(spec)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Code != CodeInvalid {
				t.Fatalf("ParseSort(%q): %v is not an invalid-input error", spec, err)
			}
			return
		}
		if len(keys) == 0 || len(keys) > maxSortKeys {
			t.Fatalf("ParseSort(%q) gave %d keys", spec, len(keys))
		}
		a, b := sortFixture(), sortFixture()
		slices.Reverse(b)
		Sort(a, keys)
		Sort(b, keys)
		if tokens(a) != tokens(b) {
			t.Fatalf("sort %q depends on the input order: %s vs %s", spec, tokens(a), tokens(b))
		}
	})
}

func BenchmarkSort10k(b *testing.B) {
	base := make([]*User, 10_000)
	for i := range base {
		base[i] = &User{Token: strings.Repeat("t", 8) + string(rune('a'+i%26)) + strings.Repeat("0", i%7),
			PromptCount: int64(i * 7919 % 1000), LastUsedAt: int64(i * 104729 % 100000),
			TokenCounts: map[string]int64{"gpt4o": int64(i), "claude": int64(i % 13)}}
	}
	keys, _ := ParseSort("-tokenCounts,-promptCount,lastUsedAt")
	list := make([]*User, len(base))
	b.ReportAllocs()
	for b.Loop() {
		copy(list, base)
		Sort(list, keys)
	}
}

// TestParseAPISort: the admin API sorts a plain field descending, every
// field alike, as the original's sortBy(fields, false) did; "-f" and
// "f:desc" descend too, "f:asc" ascends. Missing values stay last.
func TestParseAPISort(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		{"", "b,c,a,d"},
		{"promptCount", "b,a,c,d"},
		{"promptCount:desc", "b,a,c,d"},
		{"-promptCount", "b,a,c,d"},
		{"promptCount:asc", "d,a,c,b"},
		{"promptCount,lastUsedAt", "b,c,a,d"},
		{"promptCount,lastUsedAt:asc", "b,a,c,d"},
		{"createdAt", "a,c,d,b"},
		{"lastUsedAt", "c,a,b,d"}, // never used: last
		{"nickname", "a,c,b,d"},   // strings descending too (no nickname last)
		{"ip", "c,a,d,b"},         // arrays by length
		{"type", "c,b,a,d"},
		{"tokenCounts", "d,a,b,c"}, // maps by total
		{"token", "d,c,b,a"},
		{"token:asc", "a,b,c,d"},
	}
	for _, tc := range tests {
		keys, err := ParseAPISort(tc.spec)
		if err != nil {
			t.Fatalf("ParseAPISort(%q): %v", tc.spec, err)
		}
		list := sortFixture()
		Sort(list, keys)
		if got := tokens(list); got != tc.want {
			t.Errorf("API sort %q = %s, want %s", tc.spec, got, tc.want)
		}
	}
	for _, spec := range []string{"password", "token:up", ":asc"} {
		if _, err := ParseAPISort(spec); ErrorCode(err) != CodeInvalid {
			t.Errorf("ParseAPISort(%q) = %v, want invalid", spec, err)
		}
	}
	// The UI's parser keeps plain = ascending, and takes the suffixes too.
	for spec, want := range map[string]string{"promptCount": "d,a,c,b", "promptCount:desc": "b,a,c,d", "token:asc": "a,b,c,d"} {
		keys, err := ParseSort(spec)
		if err != nil {
			t.Fatal(err)
		}
		list := sortFixture()
		Sort(list, keys)
		if got := tokens(list); got != want {
			t.Errorf("UI sort %q = %s, want %s", spec, got, want)
		}
	}
}
