package rtdb_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// What RTDB cannot hold as-is goes in and comes back exactly: each user is
// written through Modify (a conditional write of the whole node), as a new
// node and over an existing one, then read back with Get and List.
func TestEncodingRoundTrips(t *testing.T) {
	zero := int64(0)
	cases := []struct {
		name string
		edit func(u *users.User)
	}{
		{"family names with dots and digits", func(u *users.User) {
			u.TokenCounts = map[string]int64{"gpt-4.1": 5, "claude-3.5": 0, "0": 1, "12": 2}
			u.TokenLimits = map[string]int64{"gpt-4.1": 100}
		}},
		{"odd meta keys", func(u *users.User) {
			u.Meta = map[string]any{"a.b": 1.0, "$x": 2.0, "#h": 3.0, "[0]": 4.0, "s/l": 5.0, "%": 6.0, "": 7.0, "ctl\x01": 8.0, "%41": "not A"}
		}},
		{"integer-keyed meta stays an object", func(u *users.User) {
			u.Meta = map[string]any{"0": "a", "1": "b", "2": map[string]any{"0": true}}
		}},
		{"meta values RTDB drops or mangles", func(u *users.User) {
			u.Meta = map[string]any{
				"null": nil, "empty": "", "pct": "%", "pcts": "%%x", "marker": "%null", "markerObj": "%{}",
				"obj": map[string]any{}, "arr": []any{}, "nested": []any{nil, 1.5, []any{}, map[string]any{}, []any{nil}},
				"deep": map[string]any{"a": map[string]any{"b": map[string]any{"c": []any{"x", nil}}}},
			}
		}},
		{"empty collections that differ from absent ones", func(u *users.User) {
			u.TokenRefresh = map[string]int64{}
			u.Meta = map[string]any{}
			u.IP = []string{}
			u.MaxIPs = &zero
		}},
		{"absent optional collections", func(u *users.User) {
			u.TokenRefresh = nil
			u.Meta = nil
			u.TokenLimits = map[string]int64{}
		}},
		{"every scalar", func(u *users.User) {
			u.IP = []string{"192.0.2.1", "2001:db8::1"}
			u.Nickname = "%nick"
			u.Type = users.Temporary
			u.PromptCount = 1 << 40
			u.LastUsedAt, u.DisabledAt, u.ExpiresAt, u.RefreshedAt = 2, 3, 4, 5
			u.DisabledReason, u.AdminNote = "why", "note"
			u.Meta = map[string]any{"refreshable": true}
		}},
	}
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := users.New("tok-enc", users.Normal, t0, nil)
			tc.edit(want)
			wantJSON := toJSON(t, want)

			// Modify: a transaction writing the whole node.
			_ = s.Delete(ctx(t), "tok-enc")
			got, err := s.Modify(ctx(t), "tok-enc", true, func(u *users.User, _ bool) error {
				*u = *want.Clone()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "Modify's result", toJSON(t, got), wantJSON)
			sameJSON(t, "Get after Modify", toJSON(t, mustGet(t, s, "tok-enc")), wantJSON)

			// A new node, then a change of every field in place.
			other := users.New("tok-enc2", users.Special, t0, map[string]int64{"x": 1})
			other.Meta = map[string]any{"before": []any{1.0, 2.0}}
			for _, start := range []*users.User{nil, other} {
				_ = s.Delete(ctx(t), "tok-enc2")
				if start != nil {
					if _, err := s.Modify(ctx(t), "tok-enc2", true, func(u *users.User, _ bool) error { *u = *start.Clone(); return nil }); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := s.Modify(ctx(t), "tok-enc2", true, func(u *users.User, _ bool) error {
					*u = *want.Clone()
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				w := want.Clone()
				w.Token = "tok-enc2"
				sameJSON(t, "Get after Modify", toJSON(t, mustGet(t, s, "tok-enc2")), toJSON(t, w))
			}
			list := listJSON(t, s)
			sameJSON(t, "List", list["tok-enc"], wantJSON)
		})
	}
}

func sameJSON(t *testing.T, what, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// Data written by others (the original project, the console) reads back:
// integer-keyed objects that RTDB serves as arrays, unencoded keys, unknown
// fields. The next write stores it in this package's encoding, and a field
// change does not leave two spellings of one key behind.
func TestForeignDataReads(t *testing.T) {
	srv := rtdbfake.Start(t)
	s := open(t, fakeOptions(t, srv))
	srv.SetData("users/tok-raw", map[string]any{
		"token":       "tok-raw",
		"ip":          []any{"192.0.2.7"},
		"type":        "normal",
		"promptCount": 3,
		"tokenCounts": map[string]any{"0": 5, "1": 6}, // served as [5,6]
		"tokenLimits": map[string]any{"gpt4o": 100},
		"meta":        map[string]any{"0": "a", "1": "b"}, // served as ["a","b"]
		"createdAt":   1,
		"tokenCount":  99, // the original's deprecated total
	})
	want := `{"token":"tok-raw","ip":["192.0.2.7"],"type":"normal","promptCount":3,"tokenCounts":{"0":5,"1":6},"tokenLimits":{"gpt4o":100},"createdAt":1,"meta":{"0":"a","1":"b"}}`
	sameJSON(t, "Get", toJSON(t, mustGet(t, s, "tok-raw")), want)

	if _, err := s.Modify(ctx(t), "tok-raw", false, func(u *users.User, _ bool) error {
		u.TokenCounts["0"] = 50
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantAfter := `{"token":"tok-raw","ip":["192.0.2.7"],"type":"normal","promptCount":3,"tokenCounts":{"0":50,"1":6},"tokenLimits":{"gpt4o":100},"createdAt":1,"meta":{"0":"a","1":"b"}}`
	sameJSON(t, "Get after Modify", toJSON(t, mustGet(t, s, "tok-raw")), wantAfter)
	stored := srv.Data("users/tok-raw").(map[string]any)
	if counts := stored["tokenCounts"].(map[string]any); len(counts) != 2 || counts["%30"] != 50.0 {
		t.Fatalf("stored tokenCounts = %v, want only the encoded keys", counts)
	}
	if _, ok := stored["tokenCount"]; ok {
		t.Fatalf("unknown field kept: %v", stored)
	}
}
