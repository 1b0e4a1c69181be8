package logging_test

import (
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/logging"
)

// FuzzRedactPath: whatever the path, no run of 16 or more token
// characters holding a digit, '-' or '_' is left in it (a token's whole
// length is never logged), segments stay where they were, and redacting
// twice changes nothing more.
func FuzzRedactPath(f *testing.F) {
	f.Add("/admin/users/8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50/reactivate")
	f.Add("/google-ai/v1beta/models/8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50:generateContent")
	f.Add("/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent")
	f.Add("/x:sk-live-0123456789abcdef.json")
	f.Add("/users/é")
	f.Add("//users//")
	f.Fuzz(func(t *testing.T, p string) {
		got := logging.RedactPath(p)
		if strings.Count(got, "/") != strings.Count(p, "/") {
			t.Fatalf("RedactPath(%q) = %q: segments moved", p, got)
		}
		for _, run := range tokenRuns(got) {
			if len(run) >= 16 && strings.Trim(run, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				t.Fatalf("RedactPath(%q) = %q keeps %q", p, got, run)
			}
		}
		if again := logging.RedactPath(got); again != got {
			t.Fatalf("RedactPath(%q) = %q, then %q", p, got, again)
		}
	})
}

// tokenRuns splits s into its maximal runs of letters, digits, '-', '_'.
func tokenRuns(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

// Every request's log line redacts its path: a path with no token costs
// no allocation.
func TestRedactPathCleanPathAllocatesNothing(t *testing.T) {
	for _, p := range []string{"/proxy/openai/v1/chat/completions", "/proxy/google-ai/v1beta/models/gemini-2.5-flash:streamGenerateContent"} {
		if n := testing.AllocsPerRun(100, func() { _ = logging.RedactPath(p) }); n != 0 {
			t.Errorf("RedactPath(%q): %v allocations", p, n)
		}
	}
}

func BenchmarkRedactPath(b *testing.B) {
	for _, p := range []string{"/proxy/openai/v1/chat/completions", "/proxy/google-ai/v1beta/models/8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50:generateContent"} {
		b.Run(p[strings.LastIndexByte(p, '/')+1:], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = logging.RedactPath(p)
			}
		})
	}
}
