package jsonscan

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
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

// TestDuplicateKeysLastWins is why this package exists instead of
// gjson/sjson: a client may send an output limit twice, and the upstream's
// parser (like encoding/json) takes the last. sjson would clamp the first
// and let the second through; the scanner sees both.
func TestDuplicateKeysLastWins(t *testing.T) {
	body := []byte(`{"max_tokens":5,"max_tokens":999999}`)
	var upstream struct {
		MaxTokens int `json:"max_tokens"`
	}

	bySJSON, err := sjson.SetBytes(body, "max_tokens", 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(bySJSON, &upstream); err != nil || upstream.MaxTokens != 999999 {
		t.Fatalf("sjson now edits every occurrence (%s): this package could give way to it", bySJSON)
	}
	if got := gjson.GetBytes(body, "max_tokens").Int(); got != 5 {
		t.Fatalf("gjson now reads the last occurrence (%d)", got)
	}

	var edits []Edit
	if _, _, err := Walk(body, 0, true, func(key []byte, start, end int) error {
		if string(key) == "max_tokens" {
			edits = append(edits, Edit{Start: start, End: end, Repl: []byte("100")})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out := ApplyEdits(body, edits, false)
	if err := json.Unmarshal(out, &upstream); err != nil || upstream.MaxTokens != 100 {
		t.Fatalf("clamped body %s reads %d upstream", out, upstream.MaxTokens)
	}
}

// The scanner against gjson on what the proxy reads of every request: the
// model and the output limit of a 1 MiB conversation.
var benchBody = []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("word ", 200_000) + `"}],"max_tokens":4096}`)

func BenchmarkModelAndLimit(b *testing.B) {
	b.Run("jsonscan", func(b *testing.B) {
		b.SetBytes(int64(len(benchBody)))
		for b.Loop() {
			var model, limit []byte
			if _, _, err := Walk(benchBody, 0, true, func(key []byte, start, end int) error {
				switch string(key) {
				case "model":
					model = benchBody[start:end]
				case "max_tokens":
					limit = benchBody[start:end]
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if _, ok := ParseInt(limit); !ok || len(model) == 0 {
				b.Fatal("not found")
			}
		}
	})
	b.Run("gjson", func(b *testing.B) {
		b.SetBytes(int64(len(benchBody)))
		for b.Loop() {
			if !gjson.ValidBytes(benchBody) {
				b.Fatal("invalid")
			}
			r := gjson.GetManyBytes(benchBody, "model", "max_tokens")
			if r[0].Str == "" || r[1].Int() == 0 {
				b.Fatal("not found")
			}
		}
	})
}

// The prompt estimate counts text in every script and leaves out only
// what is encoded data in a member that carries data: base64 (plain,
// URL-safe, with escaped line breaks or slashes) and data URLs. Text
// that looks like base64 (CamelCase words without spaces) is counted
// wherever else it is, as is data an object types as text/*. Member
// names are counted inside values (a tool input's are read), not at the
// top level.
func TestWalkCountsTextNotData(t *testing.T) {
	b64 := strings.Repeat("iVBORw0KGgoAAAANSUhEUgAA+/8=", 100)
	camel := strings.Repeat("TellMeALongStoryAboutTheSea", 40)
	cases := []struct {
		name, doc string
		want      int64
	}{
		{"short", `{"content":"hello"}`, 5},
		{"spaced", `{"content":"` + strings.Repeat("word ", 300) + `"}`, 1500},
		{"cjk", `{"content":"` + strings.Repeat("这是一个很长的中文提示。", 100) + `"}`, 3600},
		{"cjk escaped", `{"content":"` + strings.Repeat(`\u8fd9\u662f`, 200) + `"}`, 2400},
		{"thai", `{"content":"` + strings.Repeat("ภาษาไทย", 100) + `"}`, 2100},
		{"unspaced ascii", `{"content":"` + strings.Repeat("a.b,c;", 200) + `"}`, 1200},
		{"camel case", `{"messages":[{"role":"user","content":"` + camel + `"}]}`, 4 + 4 + 7 + 1080},
		{"base64 as text", `{"contents":[{"parts":[{"text":"` + b64 + `"}]}]}`, 5 + 4 + 2800},
		{"data url as text", `{"content":"data:image/png;base64,` + camel + `"}`, 22 + 1080},
		{"base64", `{"data":"` + b64 + `"}`, 0},
		{"base64 url-safe", `{"source":{"data":"` + strings.Repeat("iVBORw0KGgo-_AAA", 100) + `"}}`, 4},
		{"base64 mime", `{"data":"` + strings.Repeat(strings.Repeat("QUFB", 19)+`\r\n`, 20) + `"}`, 0},
		{"base64 escaped slash", `{"data":"` + strings.ReplaceAll(b64, "/", `\/`) + `"}`, 0},
		{"base64 then cjk", `{"data":"` + b64 + strings.Repeat("中", 1000) + `"}`, int64(len(b64)) + 3000},
		{"data url", `{"image_url":{"url":"data:image/png;base64,` + b64 + `"}}`, 3},
		{"https url", `{"image_url":"https://example.com/a.png"}`, 25},
		{"bedrock bytes", `{"image":{"format":"png","source":{"bytes":"` + b64 + `"}}}`, 6 + 3 + 6 + 5},
		{"image answer", `{"data":[{"b64_json":"` + b64 + `"}]}`, 8},
		{"image source", `{"source":{"type":"base64","media_type":"image/png","data":"` + b64 + `"}}`, 4 + 6 + 10 + 9 + 4},
		{"text document", `{"source":{"type":"text","media_type":"text/plain","data":"` + camel + `"}}`, 4 + 4 + 10 + 10 + 4 + 1080},
		{"text typed after", `{"inlineData":{"data":"` + camel + `","mimeType":"TEXT/plain"}}`, 4 + 1080 + 8 + 10},
		{"element after an object", `{"data":[{},"` + camel + `"]}`, 1080},
		{"data deeper than followed", `{"x":` + strings.Repeat(`{"a":`, 40) + `{"data":"` + b64 + `"}` + strings.Repeat(`}`, 40) + `}`, 40 + 4 + 2800},
	}
	for _, tc := range cases {
		_, text, err := Walk([]byte(tc.doc), 0, true, func([]byte, int, int) error { return nil })
		if err != nil || text != tc.want {
			t.Errorf("%s: counted %d (%v), want %d", tc.name, text, err, tc.want)
		}
	}
}

// The prompt estimate over 1 MiB bodies of English, CJK and base64.
func BenchmarkWalkText(b *testing.B) {
	for _, bc := range []struct{ name, str string }{
		{"spaced", strings.Repeat("word ", 200_000)},
		{"cjk", strings.Repeat("中文提示", 1<<20/12)},
		{"base64", strings.Repeat("QUFB", 1<<20/4)},
	} {
		key := "text"
		if bc.name == "base64" {
			key = "data" // an image, left out
		}
		body := []byte(`{"contents":[{"parts":[{"` + key + `":"` + bc.str + `"}]}]}`)
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, _, err := Walk(body, 0, true, func([]byte, int, int) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzWalkKeys: keys are decoded as encoding/json decodes them, escaped
// or not, without a per-key allocation kept.
func FuzzWalkKeys(f *testing.F) {
	for _, k := range []string{`a`, `max\u005ftokens`, `\ud83d\ude00`, `\ud83d`, `\n\t\"\\\/`, `\u00e9`, `x\uZZZZ`} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if !utf8.ValidString(key) {
			return // encoding/json makes invalid bytes U+FFFD; no name the proxy reads has them
		}
		doc := []byte(`{"` + key + `":1}`)
		var want map[string]int
		wantErr := json.Unmarshal(doc, &want) != nil
		var got []string
		_, _, err := Walk(doc, 0, true, func(k []byte, _, _ int) error {
			got = append(got, string(k))
			return nil
		})
		if wantErr {
			return // the scanner may accept more than encoding/json
		}
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %v %q", doc, err, got)
		}
		if _, ok := want[got[0]]; !ok {
			t.Fatalf("%s: key %q, encoding/json has %v", doc, got[0], want)
		}
	})
}

// FuzzWalkText: the estimate never panics and never counts more text
// than the body holds, however members, arrays and data types mix.
func FuzzWalkText(f *testing.F) {
	f.Add([]byte(`{"m":[{"source":{"type":"text","media_type":"text/plain","data":"QUFB"}},"x"]}`))
	f.Add([]byte(`{"c":{"inlineData":{"data":"QUFB","mimeType":"text/plain"},"url":"data:image/png;base64,QUFB"}}`))
	f.Add([]byte(`{"a":[{"data":[{},"QUFB",{"media_type":"text/x","data":"QU"}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, text, _ := Walk(body, 0, true, func([]byte, int, int) error { return nil })
		if text < 0 || text > int64(len(body)) {
			t.Errorf("counted %d text bytes in %d: %q", text, len(body), body)
		}
	})
}
