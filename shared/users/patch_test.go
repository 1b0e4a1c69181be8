package users_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/userstest"
)

func issuesOf(t *testing.T, err error) []users.Issue {
	t.Helper()
	var e *users.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not a *users.Error", err, err)
	}
	if e.Code != users.CodeInvalid {
		t.Fatalf("code = %s, want invalid", e.Code)
	}
	if len(e.Issues) == 0 {
		t.Fatalf("no issues in %v", err)
	}
	return e.Issues
}

func TestParsePatchValid(t *testing.T) {
	doc := `{
		"token": "tok-1", "ip": ["203.0.113.7", "::ffff:198.51.100.1", "2001:DB8::1", "203.0.113.7"],
		"nickname": "night owl", "type": "temporary", "promptCount": 12,
		"tokenCounts": {"gpt4o": 5}, "tokenLimits": {"gpt4o": 100, "aws-claude": 0}, "tokenRefresh": {"gpt4o": 50},
		"createdAt": 1714380000000, "lastUsedAt": 1714380000001, "disabledAt": 1714380000002,
		"disabledReason": "why", "expiresAt": 1714380000003, "adminNote": "note", "maxIps": 0,
		"meta": {"refreshable": true, "nested": {"a": [1, "x"]}}, "refreshedAt": 7, "tokenCount": 99
	}`
	p, err := users.ParsePatch([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	u := users.New("tok-1", users.Normal, t0, nil)
	p.Apply(u)
	want := &users.User{
		Token: "tok-1", IP: []string{"203.0.113.7", "198.51.100.1", "2001:db8::1"},
		Nickname: "night owl", Type: users.Temporary, PromptCount: 12,
		TokenCounts: map[string]int64{"gpt4o": 5}, TokenLimits: map[string]int64{"gpt4o": 100, "aws-claude": 0},
		TokenRefresh: map[string]int64{"gpt4o": 50},
		CreatedAt:    1714380000000, LastUsedAt: 1714380000001, DisabledAt: 1714380000002,
		DisabledReason: "why", ExpiresAt: 1714380000003, AdminNote: "note", MaxIPs: ptr(0),
		Meta:        map[string]any{"refreshable": true, "nested": map[string]any{"a": []any{float64(1), "x"}}},
		RefreshedAt: 7,
	}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("applied:\n got %+v\nwant %+v", u, want)
	}
}

func ptr(n int64) *int64 { return &n }

func TestParsePatchIssues(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) } // runes, not bytes
	tests := []struct {
		name string
		doc  string
		want []users.Issue // exactly these, in order
	}{
		{"unknown field", `{"nickname":"a","tokenz":1}`, []users.Issue{{"tokenz", "unknown field"}}},
		{"token wrong type", `{"token":5}`, []users.Issue{{"token", "must be a string"}}},
		{"token bad characters", `{"token":"a b"}`, []users.Issue{{"token", "must be 1-128 letters, digits, '-' or '_'"}}},
		{"token empty", `{"token":""}`, []users.Issue{{"token", "must be 1-128 letters, digits, '-' or '_'"}}},
		{"token too long", `{"token":"` + strings.Repeat("a", 129) + `"}`, []users.Issue{{"token", "must be 1-128 letters, digits, '-' or '_'"}}},
		{"token null", `{"token":null}`, []users.Issue{{"token", "may not be null"}}},
		{"ip not an array", `{"ip":"1.2.3.4"}`, []users.Issue{{"ip", "must be an array of IP addresses"}}},
		{"ip entry wrong type", `{"ip":[1]}`, []users.Issue{{"ip", "must be an array of IP addresses"}}},
		{"ip entry not an address", `{"ip":["1.2.3.4","nope","10.0.0.0/8"]}`, []users.Issue{{"ip[1]", "is not an IP address"}, {"ip[2]", "is not an IP address"}}},
		{"nickname wrong type", `{"nickname":5}`, []users.Issue{{"nickname", "must be a string"}}},
		{"nickname too long", `{"nickname":"` + long(81) + `"}`, []users.Issue{{"nickname", "must be at most 80 characters"}}},
		{"admin note too long", `{"adminNote":"` + long(2001) + `"}`, []users.Issue{{"adminNote", "must be at most 2000 characters"}}},
		{"disabled reason too long", `{"disabledReason":"` + long(2001) + `"}`, []users.Issue{{"disabledReason", "must be at most 2000 characters"}}},
		{"type unknown", `{"type":"admin"}`, []users.Issue{{"type", `must be one of "normal", "special", "temporary"`}}},
		{"type null", `{"type":null}`, []users.Issue{{"type", "may not be null"}}},
		{"count as a word", `{"promptCount":"three"}`, []users.Issue{{"promptCount", "must be an integer"}}},
		{"count as empty string", `{"maxIps":""}`, []users.Issue{{"maxIps", "must be an integer"}}},
		{"count as hex string", `{"maxIps":"0x10"}`, []users.Issue{{"maxIps", "must be an integer"}}},
		{"count fraction", `{"promptCount":1.5}`, []users.Issue{{"promptCount", "must be a whole number"}}},
		{"count fraction string", `{"maxIps":"2.5"}`, []users.Issue{{"maxIps", "must be a whole number"}}},
		{"count negative string", `{"tokenLimits":{"gpt4o":"-3"}}`, []users.Issue{{"tokenLimits.gpt4o", "must be 0 or more"}}},
		{"count too large", `{"promptCount":1e300}`, []users.Issue{{"promptCount", "must be at most 2^53"}}},
		{"count beyond 2^53 in digits", `{"promptCount":9007199254740993}`, []users.Issue{{"promptCount", "must be at most 2^53"}}},
		{"count of 2^63-1", `{"tokenCounts":{"gpt4o":9223372036854775807}}`, []users.Issue{{"tokenCounts.gpt4o", "must be at most 2^53"}}},
		{"count beyond 2^53 as a string", `{"maxIps":"9007199254740993"}`, []users.Issue{{"maxIps", "must be at most 2^53"}}},
		{"count negative", `{"promptCount":-1}`, []users.Issue{{"promptCount", "must be 0 or more"}}},
		{"count bool", `{"promptCount":true}`, []users.Issue{{"promptCount", "must be an integer"}}},
		{"count null", `{"promptCount":null}`, []users.Issue{{"promptCount", "may not be null"}}},
		{"createdAt null", `{"createdAt":null}`, []users.Issue{{"createdAt", "may not be null"}}},
		{"maxIps negative", `{"maxIps":-1}`, []users.Issue{{"maxIps", "must be 0 or more"}}},
		{"expiresAt string", `{"expiresAt":"tomorrow"}`, []users.Issue{{"expiresAt", "must be an integer"}}},
		{"map not an object", `{"tokenLimits":[1]}`, []users.Issue{{"tokenLimits", "must be an object of model family to integer"}}},
		{"map value wrong", `{"tokenCounts":{"gpt4o":"x","claude":-2,"turbo":null}}`, []users.Issue{
			{"tokenCounts.claude", "must be 0 or more"}, {"tokenCounts.gpt4o", "must be an integer"}, {"tokenCounts.turbo", "must be an integer"}}},
		{"family name invalid", `{"tokenRefresh":{"bad family":1,"-x":1}}`, []users.Issue{
			{"tokenRefresh.-x", "is not a valid model family name"}, {"tokenRefresh.bad family", "is not a valid model family name"}}},
		{"family name too long", `{"tokenLimits":{"` + strings.Repeat("f", 65) + `":1}}`, []users.Issue{
			{"tokenLimits." + strings.Repeat("f", 65), "is not a valid model family name"}}},
		{"meta not an object", `{"meta":[1]}`, []users.Issue{{"meta", "must be an object"}}},
		{"meta string", `{"meta":"x"}`, []users.Issue{{"meta", "must be an object"}}},
		{"deprecated tokenCount wrong type", `{"tokenCount":"x"}`, []users.Issue{{"tokenCount", "must be an integer"}}},
		{"several, sorted by field", `{"zzz":1,"type":"x","maxIps":-1,"aaa":2}`, []users.Issue{
			{"aaa", "unknown field"}, {"maxIps", "must be 0 or more"}, {"type", `must be one of "normal", "special", "temporary"`}, {"zzz", "unknown field"}}},
		{"malformed JSON", `{"nickname":`, []users.Issue{{"", "malformed JSON"}}},
		{"trailing garbage", `{"nickname":"a"} x`, []users.Issue{{"", "malformed JSON"}}},
		{"array", `[]`, []users.Issue{{"", "body must be a JSON object"}}},
		{"null", `null`, []users.Issue{{"", "body must be a JSON object"}}},
		{"empty", ``, []users.Issue{{"", "malformed JSON"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := users.ParsePatch([]byte(tt.doc))
			got := issuesOf(t, err)
			if !slices.Equal(got, tt.want) {
				t.Errorf("issues = %q, want %q", got, tt.want)
			}
			if !reflect.DeepEqual(p, users.Patch{}) {
				t.Errorf("a failed parse returned a patch: %+v", p)
			}
			msg := err.(*users.Error).Message
			if len(tt.want) == 1 && tt.want[0].Path != "" && !strings.Contains(msg, tt.want[0].Path) {
				t.Errorf("message %q does not name %s", msg, tt.want[0].Path)
			}
			if len(tt.want) > 1 && !strings.HasPrefix(msg, "Invalid user: ") {
				t.Errorf("message %q", msg)
			}
		})
	}
}

// The same bad input always gives the same message.
func TestParsePatchMessageIsStable(t *testing.T) {
	doc := []byte(`{"e":1,"d":2,"c":3,"b":4,"a":5,"tokenLimits":{"x y":1,"z z":2}}`)
	_, err := users.ParsePatch(doc)
	first := err.Error()
	for range 50 {
		if _, err := users.ParsePatch(doc); err.Error() != first {
			t.Fatalf("message changed: %q vs %q", err, first)
		}
	}
	if !strings.Contains(first, "first at a: unknown field") {
		t.Errorf("message %q", first)
	}
}

func TestParsePatchLimitsAccepted(t *testing.T) {
	doc := `{"nickname":"` + strings.Repeat("é", 80) + `","adminNote":"` + strings.Repeat("x", 2000) +
		`","token":"` + strings.Repeat("a", 128) + `","tokenLimits":{"` + strings.Repeat("f", 64) + `":9007199254740992}}`
	p, err := users.ParsePatch([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if p.TokenLimits.Value[strings.Repeat("f", 64)] != 1<<53 {
		t.Errorf("2^53 lost: %v", p.TokenLimits.Value)
	}
}

func TestParsePatchNullSemantics(t *testing.T) {
	base := func() *users.User {
		return &users.User{
			Token: "tok", IP: []string{"1.1.1.1"}, Nickname: "n", Type: users.Special, PromptCount: 3,
			TokenCounts: map[string]int64{"gpt4o": 1}, TokenLimits: map[string]int64{"gpt4o": 2},
			TokenRefresh: map[string]int64{"gpt4o": 3}, CreatedAt: 10, LastUsedAt: 11, DisabledAt: 12,
			DisabledReason: "r", ExpiresAt: 13, AdminNote: "a", MaxIPs: ptr(4), Meta: map[string]any{"k": "v"}, RefreshedAt: 14,
		}
	}
	tests := []struct {
		name  string
		doc   string
		check func(u *users.User) bool
	}{
		{"empty patch changes nothing", `{}`, func(u *users.User) bool { return reflect.DeepEqual(u, base()) }},
		{"deprecated tokenCount ignored", `{"tokenCount":123}`, func(u *users.User) bool { return reflect.DeepEqual(u, base()) }},
		{"deprecated tokenCount null ignored", `{"tokenCount":null}`, func(u *users.User) bool { return reflect.DeepEqual(u, base()) }},
		{"ip null empties", `{"ip":null}`, func(u *users.User) bool { return u.IP != nil && len(u.IP) == 0 }},
		{"ip [] empties", `{"ip":[]}`, func(u *users.User) bool { return u.IP != nil && len(u.IP) == 0 }},
		{"nickname null deletes", `{"nickname":null}`, func(u *users.User) bool { return u.Nickname == "" }},
		{"nickname empty deletes", `{"nickname":""}`, func(u *users.User) bool { return u.Nickname == "" }},
		{"counts null empties", `{"tokenCounts":null}`, func(u *users.User) bool { return u.TokenCounts != nil && len(u.TokenCounts) == 0 }},
		{"limits null empties", `{"tokenLimits":null}`, func(u *users.User) bool { return u.TokenLimits != nil && len(u.TokenLimits) == 0 }},
		{"refresh null deletes", `{"tokenRefresh":null}`, func(u *users.User) bool { return u.TokenRefresh == nil }},
		{"refresh set to 0", `{"tokenRefresh":{"gpt4o":0}}`, func(u *users.User) bool { return maps.Equal(u.TokenRefresh, map[string]int64{"gpt4o": 0}) }},
		{"map replaced whole", `{"tokenLimits":{"claude":5}}`, func(u *users.User) bool { return maps.Equal(u.TokenLimits, map[string]int64{"claude": 5}) }},
		{"lastUsedAt null", `{"lastUsedAt":null}`, func(u *users.User) bool { return u.LastUsedAt == 0 }},
		{"disabledAt null re-enables", `{"disabledAt":null,"disabledReason":null}`, func(u *users.User) bool { return !u.Disabled() && u.DisabledReason == "" }},
		{"expiresAt null", `{"expiresAt":null}`, func(u *users.User) bool { return u.ExpiresAt == 0 }},
		{"adminNote null", `{"adminNote":null}`, func(u *users.User) bool { return u.AdminNote == "" }},
		{"maxIps null falls back to default", `{"maxIps":null}`, func(u *users.User) bool { return u.MaxIPs == nil }},
		{"maxIps 0 is kept (unlimited)", `{"maxIps":0}`, func(u *users.User) bool { return u.MaxIPs != nil && *u.MaxIPs == 0 }},
		{"meta null deletes", `{"meta":null}`, func(u *users.User) bool { return u.Meta == nil }},
		{"meta replaced", `{"meta":{}}`, func(u *users.User) bool { return u.Meta != nil && len(u.Meta) == 0 }},
		{"refreshedAt null", `{"refreshedAt":null}`, func(u *users.User) bool { return u.RefreshedAt == 0 }},
		{"scalars set", `{"promptCount":0,"type":"normal","createdAt":99}`, func(u *users.User) bool {
			return u.PromptCount == 0 && u.Type == users.Normal && u.CreatedAt == 99
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := users.ParsePatch([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			u := base()
			p.Apply(u)
			if !tt.check(u) {
				t.Errorf("after %s: %+v", tt.doc, u)
			}
			// Untouched fields stay as they were.
			b := base()
			if !strings.Contains(tt.doc, "adminNote") && u.AdminNote != b.AdminNote {
				t.Errorf("adminNote changed")
			}
			if !strings.Contains(tt.doc, "ip") && !slices.Equal(u.IP, b.IP) {
				t.Errorf("ip changed")
			}
		})
	}
}

// A patch's maps are its own: applying it to two users shares nothing
// the caller could later mutate through the patch... and a JSON
// round trip of the applied user keeps the original's field names.
func TestApplyThenMarshal(t *testing.T) {
	p, err := users.ParsePatch([]byte(`{"nickname":"x","maxIps":2,"meta":{"refreshable":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	u := users.New("tok", users.Temporary, t0, map[string]int64{"gpt4o": 10, "claude": 0})
	u.ExpiresAt = t0.UnixMilli()
	p.Apply(u)
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"token":"tok","ip":[],"nickname":"x","type":"temporary","promptCount":0,"tokenCounts":{},"tokenLimits":{"gpt4o":10},` +
		`"createdAt":` + itoa(t0.UnixMilli()) + `,"expiresAt":` + itoa(t0.UnixMilli()) + `,"maxIps":2,"meta":{"refreshable":true}}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
}

func TestParsePatchList(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		want  []users.Issue
		count int
	}{
		{"valid", `{"users":[{"token":"a"},{"token":"b","nickname":"x"},{"token":"c","maxIps":1}]}`, nil, 3},
		{"empty list", `{"users":[]}`, nil, 0},
		{"missing users", `{}`, []users.Issue{{"users", "required"}}, 0},
		{"unknown top-level field", `{"users":[],"version":2}`, []users.Issue{{"version", "unknown field"}}, 0},
		{"users not an array", `{"users":{"token":"a"}}`, []users.Issue{{"users", "must be an array of users"}}, 0},
		{"users null", `{"users":null}`, []users.Issue{{"users", "must be an array of users"}}, 0},
		{"not an object", `[{"token":"a"}]`, []users.Issue{{"", "body must be a JSON object"}}, 0},
		{"malformed", `{"users":[`, []users.Issue{{"", "malformed JSON"}}, 0},
		{"entry without token", `{"users":[{"token":"a"},{"nickname":"x"}]}`, []users.Issue{{"users[1].token", "required"}}, 0},
		{"entry with null token", `{"users":[{"token":null}]}`, []users.Issue{{"users[0].token", "may not be null"}, {"users[0].token", "required"}}, 0},
		{"entry not an object", `{"users":["a"]}`, []users.Issue{{"users[0]", "body must be a JSON object"}, {"users[0].token", "required"}}, 0},
		{"duplicate tokens", `{"users":[{"token":"a"},{"token":"b"},{"token":"a"},{"token":"a"}]}`, []users.Issue{
			{"users[2].token", "duplicate of users[0]"}, {"users[3].token", "duplicate of users[2]"}}, 0},
		{"entry field issue path", `{"users":[{"token":"a"},{"token":"b"},{"token":"c","maxIps":"x","tokenLimits":{"gpt4o":-1}}]}`, []users.Issue{
			{"users[2].maxIps", "must be an integer"}, {"users[2].tokenLimits.gpt4o", "must be 0 or more"}}, 0},
		{"issues of every entry", `{"users":[{"token":"a","foo":1},{"token":"b b"}],"x":1}`, []users.Issue{
			{"x", "unknown field"}, {"users[0].foo", "unknown field"}, {"users[1].token", "must be 1-128 letters, digits, '-' or '_'"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := users.ParsePatchList([]byte(tt.doc))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(ps) != tt.count {
					t.Fatalf("%d patches, want %d", len(ps), tt.count)
				}
				return
			}
			if ps != nil {
				t.Errorf("patches returned with an error")
			}
			if got := issuesOf(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("issues = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePatchListOriginalExport(t *testing.T) {
	ps, err := users.ParsePatchList(userstest.OriginalExport)
	if err != nil {
		t.Fatalf("the original's export does not parse: %v", err)
	}
	var doc struct {
		Users []json.RawMessage `json:"users"`
	}
	if err := json.Unmarshal(userstest.OriginalExport, &doc); err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(doc.Users) || len(ps) < 4 {
		t.Fatalf("%d patches for %d users", len(ps), len(doc.Users))
	}
	for i, p := range ps {
		if !p.Token.Set || !users.ValidToken(p.Token.Value) {
			t.Errorf("users[%d] token %+v", i, p.Token)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := func() *users.User { return users.New("tok", users.Normal, t0, nil) }
	tests := []struct {
		name  string
		edit  func(u *users.User)
		paths []string
	}{
		{"valid normal", func(u *users.User) {}, nil},
		{"valid temporary", func(u *users.User) { u.Type = users.Temporary; u.ExpiresAt = 1 }, nil},
		{"bad token", func(u *users.User) { u.Token = "a/b" }, []string{"token"}},
		{"bad type", func(u *users.User) { u.Type = "root" }, []string{"type"}},
		{"temporary without expiry", func(u *users.User) { u.Type = users.Temporary }, []string{"expiresAt"}},
		{"no createdAt", func(u *users.User) { u.CreatedAt = 0 }, []string{"createdAt"}},
		{"everything wrong", func(u *users.User) { u.Token = ""; u.Type = users.Temporary; u.CreatedAt = 0 }, []string{"token", "expiresAt", "createdAt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := ok()
			tt.edit(u)
			err := u.Validate()
			if tt.paths == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var got []string
			for _, is := range issuesOf(t, err) {
				got = append(got, is.Path)
			}
			if !slices.Equal(got, tt.paths) {
				t.Errorf("paths = %v, want %v", got, tt.paths)
			}
		})
	}
}

func TestValidTokenAndFamily(t *testing.T) {
	for _, s := range []string{"a", "8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50", "A_b-9", strings.Repeat("z", 128)} {
		if !users.ValidToken(s) {
			t.Errorf("ValidToken(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-a", "_a", "a b", "a/b", "a.b", "ä", strings.Repeat("z", 129)} {
		if users.ValidToken(s) {
			t.Errorf("ValidToken(%q) = true", s)
		}
	}
	for _, s := range []string{"gpt4o", "gpt4-turbo", "aws-claude", "gemini-1.5", "a_b"} {
		if !users.ValidFamily(s) {
			t.Errorf("ValidFamily(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".x", "a b", "a/b", strings.Repeat("f", 65)} {
		if users.ValidFamily(s) {
			t.Errorf("ValidFamily(%q) = true", s)
		}
	}
}

func FuzzParsePatch(f *testing.F) {
	f.Add([]byte(`{"token":"a","ip":["1.2.3.4"],"tokenLimits":{"gpt4o":5},"maxIps":null}`))
	f.Add([]byte(`{"meta":{"a":[1,{"b":null}]},"tokenCount":3}`))
	f.Add([]byte(`{"promptCount":1e400}`))
	f.Add([]byte(`{"maxIps":" 1e3 ","tokenLimits":{"gpt4o":"+7"},"promptCount":"0x10"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := users.ParsePatch(data)
		if err != nil {
			if users.ErrorCode(err) != users.CodeInvalid {
				t.Fatalf("error code %s", users.ErrorCode(err))
			}
			return
		}
		u := users.New("tok", users.Normal, t0, nil)
		p.Apply(u)
		// Whatever was accepted encodes and stays within the limits.
		if _, err := json.Marshal(u); err != nil {
			t.Fatalf("applied user does not encode: %v", err)
		}
		if u.PromptCount < 0 || (u.MaxIPs != nil && *u.MaxIPs < 0) {
			t.Fatalf("negative count accepted: %+v", u)
		}
	})
}

// An export from GET /users ({users, count}) imports as it is: a valid
// count is ignored, a bad one is reported rather than dropped.
func TestParsePatchListExportCount(t *testing.T) {
	plain, err := users.ParsePatchList([]byte(`{"users":[{"token":"tok-a","nickname":"a"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	withCount, err := users.ParsePatchList([]byte(`{"count":1,"users":[{"token":"tok-a","nickname":"a"}]}`))
	if err != nil {
		t.Fatalf("export with count: %v", err)
	}
	if !reflect.DeepEqual(plain, withCount) {
		t.Fatalf("count changed the import: %+v vs %+v", plain, withCount)
	}
	for _, bad := range []string{`"four"`, `-1`, `1.5`, `null`} {
		_, err := users.ParsePatchList([]byte(`{"count":` + bad + `,"users":[]}`))
		var e *users.Error
		if !errors.As(err, &e) || len(e.Issues) != 1 || e.Issues[0].Path != "count" {
			t.Errorf("count %s: %v, want one issue at count", bad, err)
		}
	}
}

// TestNumericStrings: integer fields take numeric strings, as the original
// coerced maxIps ("maxIps":"3"), and integral numbers in any JSON form.
func TestNumericStrings(t *testing.T) {
	p, err := users.ParsePatch([]byte(`{"maxIps":"3","promptCount":" 12 ","tokenCounts":{"gpt4o":"1500"},
		"tokenLimits":{"gpt4o":"1e4","claude":"+7"},"tokenRefresh":{"gpt4o":"250.0"},"createdAt":1.7e12,"expiresAt":"1893456000000"}`))
	if err != nil {
		t.Fatal(err)
	}
	u := users.New("tok", users.Normal, t0, nil)
	p.Apply(u)
	if u.MaxIPs == nil || *u.MaxIPs != 3 || u.PromptCount != 12 || u.TokenCounts["gpt4o"] != 1500 ||
		u.TokenLimits["gpt4o"] != 10000 || u.TokenLimits["claude"] != 7 || u.TokenRefresh["gpt4o"] != 250 ||
		u.CreatedAt != 1_700_000_000_000 || u.ExpiresAt != 1_893_456_000_000 {
		t.Fatalf("parsed %+v (maxIps %v)", u, u.MaxIPs)
	}
	// Written back as numbers.
	b, _ := json.Marshal(u)
	if !strings.Contains(string(b), `"maxIps":3`) || !strings.Contains(string(b), `"gpt4o":1500`) {
		t.Fatalf("encoded %s", b)
	}
}

// An import holds at most MaxImportUsers entries, refused before they are
// held: 32 MiB of empty objects would otherwise be millions of users.
func TestParsePatchListBoundsItsUsers(t *testing.T) {
	list := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"users":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"token":"t%d"}`, i)
		}
		b.WriteString(`]}`)
		return []byte(b.String())
	}
	if ps, err := users.ParsePatchList(list(users.MaxImportUsers)); err != nil || len(ps) != users.MaxImportUsers {
		t.Fatalf("%d users: %d parsed, %v", users.MaxImportUsers, len(ps), err)
	}
	_, err := users.ParsePatchList(list(users.MaxImportUsers + 1))
	if got := issuesOf(t, err); len(got) != 1 || got[0].Path != "users" || !strings.Contains(got[0].Message, "at most 50000 users") {
		t.Fatalf("one user too many: %v", err)
	}
	for _, bad := range []string{`{"users":{}}`, `{"users":"x"}`, `{"users":null}`} {
		_, err := users.ParsePatchList([]byte(bad))
		if got := issuesOf(t, err); len(got) == 0 || got[0].Path != "users" {
			t.Errorf("%s: %v", bad, got)
		}
	}
}
