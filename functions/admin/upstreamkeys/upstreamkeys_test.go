package upstreamkeys

import "testing"

func TestTail(t *testing.T) {
	for key, want := range map[string]string{
		"sk-proj-abcdefgh1234": "…1234",
		"short":                "…",
		"12345678":             "…",
		"123456789":            "…6789",
		"ключ-секрет-éé12":     "…éé12",
	} {
		if got := Tail(key); got != want {
			t.Errorf("Tail(%q) = %q, want %q", key, got, want)
		}
	}
}
