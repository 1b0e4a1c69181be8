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
	"strconv"
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

// scanner walks JSON bytes, counting the bytes of text in string values
// on the way (for the prompt estimate).
type scanner struct {
	b    []byte
	i    int
	text int64
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
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, ErrSyntax
	}
	o := &Object{Open: s.i}
	o.Members = o.inline[:0]
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		o.Close = s.i
		s.i++
		return o, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, ErrSyntax
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
			return nil, ErrSyntax
		}
		s.i++
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return nil, err
		}
		o.Members = append(o.Members, Member{Key: key, Start: vs, End: s.i})
		s.ws()
		if s.i >= len(s.b) {
			return nil, ErrSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			o.Close = s.i
			s.i++
			return o, nil
		default:
			return nil, ErrSyntax
		}
	}
}

func (s *scanner) value() error {
	if s.i >= len(s.b) {
		return ErrSyntax
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

// str skips the string at s.i; count adds its length to the text total.
func (s *scanner) str(count bool) error {
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

// composite skips an Object or array, strings included.
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
	return ErrSyntax
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

// unquoteBytes is unquote for keys: the escape-free case returns the
// literal's own bytes, without a copy.
func unquoteBytes(lit []byte) ([]byte, error) {
	if len(lit) >= 2 && lit[0] == '"' && lit[len(lit)-1] == '"' && bytes.IndexByte(lit, '\\') < 0 {
		return lit[1 : len(lit)-1], nil
	}
	s, err := Unquote(lit)
	return []byte(s), err
}

// number reads a JSON number value as an integer (fractions truncated);
// ok is false for anything else, null included.
func Number(v []byte) (int64, bool) {
	if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return n, true
	}
	if f, err := strconv.ParseFloat(string(v), 64); err == nil && f >= -1e18 && f <= 1e18 {
		return int64(f), true
	}
	return 0, false
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

// InsertMember returns the Edit adding "key":value as the last Member of o.
func InsertMember(o *Object, key, value string) Edit {
	sep := ","
	if len(o.Members) == 0 {
		sep = ""
	}
	return Edit{Start: o.Close, End: o.Close, Repl: []byte(sep + strconv.Quote(key) + ":" + value)}
}

// EachMember calls fn with each Member of the JSON Object b, in order,
// until fn returns false. It reports false when b is not valid JSON or not
// an Object, or fn refused a Member.
func EachMember(b []byte, fn func(key, v []byte) bool) bool {
	if !json.Valid(b) {
		return false
	}
	obj, _, err := ScanObject(b, 0, true)
	if err != nil {
		return false
	}
	for _, m := range obj.Members {
		if !fn(m.Key, b[m.Start:m.End]) {
			return false
		}
	}
	return true
}

// MemberValue is the value of the last top-level Member named key of the
// JSON Object body; nil when there is none, it is null, or body is not an
// Object.
func MemberValue(body []byte, key string) []byte {
	obj, _, err := ScanObject(body, 0, true)
	if err != nil {
		return nil
	}
	m, ok := obj.Get(key)
	if !ok || IsNull(body[m.Start:m.End]) {
		return nil
	}
	return body[m.Start:m.End]
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
			if s.str(false) != nil {
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

// FindPath returns every Member at path (one or two levels deep).
func FindPath(body []byte, obj *Object, path []string) []Member {
	var out []Member
	for _, m := range obj.Members {
		if string(m.Key) != path[0] {
			continue
		}
		if len(path) == 1 {
			out = append(out, m)
			continue
		}
		if body[m.Start] != '{' {
			continue
		}
		inner, _, err := ScanObject(body, m.Start, false)
		if err != nil {
			continue
		}
		out = append(out, FindPath(body, inner, path[1:])...)
	}
	return out
}

// EmptyArray reports whether v, a valid JSON array, has no elements.
func EmptyArray(v []byte) bool {
	s := &scanner{b: v, i: 1}
	s.ws()
	return s.i < len(v) && v[s.i] == ']'
}
