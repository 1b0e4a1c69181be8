// Package framing cuts the bytes of a streamed answer into its events as
// they arrive, keeping every byte: server-sent events, and the elements of
// a streamed JSON array (Google's streamGenerateContent without alt=sse).
package framing

import (
	"bytes"
)

// Splitter cuts the bytes of a stream into events, calling emit with the
// raw bytes of each (kept verbatim) and its name and data.
type Splitter interface {
	Feed(p []byte, emit func(raw, name, data []byte))
	// rest returns the bytes of an incomplete event left at the end.
	Rest() []byte
}

// SSE cuts server-sent events at blank lines (LF or CRLF). An event that
// outgrows maxEvent is not held whole: what has come of it is emitted as
// it arrives, named Cut, without data (it could not be read), up to the
// blank line that ends it.
type SSE struct {
	buf     []byte
	scanned int  // bytes of buf already searched for a blank line
	over    bool // buf holds the rest of an event cut at maxEvent
}

// maxEvent bounds the bytes held of one event.
const maxEvent = 4 << 20

func (s *SSE) Feed(p []byte, emit func(raw, name, data []byte)) {
	s.buf = append(s.buf, p...)
	start := 0
	for {
		end := blankLine(s.buf, start, s.scanned, !s.over || start > 0)
		if end < 0 {
			break
		}
		raw := s.buf[start:end]
		if s.over {
			emit(raw, []byte(Cut), nil)
			s.over = false
		} else {
			name, data := parseEvent(raw)
			emit(raw, name, data)
		}
		start, s.scanned = end, end
	}
	if start > 0 {
		n := copy(s.buf, s.buf[start:])
		s.buf = s.buf[:n]
		s.scanned -= start
	}
	if len(s.buf) > maxEvent {
		// Passed on unread but for its last two bytes, kept to find a
		// blank line that starts in them.
		keep := len(s.buf) - 2
		emit(s.buf[:keep], []byte(Cut), nil)
		s.buf = append(make([]byte, 0, 4<<10), s.buf[keep:]...) // the large buffer goes
		s.scanned, s.over = 0, true
		return
	}
	// All of buf has been searched; only its tail may yet turn out to
	// start a blank line once more bytes come.
	s.scanned = max(0, len(s.buf)-3)
}

func (s *SSE) Rest() []byte {
	r := s.buf
	s.buf, s.scanned, s.over = nil, 0, false
	return r
}

// blankLine returns the offset just past the first blank line of b after
// start (searching from from), or -1. atEvent says that start is where an
// event begins, so that a newline there is a blank line.
func blankLine(b []byte, start, from int, atEvent bool) int {
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
		if atEvent && (nl == start || (nl == start+1 && b[start] == '\r')) {
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
			switch lines {
			case 0:
				data = value
			case 1: // one buffer for the lines joined: each appended once
				data = append(append(append(make([]byte, 0, 2*(len(data)+len(value))+1), data...), '\n'), value...)
			default:
				data = append(append(data, '\n'), value...)
			}
			lines++
		}
	}
	return name, data
}

// Array finds the elements of a streamed JSON array (Google's
// streamGenerateContent without alt=sse), relaying bytes as they come.
type Array struct {
	depth    int
	inString bool
	escape   bool
	// elem is the copy of the current element kept for reading usage:
	// whole while it fits in maxElement; past that (cut), only its
	// top-level members that fit, the one that outgrew it left out.
	elem     []byte
	cut      bool
	member   int  // offset in elem where the current top-level member starts
	dropping bool // the current member is left out
}

// Cut is the name given to an element too big to keep whole: its data
// holds only its top-level members that fit (usage, model), and what was
// left out (the large part, with its text) could not be read.
const Cut = "cut"

// maxElement bounds the copy kept of one element for reading usage;
// members after a cut get maxMembersAfterCut more.
const (
	maxElement         = 4 << 20
	maxMembersAfterCut = 64 << 10
)

func (s *Array) Feed(p []byte, emit func(raw, name, data []byte)) {
	from := 0
	for i, c := range p {
		if s.depth >= 2 && !s.dropping {
			if limit := s.limit(); len(s.elem) >= limit {
				s.elem, s.cut, s.dropping = s.elem[:s.member], true, true
			} else {
				s.elem = append(s.elem, c)
			}
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
				s.elem, s.cut, s.dropping, s.member = append(s.elem[:0], c), false, false, 1
			}
		case c == ',' && s.depth == 2:
			// The next member starts; a member left out leaves no comma.
			s.member, s.dropping = len(s.elem), false
		case c == '}' || c == ']':
			s.depth--
			if s.depth == 1 {
				var name []byte
				if s.cut {
					name = []byte(Cut)
					if s.dropping { // the last member was left out, and the closing byte
						s.elem = append(bytes.TrimRight(s.elem, ","), c)
					}
				}
				// Relay everything so far along with the element's data.
				emit(p[from:i+1], name, s.elem)
				from = i + 1
				s.elem, s.cut, s.dropping = s.elem[:0], false, false
			}
		}
	}
	if from < len(p) {
		emit(p[from:], nil, nil)
	}
}

func (s *Array) limit() int {
	if s.cut {
		return maxElement + maxMembersAfterCut
	}
	return maxElement
}

func (s *Array) Rest() []byte { return nil }
