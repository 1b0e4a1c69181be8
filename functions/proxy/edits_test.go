package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/shared/providers"
)

// readAll reads a body of the announced length without growing its
// buffer, and any body whatever its announced length.
func TestReadAll(t *testing.T) {
	body := strings.Repeat("x", 10000)
	for _, hint := range []int64{-1, 0, 10, 10000, 20000} {
		got, err := readAll(strings.NewReader(body), hint, editRoom, nil)
		if err != nil || string(got) != body {
			t.Fatalf("hint %d: %d bytes, %v", hint, len(got), err)
		}
		if hint == 10000 && cap(got) != 10000+editRoom {
			t.Errorf("announced length: capacity %d, want %d (no growth)", cap(got), 10000+editRoom)
		}
	}
	if _, err := readAll(io.MultiReader(strings.NewReader("ab"), iotest{}), 2, 0, nil); err == nil {
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
				r := newStreamReader(t.Context(), io.NopCloser(strings.NewReader(stream)), &framing.SSE{}, &providers.StreamState{}, providers.OpenAIChat.Event)
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
