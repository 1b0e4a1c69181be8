package framing

import (
	"bytes"
	"encoding/json"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Events are found whatever the read boundaries, in LF and CRLF streams.
func TestSSESplitter(t *testing.T) {
	streams := []string{
		"data: {\"a\":1}\n\ndata: {\"a\":2}\n\nevent: x\ndata: [DONE]\n\n",
		"data: {\"a\":1}\r\n\r\ndata: {\"a\":2}\r\n\r\nevent: x\r\ndata: [DONE]\r\n\r\n",
		": comment\n\ndata: {\"a\":1}\n\n\ndata: {\"a\":2}\n\nevent: x\ndata: [DONE]\n\n",
	}
	for _, stream := range streams {
		for _, size := range []int{1, 2, 3, 5, 7, 1000} {
			s := &SSE{}
			var raw bytes.Buffer
			var data []string
			for i := 0; i < len(stream); i += size {
				s.Feed([]byte(stream[i:min(i+size, len(stream))]), func(r, name, d []byte) {
					raw.Write(r)
					if len(d) > 0 {
						data = append(data, string(name)+"|"+string(d))
					}
				})
			}
			raw.Write(s.Rest())
			if raw.String() != stream {
				t.Errorf("size %d: relayed bytes differ:\n%q\n%q", size, raw.String(), stream)
			}
			if got := strings.Join(data, ","); got != `|{"a":1},|{"a":2},x|[DONE]` {
				t.Errorf("size %d: events %s", size, got)
			}
		}
	}
}

func TestArraySplitter(t *testing.T) {
	stream := `[{"candidates":[{"content":{"parts":[{"text":"a]}\"{"}]}}]}` + "\n,\r\n" + `{"usageMetadata":{"promptTokenCount":3}}]`
	for _, size := range []int{1, 4, 1000} {
		s := &Array{}
		var raw bytes.Buffer
		var elems []string
		for i := 0; i < len(stream); i += size {
			s.Feed([]byte(stream[i:min(i+size, len(stream))]), func(r, _, d []byte) {
				raw.Write(r)
				if len(d) > 0 {
					elems = append(elems, string(d))
				}
			})
		}
		if raw.String() != stream {
			t.Errorf("size %d: relayed %q", size, raw.String())
		}
		if len(elems) != 2 || !json.Valid([]byte(elems[0])) || elems[1] != `{"usageMetadata":{"promptTokenCount":3}}` {
			t.Errorf("size %d: elements %q", size, elems)
		}
	}
}

// An element over maxElement (an inline image) is relayed whole; what is
// kept of it for reading usage is its top-level members that fit, named
// Cut, so that its usage is read and an earlier element's is not taken
// for it.
func TestArraySplitterCutsLargeElement(t *testing.T) {
	img := strings.Repeat("QUFB", 5<<20/4)
	usage := `"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2001}`
	cases := []struct{ elem, want string }{
		{`{"candidates":[{"content":{"parts":[{"inlineData":{"data":"` + img + `"}}]},"finishReason":"STOP"}],` + usage + `,"modelVersion":"m"}`, `{` + usage + `,"modelVersion":"m"}`},
		{`{` + usage + `, "candidates":[{"content":{"parts":[{"inlineData":{"data":"` + img + `"}}]}}]}`, `{` + usage + `}`},
		{`{"a":"` + img + `","b":"` + img + `"}`, `{}`},
	}
	for _, tc := range cases {
		stream := `[{"usageMetadata":{"promptTokenCount":10}},` + "\n" + tc.elem + `,{"x":1}]`
		s := &Array{}
		var raw bytes.Buffer
		var names, elems []string
		for i := 0; i < len(stream); i += 16 << 10 {
			s.Feed([]byte(stream[i:min(i+16<<10, len(stream))]), func(r, n, d []byte) {
				raw.Write(r)
				if len(d) > 0 {
					names, elems = append(names, string(n)), append(elems, string(d))
				}
			})
		}
		if raw.String() != stream {
			t.Errorf("%.60s: relayed %d bytes of %d", tc.elem, raw.Len(), len(stream))
		}
		if len(elems) != 3 || names[0] != "" || names[1] != Cut || names[2] != "" || elems[1] != tc.want || elems[2] != `{"x":1}` {
			t.Errorf("%.60s: names %q, elements %.200q", tc.elem, names, elems)
		}
	}
}

// FuzzSSESplitter: relayed bytes always equal the input.
func FuzzSSESplitter(f *testing.F) {
	f.Add("data: {\"a\":1}\n\ndata: x\r\n\r\n", 3)
	f.Add("\n\n\r\n\r\ndata:\n\n", 1)
	f.Fuzz(func(t *testing.T, stream string, size int) {
		if size <= 0 || size > 64 {
			size = 7
		}
		s := &SSE{}
		var raw bytes.Buffer
		for i := 0; i < len(stream); i += size {
			s.Feed([]byte(stream[i:min(i+size, len(stream))]), func(r, _, _ []byte) { raw.Write(r) })
		}
		raw.Write(s.Rest())
		if raw.String() != stream {
			t.Fatalf("relayed %q, want %q", raw.String(), stream)
		}
	})
}

// An event that outgrows maxEvent is passed on as it comes, unread and
// named Cut, holding no more than maxEvent and a feed; every byte is kept,
// in order, and the events after it are read as usual, a blank line that
// straddles two feeds included.
func TestSSEOversizedEventIsPassedOnUnread(t *testing.T) {
	for _, split := range []string{"\n|\n", "\n\r|\n", "|\n\n", "\n\n|"} {
		s := &SSE{}
		var in, out bytes.Buffer
		var events [][2]string
		cuts := 0
		emit := func(raw, name, data []byte) {
			out.Write(raw)
			if string(name) == Cut {
				cuts++
				if data != nil {
					t.Fatalf("a cut event carries data")
				}
				return
			}
			events = append(events, [2]string{string(name), string(data)})
		}
		feed := func(p []byte) {
			in.Write(p)
			s.Feed(p, emit)
			if len(s.buf) > maxEvent+16<<10 {
				t.Fatalf("the splitter holds %d bytes of one event", len(s.buf))
			}
		}
		feed([]byte("data: {\"a\":1}\n\ndata: "))
		chunk := bytes.Repeat([]byte("a"), 16<<10)
		for range (3 * maxEvent) / len(chunk) {
			feed(chunk)
		}
		before, after, _ := strings.Cut(split, "|")
		feed([]byte(before))
		feed([]byte(after + "event: x\ndata: {\"ok\":1}\n\n"))
		if out.String() != in.String() {
			t.Fatalf("%q: %d bytes passed on of %d fed", split, out.Len(), in.Len())
		}
		if cuts < 3 {
			t.Errorf("%q: %d cut emissions, want the oversized event passed on as it came", split, cuts)
		}
		want := [][2]string{{"", `{"a":1}`}, {"x", `{"ok":1}`}}
		if !slices.Equal(events, want) {
			t.Errorf("%q: events %q, want %q", split, events, want)
		}
	}
}

// Joining an event's data lines costs about the event's own size.
func TestSSEManyDataLinesAllocatesLinearly(t *testing.T) {
	const lines = 20000
	ev := append(bytes.Repeat([]byte("data: x\n"), lines), '\n')
	s := &SSE{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var got int
	s.Feed(ev, func(_, _, data []byte) { got = len(data) })
	runtime.ReadMemStats(&after)
	if got != 2*lines-1 {
		t.Fatalf("data %d bytes", got)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16*uint64(len(ev)) {
		t.Fatalf("one %d KiB event of %d data lines allocated %d MiB while being parsed", len(ev)>>10, lines, alloc>>20)
	}
}
