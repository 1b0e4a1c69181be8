package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
)

// streamReader wraps an upstream stream's body: it relays every complete
// event as soon as it has arrived, reading usage from each on the way, and
// drops only the usage chunk the proxy asked for on the client's behalf.
// It never holds more than the current, incomplete event.
type streamReader struct {
	src   io.ReadCloser
	ctx   context.Context
	split splitter
	st    *streamState
	// onEnd is called once: when the stream's end event is about to be
	// relayed, or when the body ends or breaks.
	onEnd func()
	// brokenEvent renders the event relayed when the upstream breaks the
	// stream (nil: none).
	brokenEvent func(msg string) []byte
	// endsAtEOF: the stream has no end event; a clean end of the body is
	// its end (Google).
	endsAtEOF bool
	event     func(st *streamState, name, data []byte) bool

	chunk []byte     // read buffer
	pool  *chunkPool // where chunk comes from and goes back to (nil: none)
	out   []byte     // bytes ready for the client
	pos   int        // read position in out
	err   error      // what to return once out is drained
	ended bool
}

// splitter cuts the bytes of a stream into events, calling emit with the
// raw bytes of each (kept verbatim) and its name and data.
type splitter interface {
	feed(p []byte, emit func(raw, name, data []byte))
	// rest returns the bytes of an incomplete event left at the end.
	rest() []byte
}

const chunkSize = 16 << 10

// chunkPool recycles the read buffers of streams: one per stream in
// flight, given back when the upstream body ends.
type chunkPool struct{ p sync.Pool }

func newChunkPool() *chunkPool {
	return &chunkPool{p: sync.Pool{New: func() any { return new([chunkSize]byte) }}}
}

func newStreamReader(ctx context.Context, src io.ReadCloser, s splitter, st *streamState, event func(*streamState, []byte, []byte) bool) *streamReader {
	return &streamReader{src: src, ctx: ctx, split: s, st: st, event: event}
}

// buffer is the read buffer, taken from the pool when there is one.
func (r *streamReader) buffer() []byte {
	if r.chunk == nil {
		if r.pool != nil {
			r.chunk = r.pool.p.Get().(*[chunkSize]byte)[:]
		} else {
			r.chunk = make([]byte, chunkSize)
		}
	}
	return r.chunk
}

func (r *streamReader) Read(p []byte) (int, error) {
	for r.pos == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.out, r.pos = r.out[:0], 0
		chunk := r.buffer()
		n, err := r.src.Read(chunk)
		if n > 0 {
			r.split.feed(chunk[:n], r.emit)
		}
		if err != nil {
			r.finish(err)
		}
	}
	n := copy(p, r.out[r.pos:])
	r.pos += n
	return n, nil
}

func (r *streamReader) emit(raw, name, data []byte) {
	keep := len(data) == 0 || r.event == nil || r.event(r.st, name, data)
	if r.st.done {
		// Charged before the client sees the end, so that a client that
		// stops reading there finds its usage recorded.
		r.end()
	}
	if keep {
		r.out = append(r.out, raw...)
	}
}

// finish handles the end of the upstream body, which is not read again:
// the read buffer goes back to the pool.
func (r *streamReader) finish(err error) {
	if r.pool != nil && r.chunk != nil {
		r.pool.p.Put((*[chunkSize]byte)(r.chunk))
	}
	r.chunk = nil
	r.out = append(r.out, r.split.rest()...)
	switch {
	case errors.Is(err, io.EOF):
		if r.endsAtEOF {
			r.st.done = true
		}
		r.err = io.EOF
	case r.ctx.Err() != nil:
		// The client is gone (or the deadline passed): nothing to tell it.
		r.err = err
	default:
		// The upstream broke the stream: tell the client in the stream's
		// own terms, then end it normally.
		if r.brokenEvent != nil {
			r.out = append(r.out, r.brokenEvent("The upstream ended the stream unexpectedly; the answer is incomplete.")...)
		}
		r.err = io.EOF
	}
	r.end()
}

func (r *streamReader) end() {
	if !r.ended {
		r.ended = true
		if r.onEnd != nil {
			r.onEnd()
		}
	}
}

func (r *streamReader) Close() error { return r.src.Close() }

// sseSplitter cuts server-sent events at blank lines (LF or CRLF).
type sseSplitter struct {
	buf     []byte
	scanned int // bytes of buf already searched for a blank line
}

func (s *sseSplitter) feed(p []byte, emit func(raw, name, data []byte)) {
	s.buf = append(s.buf, p...)
	start := 0
	for {
		end := blankLine(s.buf, start, s.scanned)
		if end < 0 {
			break
		}
		raw := s.buf[start:end]
		name, data := parseEvent(raw)
		emit(raw, name, data)
		start, s.scanned = end, end
	}
	if start > 0 {
		n := copy(s.buf, s.buf[start:])
		s.buf = s.buf[:n]
		s.scanned -= start
	}
	// All of buf has been searched; only its tail may yet turn out to
	// start a blank line once more bytes come.
	s.scanned = max(0, len(s.buf)-3)
}

func (s *sseSplitter) rest() []byte {
	r := s.buf
	s.buf, s.scanned = nil, 0
	return r
}

// blankLine returns the offset just past the first blank line of b after
// start (searching from from), or -1.
func blankLine(b []byte, start, from int) int {
	i := max(start, from)
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		nl := i + j
		// The line after this newline is blank if it is "\n" or "\r\n".
		if nl+1 < len(b) && b[nl+1] == '\n' {
			return nl + 2
		}
		if nl+2 < len(b) && b[nl+1] == '\r' && b[nl+2] == '\n' {
			return nl + 3
		}
		if nl == start || (nl == start+1 && b[start] == '\r') {
			// A blank line at the very start: an empty event.
			return nl + 1
		}
		i = nl + 1
	}
}

// parseEvent returns an event's name and data (data lines joined by
// newlines, as SSE defines).
func parseEvent(raw []byte) (name, data []byte) {
	lines := 0
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			name = value
		case "data":
			if lines == 0 {
				data = value
			} else {
				data = append(append(append([]byte(nil), data...), '\n'), value...)
			}
			lines++
		}
	}
	return name, data
}

// arraySplitter finds the elements of a streamed JSON array (Google's
// streamGenerateContent without alt=sse), relaying bytes as they come.
type arraySplitter struct {
	depth    int
	inString bool
	escape   bool
	elem     []byte
}

// maxElement bounds the copy kept of one element for reading usage.
const maxElement = 4 << 20

func (s *arraySplitter) feed(p []byte, emit func(raw, name, data []byte)) {
	from := 0
	for i, c := range p {
		if s.depth >= 2 && len(s.elem) < maxElement {
			s.elem = append(s.elem, c)
		}
		switch {
		case s.inString:
			switch {
			case s.escape:
				s.escape = false
			case c == '\\':
				s.escape = true
			case c == '"':
				s.inString = false
			}
		case c == '"':
			s.inString = true
		case c == '{' || c == '[':
			s.depth++
			if s.depth == 2 {
				s.elem = append(s.elem[:0], c)
			}
		case c == '}' || c == ']':
			s.depth--
			if s.depth == 1 {
				// Relay everything so far along with the element's data.
				emit(p[from:i+1], nil, s.elem)
				from = i + 1
				s.elem = s.elem[:0]
			}
		}
	}
	if from < len(p) {
		emit(p[from:], nil, nil)
	}
}

func (s *arraySplitter) rest() []byte { return nil }
