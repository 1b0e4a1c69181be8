package proxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Edits made in place give the same bytes as edits made in a copy, for
// every mix of growing, shrinking and same-size edits.
func TestApplyEditsInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		src := make([]byte, rng.IntN(40))
		for j := range src {
			src[j] = byte('a' + rng.IntN(26))
		}
		var edits []edit
		for at := 0; at <= len(src); {
			start := at + rng.IntN(len(src)-at+1)
			end := start + rng.IntN(len(src)-start+1)
			if rng.IntN(3) == 0 {
				end = start // an insertion
			}
			edits = append(edits, edit{start, end, bytes.Repeat([]byte{byte('0' + i%10)}, rng.IntN(6))})
			at = end + 1
			if rng.IntN(3) == 0 {
				break
			}
		}
		want := applyEdits(src, append([]edit(nil), edits...), false)
		b := make([]byte, len(src), len(src)+rng.IntN(30))
		copy(b, src)
		got := applyEdits(b, append([]edit(nil), edits...), true)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q with %v: in place %q, copied %q", src, edits, got, want)
		}
		if len(want) <= cap(b) && cap(b) > 0 && &got[:1][0] != &b[:1][0] {
			t.Fatalf("%q with %v: copied although the capacity sufficed", src, edits)
		}
	}
}

// parseRequest never changes the caller's bytes; the exchange's in-place
// parse gives the same request.
func TestParseInPlaceMatchesCopy(t *testing.T) {
	for _, body := range []string{
		`{"model":"gpt-4o","stream":true,"max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`,
		`{"max_tokens":5,"stream":true,"stream_options":null,"max_completion_tokens":1e9}`,
		`{"stream":true,"stream_options":{"include_usage":false},"max_tokens":2048}`,
	} {
		orig := []byte(body)
		rq, err := parseRequest(fmtChat, orig, 1024, true)
		if err != nil {
			t.Fatal(err)
		}
		if string(orig) != body {
			t.Fatalf("parseRequest changed its input: %s", orig)
		}
		own := make([]byte, len(body), len(body)+editRoom)
		copy(own, body)
		rq2, err := parseBody(fmtChat, own, 1024, true, true)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rq.body, rq2.body) || &rq2.body[0] != &own[0] {
			t.Errorf("in place %s (same buffer %v), copied %s", rq2.body, &rq2.body[0] == &own[0], rq.body)
		}
	}
}

// readAll reads a body of the announced length without growing its
// buffer, and any body whatever its announced length.
func TestReadAll(t *testing.T) {
	body := strings.Repeat("x", 10000)
	for _, hint := range []int64{-1, 0, 10, 10000, 20000} {
		got, err := readAll(strings.NewReader(body), hint, editRoom)
		if err != nil || string(got) != body {
			t.Fatalf("hint %d: %d bytes, %v", hint, len(got), err)
		}
		if hint == 10000 && cap(got) != 10000+editRoom {
			t.Errorf("announced length: capacity %d, want %d (no growth)", cap(got), 10000+editRoom)
		}
	}
	if _, err := readAll(io.MultiReader(strings.NewReader("ab"), iotest{}), 2, 0); err == nil {
		t.Error("a read error was not returned")
	}
}

type iotest struct{}

func (iotest) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// Streams relayed with pooled read buffers relay exactly their own bytes,
// however many run at once and reuse each other's buffers.
func TestPooledStreamReaders(t *testing.T) {
	pool := newChunkPool()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				ev := "data: {\"choices\":[{\"delta\":{\"content\":\"g" + strconv.Itoa(g) + "-" + strconv.Itoa(i) + "\"}}]}\n\n"
				stream := strings.Repeat(ev, 200+i) + "data: [DONE]\n\n"
				r := newStreamReader(t.Context(), io.NopCloser(strings.NewReader(stream)), &sseSplitter{}, &streamState{}, chatEvent)
				r.pool = pool
				out, err := io.ReadAll(r)
				if err != nil || string(out) != stream {
					t.Errorf("goroutine %d stream %d: relayed %d bytes (%v), want %d", g, i, len(out), err, len(stream))
					return
				}
				if r.chunk != nil {
					t.Errorf("the read buffer was not given back at the end")
					return
				}
			}
		})
	}
	wg.Wait()
}

// The response headers dropped by name must be spelled canonically, or
// deleting them from the transport's (canonical) header would miss them.
func TestDroppedHeadersAreCanonical(t *testing.T) {
	for _, k := range dropResponseHeaders {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("%q is not canonical (%q)", k, c)
		}
	}
}
