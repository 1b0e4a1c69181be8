package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
)

// The proxy reads a few fields of request bodies that may be megabytes of
// conversation (and base64 images), and edits fewer still. Rather than
// decode and re-encode the whole document, it scans the top-level object
// once for the byte spans of its members and splices edits into the bytes.

var errSyntax = errors.New("request body is not a JSON object")

// member is one member of a JSON object: its key and its value's span.
type member struct {
	// key is the decoded key: a slice of the scanned bytes when it has no
	// escapes (most keys), so that scanning allocates no key strings.
	key        []byte
	start, end int // value bytes are b[start:end]
}

// object is a scanned JSON object.
type object struct {
	members []member
	open    int // offset of '{'
	close   int // offset of '}'
	// inline holds the members of small objects (most requests, usage
	// objects), so that scanning one costs one allocation.
	inline [8]member
}

// get returns the last member named key (JSON's last-wins rule, as the
// providers apply it).
func (o *object) get(key string) (member, bool) {
	for i := len(o.members) - 1; i >= 0; i-- {
		if string(o.members[i].key) == key {
			return o.members[i], true
		}
	}
	return member{}, false
}

// scanner walks JSON bytes, counting the bytes of text in string values
// on the way (for the prompt estimate).
type scanner struct {
	b    []byte
	i    int
	text int64
}

// scanObject scans the object at b[at:]; with top set, only whitespace
// may follow it.
func scanObject(b []byte, at int, top bool) (*object, int64, error) {
	s := &scanner{b: b, i: at}
	s.ws()
	o, err := s.object()
	if err != nil {
		return nil, 0, err
	}
	if top {
		s.ws()
		if s.i != len(b) {
			return nil, 0, errSyntax
		}
	}
	return o, s.text, nil
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) object() (*object, error) {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, errSyntax
	}
	o := &object{open: s.i}
	o.members = o.inline[:0]
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		o.close = s.i
		s.i++
		return o, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, errSyntax
		}
		ks := s.i
		if err := s.str(false); err != nil {
			return nil, err
		}
		key, err := unquoteBytes(s.b[ks:s.i])
		if err != nil {
			return nil, err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, errSyntax
		}
		s.i++
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return nil, err
		}
		o.members = append(o.members, member{key: key, start: vs, end: s.i})
		s.ws()
		if s.i >= len(s.b) {
			return nil, errSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			o.close = s.i
			s.i++
			return o, nil
		default:
			return nil, errSyntax
		}
	}
}

func (s *scanner) value() error {
	if s.i >= len(s.b) {
		return errSyntax
	}
	switch s.b[s.i] {
	case '"':
		return s.str(true)
	case '{', '[':
		return s.composite()
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if s.i == start {
				return errSyntax
			}
			return nil
		case '"', '{', '[', ':':
			return errSyntax
		}
		s.i++
	}
	if s.i == start {
		return errSyntax
	}
	return nil
}

// str skips the string at s.i; count adds its length to the text total.
func (s *scanner) str(count bool) error {
	start := s.i
	s.i++
	for {
		j := bytes.IndexByte(s.b[s.i:], '"')
		if j < 0 {
			return errSyntax
		}
		s.i += j
		backslashes := 0
		for k := s.i - 1; k > start && s.b[k] == '\\'; k-- {
			backslashes++
		}
		s.i++
		if backslashes%2 == 0 {
			break
		}
	}
	if count {
		s.count(s.b[start+1 : s.i-1])
	}
	return nil
}

// count adds a string's length to the text total, leaving out what is
// surely not text: data URLs and long runs without a space (base64).
func (s *scanner) count(str []byte) {
	if bytes.HasPrefix(str, []byte("data:")) || len(str) > 1024 && bytes.IndexByte(str, ' ') < 0 {
		return
	}
	s.text += int64(len(str))
}

// composite skips an object or array, strings included.
func (s *scanner) composite() error {
	depth := 0
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			if err := s.str(true); err != nil {
				return err
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return nil
			}
		}
		s.i++
	}
	return errSyntax
}

// unquote decodes a JSON string literal; the common escape-free case
// costs no decoding.
func unquote(lit []byte) (string, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", errSyntax
	}
	if bytes.IndexByte(lit, '\\') < 0 {
		return string(lit[1 : len(lit)-1]), nil
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", errSyntax
	}
	return s, nil
}

// unquoteBytes is unquote for keys: the escape-free case returns the
// literal's own bytes, without a copy.
func unquoteBytes(lit []byte) ([]byte, error) {
	if len(lit) >= 2 && lit[0] == '"' && lit[len(lit)-1] == '"' && bytes.IndexByte(lit, '\\') < 0 {
		return lit[1 : len(lit)-1], nil
	}
	s, err := unquote(lit)
	return []byte(s), err
}

// number reads a JSON number value as an integer (fractions truncated);
// ok is false for anything else, null included.
func number(v []byte) (int64, bool) {
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(string(v), 64); err == nil && f >= -1e18 && f <= 1e18 {
		return int64(f), true
	}
	return 0, false
}

// edit replaces b[start:end] with repl (an insertion when start == end).
type edit struct {
	start, end int
	repl       []byte
}

// applyEdits returns b with non-overlapping edits applied, in one copy.
// With inPlace (b is the caller's to change), the edits are made in b when
// its capacity allows: a request body may be megabytes, and copying it
// whole for a clamp or an inserted member costs more than the rest of the
// proxy's work on it.
func applyEdits(b []byte, edits []edit, inPlace bool) []byte {
	if len(edits) == 0 {
		return b
	}
	slices.SortFunc(edits, func(x, y edit) int { return x.start - y.start })
	size := len(b)
	for _, e := range edits {
		size += len(e.repl) - (e.end - e.start)
	}
	if inPlace && size <= cap(b) {
		return editInPlace(b, edits, size)
	}
	out := make([]byte, 0, size)
	at := 0
	for _, e := range edits {
		out = append(out, b[at:e.start]...)
		out = append(out, e.repl...)
		at = e.end
	}
	return append(out, b[at:]...)
}

// editInPlace applies sorted edits within b's capacity. The unchanged runs
// between edits move by the length the edits before them added or removed:
// runs moving left are moved first to last, runs moving right last to
// first, so that no run overwrites one not yet moved; the replacements
// then fill the gaps. Runs that do not move are not touched.
func editInPlace(b []byte, edits []edit, size int) []byte {
	buf := b[:max(size, len(b))]
	// run k is b[from:to], moving by shift; run 0 precedes the first edit.
	type run struct{ from, to, shift int }
	runs := make([]run, 0, 8)
	at, shift := 0, 0
	for _, e := range edits {
		runs = append(runs, run{at, e.start, shift})
		shift += len(e.repl) - (e.end - e.start)
		at = e.end
	}
	runs = append(runs, run{at, len(b), shift})
	for _, r := range runs {
		if r.shift < 0 {
			copy(buf[r.from+r.shift:], buf[r.from:r.to])
		}
	}
	for i := len(runs) - 1; i >= 0; i-- {
		if r := runs[i]; r.shift > 0 {
			copy(buf[r.from+r.shift:], buf[r.from:r.to])
		}
	}
	for i, e := range edits {
		copy(buf[e.start+runs[i].shift:], e.repl)
	}
	return buf[:size]
}

// insertMember returns the edit adding "key":value as the last member of o.
func insertMember(o *object, key, value string) edit {
	sep := ","
	if len(o.members) == 0 {
		sep = ""
	}
	return edit{start: o.close, end: o.close, repl: []byte(sep + strconv.Quote(key) + ":" + value)}
}
