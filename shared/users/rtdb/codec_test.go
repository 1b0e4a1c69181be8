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

// usageFlushed reads back as written, through JSON as the database serves
// it; what is not a writer's number is skipped, and a writer id is a
// valid, non-integer key.
func TestFlushedRoundTrips(t *testing.T) {
	f := map[string]int64{newWriterID(): 1_764_790_000_123, newWriterID(): 1}
	enc := map[string]any{"token": "tok", flushedField: encodeFlushed(f)}
	raw := roundTrip(enc)
	got := decodeFlushed(raw)
	if len(got) != len(f) {
		t.Fatalf("decodeFlushed = %v, want %v", got, f)
	}
	for w, n := range f {
		if got[w] != n || flushedBy(raw, w) != n {
			t.Errorf("writer %s: %d (flushedBy %d), want %d", w, got[w], flushedBy(raw, w), n)
		}
		if len(w) != 14 || isIntegerLike(w) || strings.ContainsAny(w, ".$#[]/%") {
			t.Errorf("writer id %q is not a plain 14-character key", w)
		}
	}
	if flushedBy(raw, "wother") != 0 || encodeFlushed(nil) != nil {
		t.Error("an absent writer or an empty map reads as something")
	}
	odd := roundTrip(map[string]any{flushedField: map[string]any{"wa": "x", "wb": 1.5, "wc": 7}})
	if got := decodeFlushed(odd); len(got) != 1 || got["wc"] != 7 {
		t.Errorf("decodeFlushed of hand-edited entries = %v, want only wc", got)
	}
	if _, err := userFromValue("tok", raw); err != nil {
		t.Fatalf("a user with usageFlushed does not decode: %v", err)
	}
}

// FuzzFlushed: whatever a stored user's usageFlushed holds (hand edits,
// other programs), reading it neither fails nor panics; a flush's pruning
// leaves at most flushedMaxWriters entries, the flushing writer's among
// them; and what it writes reads back the same.
func FuzzFlushed(f *testing.F) {
	for _, s := range []string{
		`{"usageFlushed":{"wa":1,"wb":"x"}}`,
		`{"usageFlushed":[1,2]}`,
		`{"usageFlushed":"%{}"}`,
		`{"usageFlushed":{"wa":1.5e300,"wb":-1,"wc":null,"wd":{"x":1},"we":9007199254740993}}`,
		`{"usageFlushed":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17}}`,
		`[1]`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	const me, now = "wme", int64(1_764_790_000_000)
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := decodeJSON(data)
		if err != nil {
			return
		}
		fl := decodeFlushed(raw)
		fl[me] = now
		pruneFlushed(fl, me, now)
		if len(fl) > flushedMaxWriters || fl[me] != now {
			t.Fatalf("pruned to %d entries, own %d: %v", len(fl), fl[me], fl)
		}
		back := decodeFlushed(roundTrip(map[string]any{flushedField: encodeFlushed(fl)}))
		if len(back) != len(fl) {
			t.Fatalf("read back %v, wrote %v", back, fl)
		}
		for w, n := range fl {
			if back[w] != n {
				t.Fatalf("read back %v, wrote %v", back, fl)
			}
		}
	})
}
