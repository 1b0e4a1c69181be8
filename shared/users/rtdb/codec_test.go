package rtdb

import (
	"strings"
	"testing"
)

func TestKeyEncodingRoundTrips(t *testing.T) {
	keys := []string{
		"gpt4o", "gpt-4.1", "claude-3.5-sonnet", "a.b.c", "$x", "#tag", "[0]", "a/b",
		"%", "%2E", "100%", "", "ctl\x01\x1f", "del\x7f", "é ünï", "0", "12", "-3",
		"-", "01x", "x1",
	}
	for _, k := range keys {
		enc := encodeKey(k)
		if got := decodeKey(enc); got != k {
			t.Errorf("decodeKey(encodeKey(%q)) = %q via %q", k, got, enc)
		}
		if enc == "" || strings.ContainsAny(enc, ".$#[]/") {
			t.Errorf("encodeKey(%q) = %q: not a valid RTDB key", k, enc)
		}
		for i := 0; i < len(enc); i++ {
			if enc[i] < 0x20 || enc[i] == 0x7f {
				t.Errorf("encodeKey(%q) = %q keeps a control character", k, enc)
			}
		}
		if isIntegerLike(enc) {
			t.Errorf("encodeKey(%q) = %q looks like an array index", k, enc)
		}
	}
	// Keys written by others, not by encodeKey, read as they are.
	for raw, want := range map[string]string{"gpt4o": "gpt4o", "50%off": "50%off", "%zz": "%zz", "a%2Eb": "a.b"} {
		if got := decodeKey(raw); got != want {
			t.Errorf("decodeKey(%q) = %q, want %q", raw, got, want)
		}
	}
}
