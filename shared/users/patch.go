package users

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Opt is one field of a partial update: absent (Set false), null (Set and
// Null), or a value.
type Opt[T any] struct {
	Set   bool
	Null  bool
	Value T
}

func (o Opt[T]) has() bool { return o.Set && !o.Null }

// Patch is a partial user: omitted fields are left untouched, null deletes an
// optional field (or empties a collection), maps given replace the old whole.
type Patch struct {
	Token          Opt[string]
	IP             Opt[[]string]
	Nickname       Opt[string]
	Type           Opt[Type]
	PromptCount    Opt[int64]
	TokenCounts    Opt[map[string]int64]
	TokenLimits    Opt[map[string]int64]
	TokenRefresh   Opt[map[string]int64]
	CreatedAt      Opt[int64]
	LastUsedAt     Opt[int64]
	DisabledAt     Opt[int64]
	DisabledReason Opt[string]
	ExpiresAt      Opt[int64]
	AdminNote      Opt[string]
	MaxIPs         Opt[int64]
	Meta           Opt[map[string]any]
	RefreshedAt    Opt[int64]
}

// Limits on free text, so one user cannot bloat the store.
const (
	MaxNicknameLen = 80
	MaxTextLen     = 2000
	MaxTokenLen    = 128
)

// ValidToken reports whether s can be a user token: a letter or digit,
// then letters, digits, - and _ (UUIDs and the original's tokens), at most
// 128 characters. Every proxied request checks it, so it is a loop rather
// than a regexp (ten times faster).
func ValidToken(s string) bool { return validName(s, MaxTokenLen, "_-") }

// ValidFamily reports whether s can be a model family name: a letter or
// digit, then letters, digits, '.', '_' and '-', at most 64 characters.
func ValidFamily(s string) bool { return validName(s, 64, "._-") }

func validName(s string, maxLen int, punct string) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if i == 0 || strings.IndexByte(punct, c) < 0 {
			return false
		}
	}
	return true
}

// ParsePatch decodes one partial user from JSON, rejecting unknown fields,
// wrong types and bad values with an *Error listing every issue.
func ParsePatch(data []byte) (Patch, error) {
	var p Patch
	issues := decodePatch(data, "", &p)
	if len(issues) > 0 {
		return Patch{}, invalid(issues)
	}
	return p, nil
}

// MaxMetaLen bounds a user's meta, as JSON: every request of the user
// reads its record, and an import must not take what a single-user write
// (1 MiB) refuses.
const MaxMetaLen = 64 << 10

// MaxImportUsers bounds the users of one import: each costs some 500
// bytes of memory while it is checked, whatever its size in the body, and
// a function instance has a few hundred MiB.
const MaxImportUsers = 50_000

// userEntries splits the users array into its entries, one at a time, so
// that an array of more than MaxImportUsers (even of empty objects) is
// refused before it is held.
func userEntries(raw json.RawMessage) ([]json.RawMessage, string) {
	const notArray = "must be an array of users"
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, notArray
	}
	entries := []json.RawMessage{}
	for dec.More() {
		if len(entries) == MaxImportUsers {
			return nil, fmt.Sprintf("at most %d users per import; split the file", MaxImportUsers)
		}
		var e json.RawMessage
		if err := dec.Decode(&e); err != nil {
			return nil, notArray
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, notArray
	}
	return entries, ""
}

// ParsePatchList decodes {"users":[partial…]} (optionally with an
// export's "count", ignored) for a bulk import. Every entry
// must name its token. All issues of all entries are reported at once.
func ParsePatchList(data []byte) ([]Patch, error) {
	var doc map[string]json.RawMessage
	if err := unmarshalObject(data, &doc); err != nil {
		return nil, invalid([]Issue{{Path: "", Message: err.Error()}})
	}
	var issues []Issue
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		switch k {
		case "users":
		case "count":
			// GET /users answers {users, count}: an export imports as it is,
			// its count ignored, but a bad count is not silently dropped.
			if _, msg := integer(doc[k]); msg != "" {
				issues = append(issues, Issue{Path: k, Message: msg})
			}
		default:
			issues = append(issues, Issue{Path: k, Message: "unknown field"})
		}
	}
	raw, ok := doc["users"]
	if !ok {
		issues = append(issues, Issue{Path: "users", Message: "required"})
		return nil, invalid(issues)
	}
	entries, msg := userEntries(raw)
	if msg != "" {
		issues = append(issues, Issue{Path: "users", Message: msg})
		return nil, invalid(issues)
	}
	out := make([]Patch, len(entries))
	seen := make(map[string]int, len(entries))
	for i, e := range entries {
		prefix := fmt.Sprintf("users[%d]", i)
		issues = append(issues, decodePatch(e, prefix, &out[i])...)
		if !out[i].Token.has() {
			if !out[i].Token.Set {
				issues = append(issues, Issue{Path: prefix + ".token", Message: "required"})
			}
			continue
		}
		if j, dup := seen[out[i].Token.Value]; dup {
			issues = append(issues, Issue{Path: prefix + ".token", Message: fmt.Sprintf("duplicate of users[%d]", j)})
		}
		seen[out[i].Token.Value] = i
	}
	if len(issues) > 0 {
		return nil, invalid(issues)
	}
	return out, nil
}

func invalid(issues []Issue) *Error {
	msg := "Invalid user."
	if len(issues) == 1 {
		if issues[0].Path == "" {
			msg = "Invalid JSON: " + issues[0].Message
		} else {
			msg = fmt.Sprintf("Invalid value at %s: %s", issues[0].Path, issues[0].Message)
		}
	} else {
		msg = fmt.Sprintf("Invalid user: %d problems, first at %s: %s", len(issues), issues[0].Path, issues[0].Message)
	}
	return &Error{Code: CodeInvalid, Message: msg, Issues: issues}
}

func unmarshalObject(data []byte, into *map[string]json.RawMessage) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		if !json.Valid(data) {
			return fmt.Errorf("malformed JSON")
		}
		return fmt.Errorf("body must be a JSON object")
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("malformed JSON")
	}
	return nil
}

func decodePatch(data []byte, prefix string, p *Patch) []Issue {
	var doc map[string]json.RawMessage
	if err := unmarshalObject(data, &doc); err != nil {
		return []Issue{{Path: prefix, Message: err.Error()}}
	}
	d := fieldDecoder{prefix: prefix}
	// Sorted, so the issues (and the message naming the first) are the
	// same for the same input.
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		raw := doc[k]
		null := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
		switch k {
		case "token":
			d.required(k, null, func() { p.Token = Opt[string]{Set: true, Value: d.token(k, raw)} })
		case "ip":
			p.IP = Opt[[]string]{Set: true, Null: null}
			if !null {
				p.IP.Value = d.ips(k, raw)
			}
		case "type":
			d.required(k, null, func() { p.Type = Opt[Type]{Set: true, Value: d.userType(k, raw)} })
		case "promptCount":
			d.required(k, null, func() { p.PromptCount = Opt[int64]{Set: true, Value: d.count(k, raw)} })
		case "createdAt":
			d.required(k, null, func() { p.CreatedAt = Opt[int64]{Set: true, Value: d.count(k, raw)} })
		case "meta":
			p.Meta = Opt[map[string]any]{Set: true, Null: null}
			switch {
			case null:
			case len(raw) > MaxMetaLen:
				d.fail(k, fmt.Sprintf("must be at most %d bytes of JSON", MaxMetaLen))
			default:
				if err := json.Unmarshal(raw, &p.Meta.Value); err != nil || p.Meta.Value == nil {
					d.fail(k, "must be an object")
				}
			}
		case "tokenCount":
			// The original's deprecated total: accepted and ignored.
			if !null {
				d.count(k, raw)
			}
		default:
			switch {
			case textFields[k] != nil:
				*textFields[k](p) = d.text(k, raw, null)
			case optCountFields[k] != nil:
				*optCountFields[k](p) = d.optCount(k, raw, null)
			case familyFields[k] != nil:
				*familyFields[k](p) = d.families(k, raw, null)
			default:
				d.fail(k, "unknown field")
			}
		}
	}
	return d.issues
}

// The fields of a partial user decoded alike, by JSON name.
var (
	textFields = map[string]func(*Patch) *Opt[string]{
		"nickname":       func(p *Patch) *Opt[string] { return &p.Nickname },
		"disabledReason": func(p *Patch) *Opt[string] { return &p.DisabledReason },
		"adminNote":      func(p *Patch) *Opt[string] { return &p.AdminNote },
	}
	optCountFields = map[string]func(*Patch) *Opt[int64]{
		"lastUsedAt":  func(p *Patch) *Opt[int64] { return &p.LastUsedAt },
		"disabledAt":  func(p *Patch) *Opt[int64] { return &p.DisabledAt },
		"expiresAt":   func(p *Patch) *Opt[int64] { return &p.ExpiresAt },
		"refreshedAt": func(p *Patch) *Opt[int64] { return &p.RefreshedAt },
		"maxIps":      func(p *Patch) *Opt[int64] { return &p.MaxIPs },
	}
	familyFields = map[string]func(*Patch) *Opt[map[string]int64]{
		"tokenCounts":  func(p *Patch) *Opt[map[string]int64] { return &p.TokenCounts },
		"tokenLimits":  func(p *Patch) *Opt[map[string]int64] { return &p.TokenLimits },
		"tokenRefresh": func(p *Patch) *Opt[map[string]int64] { return &p.TokenRefresh },
	}
)

type fieldDecoder struct {
	prefix string
	issues []Issue
}

func (d *fieldDecoder) path(k string) string {
	if d.prefix == "" {
		return k
	}
	return d.prefix + "." + k
}

func (d *fieldDecoder) fail(k, msg string) {
	d.issues = append(d.issues, Issue{Path: d.path(k), Message: msg})
}

func (d *fieldDecoder) required(k string, null bool, set func()) {
	if null {
		d.fail(k, "may not be null")
		return
	}
	set()
}

func (d *fieldDecoder) str(k string, raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.fail(k, "must be a string")
		return "", false
	}
	return s, true
}

func (d *fieldDecoder) token(k string, raw json.RawMessage) string {
	s, ok := d.str(k, raw)
	if ok && !ValidToken(s) {
		d.fail(k, tokenShape)
	}
	return s
}

func (d *fieldDecoder) text(k string, raw json.RawMessage, null bool) Opt[string] {
	if null {
		return Opt[string]{Set: true, Null: true}
	}
	s, ok := d.str(k, raw)
	if msg := textTooLong(s, k); ok && msg != "" {
		d.fail(k, msg)
	}
	return Opt[string]{Set: true, Value: s}
}

func (d *fieldDecoder) userType(k string, raw json.RawMessage) Type {
	s, ok := d.str(k, raw)
	if ok && !Type(s).Valid() {
		d.fail(k, typeValues)
	}
	return Type(s)
}

// maxExact is the largest integer a JSON number (a double, in the
// original) holds exactly: 2^53.
const maxExact = 1 << 53

// numericString reports what the original's Number() coercion turns into
// a number, less hex/octal/binary, Infinity and the empty string: a
// decimal number (no regexp: it would be compiled at every cold start).
func numericString(s string) bool {
	if s == "" || strings.Trim(s, "0123456789+-.eE") != "" {
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

// integer parses a non-negative integer given as a JSON number (1000, and
// as the original also 1e3 or 1000.0) or, as the original coerced maxIps,
// as a numeric string ("1000", " 1e3 "). Fractions and other strings are
// refused.
func integer(raw json.RawMessage) (int64, string) {
	s := string(bytes.TrimSpace(raw))
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return 0, "must be an integer"
		}
		str = strings.TrimSpace(str)
		if !numericString(str) {
			return 0, "must be an integer"
		}
		s = strings.TrimPrefix(str, "+")
	} else if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, "must be an integer"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		switch {
		case ferr != nil && !errors.Is(ferr, strconv.ErrRange):
			return 0, "must be an integer"
		case f != math.Trunc(f):
			return 0, "must be a whole number"
		case f < 0:
			return 0, "must be 0 or more"
		case f > maxExact || errors.Is(ferr, strconv.ErrRange):
			return 0, tooLarge
		}
		n = int64(f)
	}
	return n, wholeRange(n)
}

func (d *fieldDecoder) count(k string, raw json.RawMessage) int64 {
	n, msg := integer(raw)
	if msg != "" {
		d.fail(k, msg)
	}
	return n
}

func (d *fieldDecoder) optCount(k string, raw json.RawMessage, null bool) Opt[int64] {
	if null {
		return Opt[int64]{Set: true, Null: true}
	}
	return Opt[int64]{Set: true, Value: d.count(k, raw)}
}

func (d *fieldDecoder) families(k string, raw json.RawMessage, null bool) Opt[map[string]int64] {
	if null {
		return Opt[map[string]int64]{Set: true, Null: true}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		d.fail(k, "must be an object of model family to integer")
		return Opt[map[string]int64]{}
	}
	out := make(map[string]int64, len(m))
	for _, f := range slices.Sorted(maps.Keys(m)) {
		v := m[f]
		if !ValidFamily(f) {
			d.fail(k+"."+f, familyName)
			continue
		}
		n, msg := integer(v)
		if msg != "" {
			d.fail(k+"."+f, msg)
		}
		out[f] = n
	}
	return Opt[map[string]int64]{Set: true, Value: out}
}

func (d *fieldDecoder) ips(k string, raw json.RawMessage) []string {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		d.fail(k, "must be an array of IP addresses")
		return nil
	}
	out := make([]string, 0, len(list))
	for i, s := range list {
		if _, ok := risuAddr(s); ok { // a RisuAI user's (RisuIP): kept as written
			if !containsStr(out, s) {
				out = append(out, s)
			}
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			d.fail(fmt.Sprintf("%s[%d]", k, i), "is not an IP address")
			continue
		}
		// One spelling per address, so the IP limit counts addresses.
		s = a.Unmap().String()
		if !containsStr(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// Apply writes the patch's fields into u (which must be normalized).
// Maps and lists are copied: u shares nothing with p, so that changing u
// (a store's transaction run again, a charge) never changes the patch.
func (p *Patch) Apply(u *User) {
	if p.Token.has() {
		u.Token = p.Token.Value
	}
	if p.IP.Set {
		u.IP = orEmpty(p.IP.Value)
	}
	applyText(&u.Nickname, p.Nickname)
	if p.Type.has() {
		u.Type = p.Type.Value
	}
	if p.PromptCount.has() {
		u.PromptCount = p.PromptCount.Value
	}
	if p.TokenCounts.Set {
		u.TokenCounts = orEmptyMap(p.TokenCounts.Value)
	}
	if p.TokenLimits.Set {
		u.TokenLimits = orEmptyMap(p.TokenLimits.Value)
	}
	if p.TokenRefresh.Set {
		u.TokenRefresh = maps.Clone(p.TokenRefresh.Value) // nil when null: deleted
	}
	if p.CreatedAt.has() {
		u.CreatedAt = p.CreatedAt.Value
	}
	applyInt(&u.LastUsedAt, p.LastUsedAt)
	applyInt(&u.DisabledAt, p.DisabledAt)
	applyInt(&u.ExpiresAt, p.ExpiresAt)
	applyInt(&u.RefreshedAt, p.RefreshedAt)
	applyText(&u.DisabledReason, p.DisabledReason)
	applyText(&u.AdminNote, p.AdminNote)
	if p.MaxIPs.Set {
		if p.MaxIPs.Null {
			u.MaxIPs = nil
		} else {
			v := p.MaxIPs.Value
			u.MaxIPs = &v
		}
	}
	if p.Meta.Set {
		u.Meta = cloneMeta(p.Meta.Value)
	}
}

func applyText(dst *string, o Opt[string]) {
	if o.Set {
		*dst = o.Value // "" when null: omitted
	}
}

func applyInt(dst *int64, o Opt[int64]) {
	if o.Set {
		*dst = o.Value // 0 when null: omitted
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func orEmptyMap(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return maps.Clone(m)
}

// Validate checks the rules that span fields, after a patch was applied.
func (u *User) Validate() error {
	var issues []Issue
	if !ValidToken(u.Token) {
		issues = append(issues, Issue{Path: "token", Message: tokenShape})
	}
	if !u.Type.Valid() {
		issues = append(issues, Issue{Path: "type", Message: typeValues})
	}
	if u.Type == Temporary && u.ExpiresAt == 0 {
		issues = append(issues, Issue{Path: "expiresAt", Message: "required for temporary users"})
	}
	if u.CreatedAt == 0 {
		issues = append(issues, Issue{Path: "createdAt", Message: "required"})
	}
	if len(issues) > 0 {
		return invalid(issues)
	}
	return nil
}
