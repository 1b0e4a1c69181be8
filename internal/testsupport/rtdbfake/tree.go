package rtdbfake

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The stored tree holds what RTDB holds: objects (map[string]any, never
// empty), strings, float64 numbers (RTDB numbers are doubles) and bools.
// Arrays are stored as objects with integer keys; null and empty objects do
// not exist.

// maxDepth is RTDB's limit on nesting below the root.
const maxDepth = 32

// maxKeyBytes is RTDB's limit on the length of one key.
const maxKeyBytes = 768

// nullETag is what the real server answers for a location holding nothing.
const nullETag = "null_etag"

// validKey reports whether k may name a child: non-empty, at most 768
// bytes, none of . $ # [ ] / and no ASCII control character.
func validKey(k string) bool {
	if k == "" || len(k) > maxKeyBytes {
		return false
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c < 0x20 || c == 0x7f:
			return false
		case strings.IndexByte(".$#[]/", c) >= 0:
			return false
		}
	}
	return true
}

// parsePath splits a URL path (without ".json") into validated segments.
func parsePath(p string) ([]string, error) {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if s == "" {
			continue
		}
		if !validKey(s) {
			return nil, errors.New("Invalid path: Invalid token in path")
		}
		segs = append(segs, s)
	}
	return segs, nil
}

func getAt(node any, segs []string) any {
	for _, s := range segs {
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = m[s]
	}
	return node
}

// setAt writes v (nil deletes) at segs below node and returns the new node.
// Emptied objects vanish, as in RTDB; a primitive on the way is replaced.
func setAt(node any, segs []string, v any) any {
	if len(segs) == 0 {
		return v
	}
	m, ok := node.(map[string]any)
	if !ok {
		if v == nil {
			return node
		}
		m = map[string]any{}
	}
	child := setAt(m[segs[0]], segs[1:], v)
	if child == nil {
		delete(m, segs[0])
	} else {
		m[segs[0]] = child
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// resolver turns a request body into stored form: validates keys, replaces
// server values, converts arrays and prunes nulls and empty objects.
type resolver struct {
	nowMS float64
}

// resolve converts v, to be written where existing is now, at depth.
func (r resolver) resolve(v any, existing any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("Invalid data; the data is nested too deeply (maximum depth 32)")
	}
	switch t := v.(type) {
	case map[string]any:
		if sv, ok := t[".sv"]; ok {
			if len(t) != 1 {
				return nil, errors.New("Invalid data; a server value must be the only member of its object")
			}
			return r.serverValue(sv, existing)
		}
		if val, ok := t[".value"]; ok {
			// {".value": x, ".priority": p}: priorities are not modelled.
			return r.resolve(val, existing, depth)
		}
		out := make(map[string]any, len(t))
		for k, c := range t {
			if k == ".priority" {
				continue
			}
			if !validKey(k) {
				return nil, fmt.Errorf("Invalid data; key %q is not valid: keys must be non-empty, at most 768 bytes, without . $ # [ ] / or control characters", k)
			}
			n, err := r.resolve(c, getAt(existing, []string{k}), depth+1)
			if err != nil {
				return nil, err
			}
			if n != nil {
				out[k] = n
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	case []any:
		out := make(map[string]any, len(t))
		for i, c := range t {
			k := strconv.Itoa(i)
			n, err := r.resolve(c, getAt(existing, []string{k}), depth+1)
			if err != nil {
				return nil, err
			}
			if n != nil {
				out[k] = n
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	case float64, string, bool, nil:
		return t, nil
	default:
		return nil, fmt.Errorf("Invalid data; unsupported value of type %T", v)
	}
}

func (r resolver) serverValue(sv any, existing any) (any, error) {
	switch t := sv.(type) {
	case string:
		if t == "timestamp" {
			return r.nowMS, nil
		}
	case map[string]any:
		if inc, ok := t["increment"]; ok && len(t) == 1 {
			delta, ok := inc.(float64)
			if !ok {
				return nil, errors.New("Invalid data; increment must be a number")
			}
			if cur, ok := existing.(float64); ok {
				return cur + delta, nil
			}
			return delta, nil
		}
	}
	return nil, errors.New("Invalid data; unknown server value")
}

// arrayIndex reports whether k is a key RTDB treats as an array index.
func arrayIndex(k string) (int, bool) {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			return 0, false
		}
		n = n*10 + int(k[i]-'0')
	}
	if n > math.MaxInt32 {
		return 0, false
	}
	return n, true
}

// render deep-copies a stored value into what the server answers: an
// object whose keys are all array indices, at least half of them present
// (max key < 2 × count), comes back as an array with nulls in the holes.
func render(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	maxIdx, allIdx := -1, true
	for k, c := range m {
		out[k] = render(c)
		if i, ok := arrayIndex(k); ok {
			maxIdx = max(maxIdx, i)
		} else {
			allIdx = false
		}
	}
	if !allIdx || maxIdx >= 2*len(m) {
		return out
	}
	arr := make([]any, maxIdx+1)
	for k, c := range out {
		i, _ := arrayIndex(k)
		arr[i] = c
	}
	return arr
}

// copyTree deep-copies a stored value as stored (no array conversion).
func copyTree(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, c := range m {
		out[k] = copyTree(c)
	}
	return out
}

// etag is a digest of the value as served; the real server's ETags are
// opaque base64 strings too, and "null_etag" for an empty location.
func etag(v any) string {
	if v == nil {
		return nullETag
	}
	b, _ := json.Marshal(render(v))
	sum := sha1.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// shallow answers shallow=true: an object's children become true, or stay
// as they are when they are primitives.
func shallow(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, c := range m {
		if _, isObj := c.(map[string]any); isObj {
			out[k] = true
		} else {
			out[k] = c
		}
	}
	return out
}

// compareKeys orders keys as RTDB's $key index does: 32-bit integer keys
// first in numeric order, then the others as strings.
func compareKeys(a, b string) int {
	ai, aInt := intKey(a)
	bi, bInt := intKey(b)
	switch {
	case aInt && bInt:
		switch {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	case aInt:
		return -1
	case bInt:
		return 1
	}
	return strings.Compare(a, b)
}

func intKey(k string) (int64, bool) {
	n, err := strconv.ParseInt(k, 10, 32)
	if err != nil || strconv.FormatInt(n, 10) != k {
		return 0, false
	}
	return n, true
}

// keyQuery is an orderBy="$key" query with its filters.
type keyQuery struct {
	start, end, equal *string
	first, last       int
}

func (q keyQuery) apply(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if q.start != nil && compareKeys(k, *q.start) < 0 ||
			q.end != nil && compareKeys(k, *q.end) > 0 ||
			q.equal != nil && k != *q.equal {
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return compareKeys(keys[i], keys[j]) < 0 })
	if q.first > 0 && len(keys) > q.first {
		keys = keys[:q.first]
	}
	if q.last > 0 && len(keys) > q.last {
		keys = keys[len(keys)-q.last:]
	}
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
