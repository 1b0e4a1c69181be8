package providers

import "testing"

// Mount finds one- and two-segment mounts and returns the rest of the
// path, "/" at least, without copying it.
func TestMount(t *testing.T) {
	byMount := map[string]int{"openai": 1, "aws/claude": 2, "aws": 3}
	for _, tt := range []struct {
		path  string
		want  int
		rest  string
		found bool
	}{
		{"/openai/v1/chat/completions", 1, "/v1/chat/completions", true},
		{"/openai", 1, "/", true},
		{"/openai/", 1, "/", true},
		{"openai/v1/models", 1, "/v1/models", true},
		{"/openai//v1", 1, "//v1", true},
		{"/aws/claude/v1/messages", 3, "/claude/v1/messages", true}, // the one-segment mount is found first
		{"/unknown/x", 0, "", false},
		{"/", 0, "", false},
		{"", 0, "", false},
		{"//openai", 0, "", false},
	} {
		v, rest, ok := Mount(tt.path, byMount)
		if v != tt.want || rest != tt.rest || ok != tt.found {
			t.Errorf("Mount(%q) = %d, %q, %v; want %d, %q, %v", tt.path, v, rest, ok, tt.want, tt.rest, tt.found)
		}
	}
	two := map[string]int{"aws/claude": 2, "google": 4}
	for path, rest := range map[string]string{"/aws/claude/v1/messages": "/v1/messages", "/aws/claude": "/", "/aws/claude/": "/"} {
		if v, got, ok := Mount(path, two); v != 2 || got != rest || !ok {
			t.Errorf("Mount(%q) = %d, %q, %v; want 2, %q", path, v, got, ok, rest)
		}
	}
	if _, _, ok := Mount("/aws/other/x", two); ok {
		t.Error("a two-segment mount found under another second segment")
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = Mount("/openai/v1/chat/completions", byMount) }); n != 0 {
		t.Errorf("Mount: %.0f allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = Mount("/aws/claude/v1/messages", two) }); n != 0 {
		t.Errorf("Mount of a two-segment mount: %.0f allocations, want 0", n)
	}
}
