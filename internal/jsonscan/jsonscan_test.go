package jsonscan

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestStringFields(t *testing.T) {
	cases := []struct {
		data string
		keys []string
		want int64
	}{
		{`{"choices":[{"delta":{"content":"Hello"}}]}`, []string{"content"}, 5},
		{`{"delta":{"content": "a\"b"}}`, []string{"content"}, 4}, // raw bytes: a \ " b
		{`{"delta":{"content":null,"tool_calls":[{"function":{"arguments":"{\"x\":1}"}}]}}`, []string{"content", "arguments"}, 9},
		{`{"text":"content","content":"x"}`, []string{"content"}, 1}, // "content" as a value is not a key
		{`{"a":"say \"content\":\"no\""}`, []string{"content"}, 0},
		{`{"parts":[{"text":"ab"},{"text":"cd"}]}`, []string{"text"}, 4},
		{`{"content":"unterminated`, []string{"content"}, 0},
	}
	for _, tc := range cases {
		if got := StringFields([]byte(tc.data), tc.keys...); got != tc.want {
			t.Errorf("StringFields(%s, %v) = %d, want %d", tc.data, tc.keys, got, tc.want)
		}
	}
	if !HasObject([]byte(`{"usage" : {"a":1}}`), "usage") || HasObject([]byte(`{"usage":null,"x":"usage"}`), "usage") {
		t.Error("HasObject")
	}
}

// Edits made in place give the same bytes as edits made in a copy, for
// every mix of growing, shrinking and same-size edits.
func TestApplyEditsInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		src := make([]byte, rng.IntN(40))
		for j := range src {
			src[j] = byte('a' + rng.IntN(26))
		}
		var edits []Edit
		for at := 0; at <= len(src); {
			start := at + rng.IntN(len(src)-at+1)
			end := start + rng.IntN(len(src)-start+1)
			if rng.IntN(3) == 0 {
				end = start // an insertion
			}
			edits = append(edits, Edit{start, end, bytes.Repeat([]byte{byte('0' + i%10)}, rng.IntN(6))})
			at = end + 1
			if rng.IntN(3) == 0 {
				break
			}
		}
		want := ApplyEdits(src, append([]Edit(nil), edits...), false)
		b := make([]byte, len(src), len(src)+rng.IntN(30))
		copy(b, src)
		got := ApplyEdits(b, append([]Edit(nil), edits...), true)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q with %v: in place %q, copied %q", src, edits, got, want)
		}
		if len(want) <= cap(b) && cap(b) > 0 && &got[:1][0] != &b[:1][0] {
			t.Fatalf("%q with %v: copied although the capacity sufficed", src, edits)
		}
	}
}
