// Package jsonscan reads and edits a few members of JSON documents in
// place: the top-level members of a request body (model, output limits),
// the usage members of answers and stream events, the string members that
// carry text.
//
// Why not gjson/sjson: sjson edits, and gjson reads, the first Member of a
// given name, while the providers' parsers take the last one; a body with
// "max_tokens" twice would pass a clamp made by sjson with its second,
// unclamped value (TestDuplicateKeysLastWins shows it). This scanner finds
// every occurrence in one pass, splices edits into the bytes without
// re-encoding (in place when there is room), and reads usage with
// encoding/json's exact rules at a fraction of its cost (the benchmarks
// in this package and the proxy's measure both).
package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

var ErrSyntax = errors.New("not a JSON object")

// Member is one Member of a JSON Object: its key and its value's span.
type Member struct {
	// key is the decoded key: a slice of the scanned bytes when it has no
	// escapes (most keys), so that scanning allocates no key strings.
	Key        []byte
	Start, End int // value bytes are b[Start:End]
}

// Object is a scanned JSON Object.
type Object struct {
	Members []Member
	Open    int // offset of '{'
	Close   int // offset of '}'
	// inline holds the members of small objects (most requests, usage
	// objects), so that scanning one costs one allocation.
	inline [8]Member
}

// get returns the last Member named key (JSON's last-wins rule, as the
// providers apply it).
func (o *Object) Get(key string) (Member, bool) {
	for i := len(o.Members) - 1; i >= 0; i-- {
		if string(o.Members[i].Key) == key {
			return o.Members[i], true
		}
	}
	return Member{}, false
}

// scanner walks JSON bytes, counting the bytes of text in strings on the
// way (for the prompt estimate).
type scanner struct {
	b    []byte
	i    int
	text int64
	key  []byte // scratch for decoding escaped keys
	// objects[:open] are the objects open inside a member's value,
	// innermost last (a fixed array: the scanner stays on the stack).
	objects [32]object
	open    int
}

// object is what an open object's members tell the estimate: binary-looking
// data is counted only when a sibling gives it a text type.
type object struct {
	data int64 // bytes of data members left out so far
	text bool  // a media_type, mime_type or mimeType of text/*
}

// ScanObject scans the Object at b[at:]; with top set, only whitespace
// may follow it.
func ScanObject(b []byte, at int, top bool) (*Object, int64, error) {
	s := &scanner{b: b, i: at}
	s.ws()
	o, err := s.object()
	if err != nil {
		return nil, 0, err
	}
	if top {
		s.ws()
		if s.i != len(b) {
			return nil, 0, ErrSyntax
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

func (s *scanner) object() (*Object, error) {
	o := &Object{Open: s.i}
	o.Members = o.inline[:0]
	close, err := s.walk(func(key []byte, start, end int) error {
		if len(key) > 0 && len(s.key) > 0 && &key[0] == &s.key[0] {
			key = append([]byte(nil), key...) // decoded in the scratch buffer
		}
		o.Members = append(o.Members, Member{Key: key, Start: start, End: end})
		return nil
	})
	o.Close = close
	return o, err
}

// Walk calls fn with each member of the object at b[at:], in order,
// without keeping them: memory does not grow with the number of members.
// key is valid during the call only. An error from fn ends the walk. It
// returns the offset of the closing brace and the text bytes counted (see
// ScanObject); with top set, only whitespace may follow the object.
func Walk(b []byte, at int, top bool, fn func(key []byte, start, end int) error) (close int, text int64, err error) {
	s := &scanner{b: b, i: at}
	s.ws()
	if close, err = s.walk(fn); err != nil {
		return 0, 0, err
	}
	if top {
		s.ws()
		if s.i != len(b) {
			return 0, 0, ErrSyntax
		}
	}
	return close, s.text, nil
}

func (s *scanner) walk(fn func(key []byte, start, end int) error) (int, error) {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return 0, ErrSyntax
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return s.i - 1, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return 0, ErrSyntax
		}
		ks := s.i
		if err := s.str(); err != nil {
			return 0, err
		}
		key, err := s.keyOf(s.b[ks:s.i])
		if err != nil {
			return 0, err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return 0, ErrSyntax
		}
		s.i++
		s.ws()
		vs := s.i
		if err := s.value(key); err != nil {
			return 0, err
		}
		if err := fn(key, vs, s.i); err != nil {
			return 0, err
		}
		s.ws()
		if s.i >= len(s.b) {
			return 0, ErrSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.i - 1, nil
		default:
			return 0, ErrSyntax
		}
	}
}

// keyOf decodes a key literal: the escape-free case is the literal's own
// bytes; an escaped key is decoded into the scanner's scratch buffer, so
// that a body of many escaped keys costs no allocation per key.
func (s *scanner) keyOf(lit []byte) ([]byte, error) {
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, nil
	}
	if s.key == nil {
		s.key = make([]byte, 0, 64)
	}
	out, ok := unescape(s.key[:0], inner)
	if !ok {
		return nil, ErrSyntax
	}
	if len(out) == 0 {
		return nil, nil
	}
	s.key = out
	return out, nil
}

// unescape appends the decoded JSON string contents lit to dst.
func unescape(dst, lit []byte) ([]byte, bool) {
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i >= len(lit) {
			return nil, false
		}
		switch lit[i] {
		case '"', '\\', '/':
			dst = append(dst, lit[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n := hex4(lit[i+1:])
			if n < 0 {
				return nil, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, n2 := hex4(lit[min(i+3, len(lit)):]); n2 >= 0 && i+2 < len(lit) && lit[i+1] == '\\' && lit[i+2] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					}
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return nil, false
		}
	}
	return dst, true
}

// hex4 reads four hex digits; n is -1 when they are not.
func hex4(b []byte) (rune, int) {
	if len(b) < 4 {
		return 0, -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, -1
		}
		r = r<<4 | rune(c)
	}
	return r, 4
}

// value skips the value of the member named name, counting its text.
func (s *scanner) value(name []byte) error {
	if s.i >= len(s.b) {
		return ErrSyntax
	}
	switch s.b[s.i] {
	case '"':
		start := s.i
		if err := s.str(); err != nil {
			return err
		}
		s.count(name, s.b[start+1:s.i-1])
		return nil
	case '{', '[':
		return s.composite(name)
	}
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if s.i == start {
				return ErrSyntax
			}
			return nil
		case '"', '{', '[', ':':
			return ErrSyntax
		}
		s.i++
	}
	if s.i == start {
		return ErrSyntax
	}
	return nil
}

// str skips the string at s.i.
func (s *scanner) str() error {
	start := s.i
	s.i++
	for {
		j := bytes.IndexByte(s.b[s.i:], '"')
		if j < 0 {
			return ErrSyntax
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
	return nil
}

// count adds the length of str, the value of a member named name (or an
// element of its array), to the text total, leaving out what is surely
// not text: base64 or a data URL in a member that carries binary data.
// The member decides, not the string: text written without spaces or
// punctuation (CamelCase words) looks like base64 and is read all the
// same, and a data URL in a message is text. Data an object gives a
// text/* type (Anthropic's text documents) is counted when the object
// closes.
func (s *scanner) count(name, str []byte) {
	switch string(name) {
	case "data", "bytes", "b64_json", "result", "file_data", "url", "image_url", "document_url":
		if !binary(str) {
			break
		}
		switch n := s.open; {
		case n == 0: // in no object: no type can make it text
			return
		case n <= len(s.objects):
			s.objects[n-1].data += int64(len(str))
			return
		}
		// deeper than the objects followed, and than formats nest data: counted
	case "media_type", "mime_type", "mimeType":
		if n := s.open; n > 0 && n <= len(s.objects) && textType(str) {
			s.objects[n-1].text = true
		}
	}
	s.text += int64(len(str))
}

// binary reports base64 (see base64Like) or a data URL of a type other
// than text (one naming no type is text/plain).
func binary(str []byte) bool {
	if url, ok := bytes.CutPrefix(str, []byte("data:")); ok {
		return len(url) > 0 && url[0] != ',' && url[0] != ';' && !textType(url)
	}
	return base64Like(str)
}

func textType(t []byte) bool { return len(t) >= 5 && bytes.EqualFold(t[:5], []byte("text/")) }

// base64Like reports whether str, a JSON string's raw bytes, holds only
// base64 (standard or URL-safe, padded or not), with the line breaks and
// slashes an encoder may escape (\n, \r, \/).
func base64Like(str []byte) bool {
	for len(str) > 0 {
		// Sixteen at a time while none is outside the alphabet: a
		// megabyte image costs well under a millisecond.
		for len(str) >= 16 {
			b := str[:16]
			if notBase64[b[0]]|notBase64[b[1]]|notBase64[b[2]]|notBase64[b[3]]|
				notBase64[b[4]]|notBase64[b[5]]|notBase64[b[6]]|notBase64[b[7]]|
				notBase64[b[8]]|notBase64[b[9]]|notBase64[b[10]]|notBase64[b[11]]|
				notBase64[b[12]]|notBase64[b[13]]|notBase64[b[14]]|notBase64[b[15]] != 0 {
				break
			}
			str = str[16:]
		}
		if len(str) == 0 {
			break
		}
		switch c := str[0]; {
		case notBase64[c] == 0:
		case c == '\\' && len(str) > 1 && (str[1] == 'n' || str[1] == 'r' || str[1] == '/'):
			str = str[1:]
		default:
			return false
		}
		str = str[1:]
	}
	return true
}

// notBase64 is 0 for the bytes of base64 and base64url, 1 for others.
var notBase64 = func() (t [256]uint8) {
	for i := range t {
		t[i] = 1
	}
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=") {
		t[c] = 0
	}
	return t
}()

// composite skips an Object or array, the value of the member named
// name, counting the text of its strings (member names included: a
// model reads a tool input's). A string takes the name of the member it
// is the value of, or of the array it is an element of (an element
// after an object or array takes none).
func (s *scanner) composite(name []byte) error {
	outer := s.open
	defer func() { s.open = outer }()
	depth := 0
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			start := s.i
			if err := s.str(); err != nil {
				return err
			}
			str := s.b[start+1 : s.i-1]
			if s.colonNext() {
				name = str
				s.text += int64(len(str))
			} else {
				s.count(name, str)
			}
			continue
		case '{':
			depth++
			if s.open < len(s.objects) {
				s.objects[s.open] = object{}
			}
			s.open++
			name = nil
		case '[':
			depth++
		case '}', ']':
			if s.b[s.i] == '}' && s.open > outer {
				if n := s.open; n <= len(s.objects) && s.objects[n-1].text {
					s.text += s.objects[n-1].data
				}
				s.open--
			}
			name = nil
			depth--
			if depth == 0 {
				s.i++
				return nil
			}
		}
		s.i++
	}
	return ErrSyntax
}

// colonNext reports whether a colon follows s.i, past whitespace: the
// string just read is a member name.
func (s *scanner) colonNext() bool {
	for j := s.i; j < len(s.b); j++ {
		switch s.b[j] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}

// unquote decodes a JSON string literal; the common escape-free case
// costs no decoding.
func Unquote(lit []byte) (string, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", ErrSyntax
	}
	if bytes.IndexByte(lit, '\\') < 0 {
		return string(lit[1 : len(lit)-1]), nil
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", ErrSyntax
	}
	return s, nil
}

// Edit replaces b[start:end] with repl (an insertion when start == end).
type Edit struct {
	Start, End int
	Repl       []byte
}

// ApplyEdits returns b with non-overlapping edits applied, in one copy.
// With inPlace (b is the caller's to change), the edits are made in b when
// its capacity allows: a request body may be megabytes, and copying it
// whole for a clamp or an inserted Member costs more than the rest of the
// proxy's work on it.
func ApplyEdits(b []byte, edits []Edit, inPlace bool) []byte {
	if len(edits) == 0 {
		return b
	}
	slices.SortFunc(edits, func(x, y Edit) int { return x.Start - y.Start })
	size := len(b)
	for _, e := range edits {
		size += len(e.Repl) - (e.End - e.Start)
	}
	if inPlace && size <= cap(b) {
		return editInPlace(b, edits, size)
	}
	out := make([]byte, 0, size)
	at := 0
	for _, e := range edits {
		out = append(out, b[at:e.Start]...)
		out = append(out, e.Repl...)
		at = e.End
	}
	return append(out, b[at:]...)
}

// editInPlace applies sorted edits within b's capacity. The unchanged runs
// between edits move by the length the edits before them added or removed:
// runs moving left are moved first to last, runs moving right last to
// first, so that no run overwrites one not yet moved; the replacements
// then fill the gaps. Runs that do not move are not touched.
func editInPlace(b []byte, edits []Edit, size int) []byte {
	buf := b[:max(size, len(b))]
	// run k is b[from:to], moving by shift; run 0 precedes the first Edit.
	type run struct{ from, to, shift int }
	runs := make([]run, 0, 8)
	at, shift := 0, 0
	for _, e := range edits {
		runs = append(runs, run{at, e.Start, shift})
		shift += len(e.Repl) - (e.End - e.Start)
		at = e.End
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
		copy(buf[e.Start+runs[i].shift:], e.Repl)
	}
	return buf[:size]
}

// EachMember calls fn with each Member of the JSON Object b, in order,
// until fn returns false. It reports false when b is not valid JSON or not
// an Object, or fn refused a Member.
func EachMember(b []byte, fn func(key, v []byte) bool) bool {
	if !json.Valid(b) {
		return false
	}
	_, _, err := Walk(b, 0, true, func(key []byte, start, end int) error {
		if !fn(key, b[start:end]) {
			return errStopped
		}
		return nil
	})
	return err == nil
}

// errStopped ends a Walk early.
var errStopped = errors.New("jsonscan: walk stopped")

// MemberValue is the value of the last top-level Member named key of the
// JSON Object body; nil when there is none, it is null, or body is not an
// Object.
func MemberValue(body []byte, key string) []byte {
	var v []byte
	_, _, err := Walk(body, 0, true, func(k []byte, start, end int) error {
		if string(k) == key {
			v = body[start:end]
		}
		return nil
	})
	if err != nil || v == nil || IsNull(v) {
		return nil
	}
	return v
}

func IsNull(v []byte) bool { return string(v) == "null" }

// FoldIs matches a Member name to a field name as encoding/json does
// (bytes.EqualFold is its documented rule).
func FoldIs(k []byte, name string) bool {
	var buf [32]byte
	return bytes.EqualFold(k, append(buf[:0], name...))
}

// IntInto reads an integer value into dst (null: dst unchanged).
func IntInto(dst *int64, v []byte) bool {
	if IsNull(v) {
		return true
	}
	n, ok := ParseInt(v)
	if ok {
		*dst = n
	}
	return ok
}

// ParseInt reads a JSON integer: no fraction, no exponent, within int64.
func ParseInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' || n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return -int64(n-1) - 1, true
	case !neg && n < 1<<63:
		return int64(n), true
	}
	return 0, false
}

// StringFields sums the lengths of the string values of members named by
// keys, anywhere in the JSON text data.
func StringFields(data []byte, keys ...string) int64 {
	var n int64
	for _, key := range keys {
		pat := make([]byte, 0, len(key)+2)
		pat = append(append(append(pat, '"'), key...), '"')
		for i := 0; ; {
			j := bytes.Index(data[i:], pat)
			if j < 0 {
				break
			}
			i += j + len(pat)
			v := valueAfterColon(data, i)
			if v < 0 || data[v] != '"' {
				continue
			}
			s := &scanner{b: data, i: v}
			if s.str() != nil {
				break
			}
			n += int64(s.i - v - 2)
			i = s.i
		}
	}
	return n
}

// valueAfterColon returns where the value after ":" begins at data[i:],
// or -1 when no colon follows (the match was a value, not a key).
func valueAfterColon(data []byte, i int) int {
	s := &scanner{b: data, i: i}
	s.ws()
	if s.i >= len(data) || data[s.i] != ':' {
		return -1
	}
	s.i++
	s.ws()
	if s.i >= len(data) {
		return -1
	}
	return s.i
}

// HasObject reports whether a Member named key holds an Object.
func HasObject(data []byte, key string) bool {
	pat := []byte(`"` + key + `"`)
	for i := 0; ; {
		j := bytes.Index(data[i:], pat)
		if j < 0 {
			return false
		}
		i += j + len(pat)
		if v := valueAfterColon(data, i); v >= 0 && data[v] == '{' {
			return true
		}
	}
}

// EventType is the "type" Member of an event's data, for streams relayed
// without their event: lines.
func EventType(data []byte) string {
	obj, _, err := ScanObject(data, 0, true)
	if err != nil {
		return ""
	}
	m, ok := obj.Get("type")
	if !ok {
		return ""
	}
	t, _ := Unquote(data[m.Start:m.End])
	return t
}

// EmptyArray reports whether v, a valid JSON array, has no elements.
func EmptyArray(v []byte) bool {
	s := &scanner{b: v, i: 1}
	s.ws()
	return s.i < len(v) && v[s.i] == ']'
}

// EmptyObject reports whether b, ending with an object's closing brace,
// is an object without members.
func EmptyObject(b []byte) bool {
	i := len(b) - 2
	for i >= 0 && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i--
	}
	return i >= 0 && b[i] == '{'
}
