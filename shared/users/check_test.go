package users_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

func set[T any](v T) users.Opt[T] { return users.Opt[T]{Set: true, Value: v} }

// TestPatchCheck: a patch built in code is held to the rules ParsePatch
// applies to the same values in JSON, with the same issues.
func TestPatchCheck(t *testing.T) {
	tests := []struct {
		name  string
		patch users.Patch
		doc   map[string]any
		want  []string // issue paths
	}{
		{"valid", users.Patch{Nickname: set("night owl"), Type: set(users.Temporary), ExpiresAt: set[int64](5),
			TokenLimits: set(map[string]int64{"gpt4o": 10}), Meta: set(map[string]any{"refreshable": true})},
			map[string]any{"nickname": "night owl", "type": "temporary", "expiresAt": 5, "tokenLimits": map[string]int64{"gpt4o": 10}, "meta": map[string]any{"refreshable": true}}, nil},
		{"null text", users.Patch{Nickname: users.Opt[string]{Set: true, Null: true}}, map[string]any{"nickname": nil}, nil},
		{"long nickname", users.Patch{Nickname: set(strings.Repeat("n", 81))}, map[string]any{"nickname": strings.Repeat("n", 81)}, []string{"nickname"}},
		{"80 runes", users.Patch{Nickname: set(strings.Repeat("é", 80))}, map[string]any{"nickname": strings.Repeat("é", 80)}, nil},
		{"long note", users.Patch{AdminNote: set(strings.Repeat("x", 2001))}, map[string]any{"adminNote": strings.Repeat("x", 2001)}, []string{"adminNote"}},
		{"bad type", users.Patch{Type: set(users.Type("root"))}, map[string]any{"type": "root"}, []string{"type"}},
		{"bad token", users.Patch{Token: set("a b")}, map[string]any{"token": "a b"}, []string{"token"}},
		{"negative", users.Patch{MaxIPs: set[int64](-1), PromptCount: set[int64](-2)}, map[string]any{"maxIps": -1, "promptCount": -2}, []string{"maxIps", "promptCount"}},
		{"beyond 2^53", users.Patch{PromptCount: set[int64](1<<53 + 1), TokenCounts: set(map[string]int64{"gpt4o": 1<<63 - 1})},
			map[string]any{"promptCount": 1<<53 + 1, "tokenCounts": map[string]int64{"gpt4o": 1<<63 - 1}}, []string{"promptCount", "tokenCounts.gpt4o"}},
		{"meta too large", users.Patch{Meta: set(map[string]any{"blob": strings.Repeat("x", 70<<10)})},
			map[string]any{"meta": map[string]any{"blob": strings.Repeat("x", 70<<10)}}, []string{"meta"}},
		{"families", users.Patch{TokenLimits: set(map[string]int64{"bad name": 1, "gpt4o": -1}), TokenRefresh: set(map[string]int64{"claude": 3})},
			map[string]any{"tokenLimits": map[string]int64{"bad name": 1, "gpt4o": -1}, "tokenRefresh": map[string]int64{"claude": 3}}, []string{"tokenLimits.bad name", "tokenLimits.gpt4o"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := issues(t, tt.patch.Check())
			data, _ := json.Marshal(tt.doc)
			_, perr := users.ParsePatch(data)
			parsed := issues(t, perr)
			if !slices.Equal(paths(got), tt.want) {
				t.Errorf("Check issues %v, want paths %v", got, tt.want)
			}
			if !slices.Equal(got, parsed) {
				t.Errorf("Check %v, ParsePatch %v", got, parsed)
			}
		})
	}
}

func issues(t *testing.T, err error) []users.Issue {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *users.Error
	if !errors.As(err, &e) || e.Code != users.CodeInvalid || e.Message == "" {
		t.Fatalf("err = %v, want an invalid *users.Error", err)
	}
	return e.Issues
}

func paths(is []users.Issue) []string {
	var out []string
	for _, i := range is {
		out = append(out, i.Path)
	}
	return out
}
