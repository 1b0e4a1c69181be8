package rtdb

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
)

// A user is stored at /<UsersRef>/<token> as its users.User JSON fields,
// with what RTDB cannot hold as-is encoded so that a read gives back exactly
// the users.User that was written:
//
//   - Object keys (family names, meta keys) are percent-encoded for
//     . $ # [ ] / % and control characters, which RTDB refuses in keys. An
//     all-digit key (optionally with a leading '-') gets its first character
//     encoded too, so no stored object has integer keys: RTDB would serve
//     such an object as an array. The empty key is "%".
//   - RTDB drops null and empty objects and arrays, so inside meta they are
//     the strings "%null", "%{}" and "%[]"; a meta string that starts with
//     '%' gets one more '%' in front. An empty tokenRefresh or meta (which
//     is not the same as an absent one) is "%{}".
//   - Empty ip, tokenCounts and tokenLimits are omitted: absent reads as
//     empty, as users.User.Normalize makes it.
//
// Reading is tolerant of data written by others (the original project,
// hand edits): unencoded keys, arrays where an object was expected (RTDB's
// array conversion of integer keys), and unknown fields, which are ignored.
// Numbers are doubles in RTDB: integers above 2^53 lose precision.

const (
	markEmptyObject = "%{}"
	markEmptyArray  = "%[]"
	markNull        = "%null"
)

// maxKeyBytes is RTDB's limit on one key.
const maxKeyBytes = 768

// maxMetaDepth keeps meta within RTDB's 32 levels below the root, leaving
// room for /<UsersRef>/<token>/meta.
const maxMetaDepth = 24

// encodeKey makes k a valid, non-integer RTDB key; decodeKey reverses it.
func encodeKey(k string) string {
	if k == "" {
		return "%"
	}
	integer := isIntegerLike(k)
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(".$#[]/%", c) >= 0 || (i == 0 && integer) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isIntegerLike(k string) bool {
	k = strings.TrimPrefix(k, "-")
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			return false
		}
	}
	return true
}

func decodeKey(k string) string {
	if k == "%" {
		return ""
	}
	if !strings.Contains(k, "%") {
		return k
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] == '%' && i+2 < len(k) {
			if n, err := strconv.ParseUint(k[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

// maxExact is the largest integer RTDB (doubles) stores exactly: 2^53.
const maxExact = 1 << 53

// checkExact refuses integers the database would round (and, near 2^63,
// give back negative), rather than store a different number.
func checkExact(u *users.User) error {
	var issues []users.Issue
	check := func(path string, n int64) {
		if n > maxExact || n < -maxExact {
			issues = append(issues, users.Issue{Path: path, Message: "is beyond 2^53 (9007199254740992): the database cannot store it exactly"})
		}
	}
	check("promptCount", u.PromptCount)
	check("createdAt", u.CreatedAt)
	check("lastUsedAt", u.LastUsedAt)
	check("disabledAt", u.DisabledAt)
	check("expiresAt", u.ExpiresAt)
	check("refreshedAt", u.RefreshedAt)
	if u.MaxIPs != nil {
		check("maxIps", *u.MaxIPs)
	}
	for field, fam := range map[string]map[string]int64{"tokenCounts": u.TokenCounts, "tokenLimits": u.TokenLimits, "tokenRefresh": u.TokenRefresh} {
		for f, n := range fam {
			check(field+"."+f, n)
		}
	}
	if len(issues) == 0 {
		return nil
	}
	slices.SortFunc(issues, func(a, b users.Issue) int { return strings.Compare(a.Path, b.Path) })
	return &users.Error{Code: users.CodeInvalid, Message: "A number is too large for the database: " + issues[0].Path + ".", Issues: issues}
}

// encodeUser is the stored form of u (normalized).
func encodeUser(u *users.User) (map[string]any, error) {
	if err := checkExact(u); err != nil {
		return nil, err
	}
	m := map[string]any{
		"token":       u.Token,
		"type":        string(u.Type),
		"promptCount": u.PromptCount,
		"createdAt":   u.CreatedAt,
	}
	if len(u.IP) > 0 {
		ips := make([]any, len(u.IP))
		for i, ip := range u.IP {
			ips[i] = ip
		}
		m["ip"] = ips
	}
	for k, v := range map[string]string{"nickname": u.Nickname, "disabledReason": u.DisabledReason, "adminNote": u.AdminNote} {
		if v != "" {
			m[k] = v
		}
	}
	for k, v := range map[string]int64{"lastUsedAt": u.LastUsedAt, "disabledAt": u.DisabledAt, "expiresAt": u.ExpiresAt, "refreshedAt": u.RefreshedAt} {
		if v != 0 {
			m[k] = v
		}
	}
	for k, fam := range map[string]map[string]int64{"tokenCounts": u.TokenCounts, "tokenLimits": u.TokenLimits} {
		if len(fam) > 0 {
			enc, err := encodeFamilies(k, fam)
			if err != nil {
				return nil, err
			}
			m[k] = enc
		}
	}
	if u.TokenRefresh != nil {
		enc, err := encodeFamilies("tokenRefresh", u.TokenRefresh)
		if err != nil {
			return nil, err
		}
		m["tokenRefresh"] = enc
	}
	if u.MaxIPs != nil {
		m["maxIps"] = *u.MaxIPs
	}
	if u.Meta != nil {
		enc, err := encodeValue("meta", u.Meta, 0)
		if err != nil {
			return nil, err
		}
		m["meta"] = enc
	}
	return m, nil
}

func encodeFamilies(field string, fam map[string]int64) (any, error) {
	return encodeObject(field, fam, func(_ string, n int64) (any, error) { return n, nil })
}

// encodeObject encodes a map as an object whose keys are encoded (and
// bounded) and whose values value encodes; the database drops an empty
// object, so it is stored as a mark. path names the map in errors.
func encodeObject[V any](path string, m map[string]V, value func(k string, v V) (any, error)) (any, error) {
	if len(m) == 0 {
		return markEmptyObject, nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		ek := encodeKey(k)
		if len(ek) > maxKeyBytes {
			return nil, tooLong(path)
		}
		enc, err := value(k, v)
		if err != nil {
			return nil, err
		}
		out[ek] = enc
	}
	return out, nil
}

func tooLong(path string) error {
	return &users.Error{Code: users.CodeInvalid, Message: "A key is too long for the database.",
		Issues: []users.Issue{{Path: path, Message: "keys must be at most 768 bytes once encoded"}}}
}

// encodeValue encodes one meta value; path names it in errors.
func encodeValue(path string, v any, depth int) (any, error) {
	if depth > maxMetaDepth {
		return nil, &users.Error{Code: users.CodeInvalid, Message: "meta is nested too deeply for the database.",
			Issues: []users.Issue{{Path: path, Message: fmt.Sprintf("at most %d levels", maxMetaDepth)}}}
	}
	switch t := v.(type) {
	case nil:
		return markNull, nil
	case string:
		if strings.HasPrefix(t, "%") {
			return "%" + t, nil
		}
		return t, nil
	case bool, float64, json.Number:
		return t, nil
	case []any:
		if len(t) == 0 {
			return markEmptyArray, nil
		}
		out := make([]any, len(t))
		for i, e := range t {
			enc, err := encodeValue(path+"["+strconv.Itoa(i)+"]", e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = enc
		}
		return out, nil
	case map[string]any:
		return encodeObject(path, t, func(k string, e any) (any, error) { return encodeValue(path+"."+k, e, depth+1) })
	default:
		// Other Go values (ints, typed slices and maps) that code may put in
		// meta: store them as JSON would, as a decoded document has them.
		b, err := json.Marshal(t)
		if err != nil {
			return nil, &users.Error{Code: users.CodeInvalid, Message: "meta holds a value that is not JSON.",
				Issues: []users.Issue{{Path: path, Message: err.Error()}}}
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return nil, fmt.Errorf("rtdb: re-decoding meta value: %w", err)
		}
		return encodeValue(path, generic, depth)
	}
}

// userFromValue decodes one stored user; the token is the node's key.
func userFromValue(token string, v any) (*users.User, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("rtdb: user %s: stored value is a %T, not an object", logging.TokenTail(token), v)
	}
	d := decoder{}
	u := &users.User{Token: token}
	for k, v := range m {
		switch k {
		case "ip":
			u.IP = d.strings(k, v)
		case "nickname":
			u.Nickname = d.str(k, v)
		case "type":
			u.Type = users.Type(d.str(k, v))
		case "promptCount":
			u.PromptCount = d.int(k, v)
		case "tokenCounts":
			u.TokenCounts = d.families(k, v)
		case "tokenLimits":
			u.TokenLimits = d.families(k, v)
		case "tokenRefresh":
			u.TokenRefresh = d.families(k, v)
		case "createdAt":
			u.CreatedAt = d.int(k, v)
		case "lastUsedAt":
			u.LastUsedAt = d.int(k, v)
		case "disabledAt":
			u.DisabledAt = d.int(k, v)
		case "expiresAt":
			u.ExpiresAt = d.int(k, v)
		case "refreshedAt":
			u.RefreshedAt = d.int(k, v)
		case "disabledReason":
			u.DisabledReason = d.str(k, v)
		case "adminNote":
			u.AdminNote = d.str(k, v)
		case "maxIps":
			n := d.int(k, v)
			u.MaxIPs = &n
		case "meta":
			u.Meta = d.meta(k, v)
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("rtdb: user %s: %w", logging.TokenTail(token), d.err)
	}
	u.Normalize()
	return u, nil
}

// decoder keeps the first error so field decoding reads straight.
type decoder struct{ err error }

func (d *decoder) fail(field string, v any, want string) {
	if d.err == nil {
		d.err = fmt.Errorf("field %s is a %T, want %s", field, v, want)
	}
}

func (d *decoder) str(field string, v any) string {
	s, ok := v.(string)
	if !ok {
		d.fail(field, v, "a string")
	}
	return s
}

func (d *decoder) int(field string, v any) int64 {
	switch t := v.(type) {
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		if f, err := t.Float64(); err == nil && !math.IsInf(f, 0) {
			return int64(f) // RTDB doubles: 1.0e12 and friends
		}
	case string:
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return n
		}
	}
	d.fail(field, v, "an integer")
	return 0
}

func (d *decoder) strings(field string, v any) []string {
	var out []string
	for _, e := range d.list(field, v) {
		if e != nil {
			out = append(out, d.str(field, e))
		}
	}
	return out
}

// list reads an array, or the integer-keyed object RTDB serves for a
// sparse one, in index order.
func (d *decoder) list(field string, v any) []any {
	switch t := v.(type) {
	case []any:
		return t
	case map[string]any:
		idx := make([]int, 0, len(t))
		for k := range t {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 {
				d.fail(field, v, "an array")
				return nil
			}
			idx = append(idx, i)
		}
		slices.Sort(idx)
		out := make([]any, len(idx))
		for j, i := range idx {
			out[j] = t[strconv.Itoa(i)]
		}
		return out
	case string:
		if t == markEmptyArray {
			return nil
		}
	}
	d.fail(field, v, "an array")
	return nil
}

func (d *decoder) families(field string, v any) map[string]int64 {
	out := map[string]int64{}
	switch t := v.(type) {
	case string:
		if t != markEmptyObject {
			d.fail(field, v, "an object")
		}
	case map[string]any:
		for k, n := range t {
			out[decodeKey(k)] = d.int(field+"."+k, n)
		}
	case []any: // integer family names written unencoded by others
		for i, n := range t {
			if n != nil {
				out[strconv.Itoa(i)] = d.int(field, n)
			}
		}
	default:
		d.fail(field, v, "an object")
	}
	return out
}

func (d *decoder) meta(field string, v any) map[string]any {
	switch t := v.(type) {
	case string:
		if t == markEmptyObject {
			return map[string]any{}
		}
	case map[string]any:
		return decodeObject(t)
	case []any: // integer keys written unencoded by others
		out := map[string]any{}
		for i, e := range t {
			if e != nil {
				out[strconv.Itoa(i)] = decodeValue(e)
			}
		}
		return out
	}
	d.fail(field, v, "an object")
	return nil
}

func decodeObject(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[decodeKey(k)] = decodeValue(v)
	}
	return out
}

// decodeValue reverses encodeValue; numbers become float64, as
// encoding/json decodes them into an any.
func decodeValue(v any) any {
	switch t := v.(type) {
	case string:
		switch {
		case t == markNull:
			return nil
		case t == markEmptyObject:
			return map[string]any{}
		case t == markEmptyArray:
			return []any{}
		case strings.HasPrefix(t, "%%"):
			return t[1:]
		}
		return t
	case json.Number:
		f, _ := t.Float64()
		return f
	case map[string]any:
		return decodeObject(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = decodeValue(e)
		}
		return out
	}
	return v
}

// A stored user also holds usageFlushed: for each writer (one Store, that
// is one proxy or admin instance's connection) that flushed usage to it
// lately, the number of that writer's latest flush applied to the user.
// A flush whose answer was lost is sent again under its own number (by
// the Firebase client, or by the writer's next flush): when the record
// already holds that number, the usage is in it and is not added again.
// It is no part of users.User (nor of exports, imports or the admin
// API): userFromValue skips it, Modify keeps it as stored, and a usage
// flush writes it. A writer's number is the epoch ms of its flush (one
// more than its previous number when that is not smaller), so an entry
// tells its age: entries older than flushedMaxAge are dropped by the
// next flush of the user, and at most flushedMaxWriters are kept, the
// newest, about 30 bytes each.
const (
	flushedField      = "usageFlushed"
	flushedMaxAge     = 24 * time.Hour
	flushedMaxWriters = 16
)

// decodeFlushed reads usageFlushed from a stored user (as decodeJSON
// gives it); what is not a writer's number is skipped.
func decodeFlushed(raw any) map[string]int64 {
	out := map[string]int64{}
	m, _ := raw.(map[string]any)
	f, _ := m[flushedField].(map[string]any)
	for w, v := range f {
		if n, ok := flushedNumber(v); ok {
			out[w] = n
		}
	}
	return out
}

// flushedBy is writer's number in a stored user's usageFlushed; 0 when
// it has none.
func flushedBy(raw any, writer string) int64 {
	m, _ := raw.(map[string]any)
	f, _ := m[flushedField].(map[string]any)
	n, _ := flushedNumber(f[writer])
	return n
}

func flushedNumber(v any) (int64, bool) {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i, true
		}
	}
	return 0, false
}

// encodeFlushed is the stored form of a writer map; nil when empty (no
// field).
func encodeFlushed(f map[string]int64) map[string]any {
	if len(f) == 0 {
		return nil
	}
	out := make(map[string]any, len(f))
	for w, n := range f {
		out[w] = n
	}
	return out
}

// pruneFlushed drops the entries older than flushedMaxAge at nowMS, then
// the oldest beyond flushedMaxWriters; keep's entry stays.
func pruneFlushed(f map[string]int64, keep string, nowMS int64) {
	for w, n := range f {
		if w != keep && n < nowMS-flushedMaxAge.Milliseconds() {
			delete(f, w)
		}
	}
	for len(f) > flushedMaxWriters {
		oldest := ""
		for w, n := range f {
			if w != keep && (oldest == "" || n < f[oldest] || n == f[oldest] && w < oldest) {
				oldest = w
			}
		}
		delete(f, oldest)
	}
}

// keepFlushed copies usageFlushed, as stored in raw, into enc: a write of
// the user's fields (an edit, an import) keeps the writers' numbers.
func keepFlushed(raw any, enc map[string]any) {
	if m, ok := raw.(map[string]any); ok {
		if f, ok := m[flushedField]; ok {
			enc[flushedField] = f
		}
	}
}
