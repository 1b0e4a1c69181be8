package users

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// SortKey is one field of a list order: a user field name (or
// "tokenCounts.<family>" and the like for one family) and its direction.
type SortKey struct {
	Field string
	Desc  bool
}

// DefaultSort is the original's list order: most prompts first, then most
// recently used.
func DefaultSort() []SortKey {
	return []SortKey{{Field: "promptCount", Desc: true}, {Field: "lastUsedAt", Desc: true}}
}

// SortFields lists the fields a list can be sorted by. The three quota maps
// sort by their total, or by one family as "tokenCounts.gpt4".
func SortFields() []string {
	return []string{
		"token", "ip", "nickname", "type", "promptCount",
		"tokenCounts", "tokenLimits", "tokenRefresh",
		"createdAt", "lastUsedAt", "disabledAt", "disabledReason", "expiresAt",
		"adminNote", "maxIps", "meta", "refreshedAt",
	}
}

// maxSortKeys bounds the work one list request can ask for.
const maxSortKeys = 8

// ParseSort reads "f1,-f2": fields in priority order, ascending unless
// prefixed with "-" or suffixed ":desc" (":asc" is ascending too). Empty
// input gives DefaultSort. The admin UI's order links use it.
func ParseSort(spec string) ([]SortKey, error) { return parseSort(spec, false) }

// ParseAPISort reads the admin API's sort parameter the original's way:
// a plain field sorts descending, every field alike (the original sorted
// every given field descending). "-f" and "f:desc" are descending too;
// "f:asc" is the only way to ascend. Empty input gives DefaultSort.
func ParseAPISort(spec string) ([]SortKey, error) { return parseSort(spec, true) }

func parseSort(spec string, plainDesc bool) ([]SortKey, error) {
	if strings.TrimSpace(spec) == "" {
		return DefaultSort(), nil
	}
	var keys []SortKey
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k := SortKey{Field: part, Desc: plainDesc}
		if rest, ok := strings.CutPrefix(part, "-"); ok {
			k = SortKey{Field: rest, Desc: true}
		} else if rest, ok := strings.CutSuffix(part, ":desc"); ok {
			k = SortKey{Field: rest, Desc: true}
		} else if rest, ok := strings.CutSuffix(part, ":asc"); ok {
			k = SortKey{Field: rest, Desc: false}
		}
		if sortValueOf(k.Field) == nil {
			return nil, &Error{Code: CodeInvalid, Message: "Invalid value at sort: unknown field " + quoteField(k.Field),
				Issues: []Issue{{Path: "sort", Message: "unknown field " + quoteField(k.Field) + "; sortable: " + strings.Join(SortFields(), ", ") + " (maps also by one family, e.g. tokenCounts.gpt4)"}}}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return DefaultSort(), nil
	}
	if len(keys) > maxSortKeys {
		return nil, &Error{Code: CodeInvalid, Message: "Invalid value at sort: at most 8 fields",
			Issues: []Issue{{Path: "sort", Message: "at most 8 fields"}}}
	}
	return keys, nil
}

func quoteField(f string) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// Sort orders list by keys; users equal on every key are ordered by token,
// so the order is total and stable across calls. A missing value (no
// nickname, never used, no maxIps…) sorts last in either direction, as the
// original did.
func Sort(list []*User, keys []SortKey) {
	type row struct {
		u    *User
		vals []sortValue
	}
	get := make([]func(*User) sortValue, len(keys))
	for i, k := range keys {
		get[i] = sortValueOf(k.Field)
		if get[i] == nil {
			get[i] = func(*User) sortValue { return sortValue{missing: true} }
		}
	}
	// Values are computed once per user, not once per comparison.
	rows := make([]row, len(list))
	all := make([]sortValue, len(list)*len(keys))
	for i, u := range list {
		vals := all[i*len(keys) : (i+1)*len(keys) : (i+1)*len(keys)]
		for j := range keys {
			vals[j] = get[j](u)
		}
		rows[i] = row{u: u, vals: vals}
	}
	slices.SortFunc(rows, func(a, b row) int {
		for j, k := range keys {
			if c := a.vals[j].compare(b.vals[j], k.Desc); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.u.Token, b.u.Token)
	})
	for i := range rows {
		list[i] = rows[i].u
	}
}

type sortValue struct {
	missing bool
	n       int64
	s       string
}

func (a sortValue) compare(b sortValue, desc bool) int {
	switch {
	case a.missing && b.missing:
		return 0
	case a.missing:
		return 1
	case b.missing:
		return -1
	}
	c := cmp.Compare(a.n, b.n)
	if c == 0 {
		c = cmp.Compare(a.s, b.s)
	}
	if desc {
		return -c
	}
	return c
}

func sortNum(n int64) sortValue  { return sortValue{n: n} }
func sortStr(s string) sortValue { return sortValue{s: s} }

// Optional fields are missing when zero, as their JSON omits them.
func sortOptNum(n int64) sortValue  { return sortValue{n: n, missing: n == 0} }
func sortOptStr(s string) sortValue { return sortValue{s: s, missing: s == ""} }

func sortSum(m map[string]int64) int64 {
	t := int64(0)
	for _, v := range m {
		t += v
	}
	return t
}

// sortValueOf returns how to read field from a user, nil if it is not a
// sortable field.
func sortValueOf(field string) func(*User) sortValue {
	name, family, ok := strings.Cut(field, ".")
	if !ok {
		return sortFields[field]
	}
	m := sortFamilies[name]
	if m == nil || !ValidFamily(family) {
		return nil
	}
	return func(u *User) sortValue {
		v, ok := m(u)[family]
		return sortValue{n: v, missing: !ok}
	}
}

// sortFamilies are the per-family fields, sortable by one family
// (tokenCounts.gpt4o).
var sortFamilies = map[string]func(*User) map[string]int64{
	"tokenCounts":  func(u *User) map[string]int64 { return u.TokenCounts },
	"tokenLimits":  func(u *User) map[string]int64 { return u.TokenLimits },
	"tokenRefresh": func(u *User) map[string]int64 { return u.TokenRefresh },
}

// sortFields read the sortable fields.
var sortFields = map[string]func(*User) sortValue{
	"token": func(u *User) sortValue { return sortStr(u.Token) },
	// Lists sort by length, as the original did.
	"ip":             func(u *User) sortValue { return sortNum(int64(len(u.IP))) },
	"nickname":       func(u *User) sortValue { return sortOptStr(u.Nickname) },
	"type":           func(u *User) sortValue { return sortStr(string(u.Type)) },
	"promptCount":    func(u *User) sortValue { return sortNum(u.PromptCount) },
	"tokenCounts":    func(u *User) sortValue { return sortNum(sortSum(u.TokenCounts)) },
	"tokenLimits":    func(u *User) sortValue { return sortNum(sortSum(u.TokenLimits)) },
	"tokenRefresh":   func(u *User) sortValue { return sortValue{n: sortSum(u.TokenRefresh), missing: u.TokenRefresh == nil} },
	"createdAt":      func(u *User) sortValue { return sortNum(u.CreatedAt) },
	"lastUsedAt":     func(u *User) sortValue { return sortOptNum(u.LastUsedAt) },
	"disabledAt":     func(u *User) sortValue { return sortOptNum(u.DisabledAt) },
	"disabledReason": func(u *User) sortValue { return sortOptStr(u.DisabledReason) },
	"expiresAt":      func(u *User) sortValue { return sortOptNum(u.ExpiresAt) },
	"adminNote":      func(u *User) sortValue { return sortOptStr(u.AdminNote) },
	"maxIps": func(u *User) sortValue {
		if u.MaxIPs == nil {
			return sortValue{missing: true}
		}
		return sortNum(*u.MaxIPs)
	},
	// Free-form: ordered by its canonical JSON (keys sorted), which at
	// least groups equal metas together.
	"meta": func(u *User) sortValue {
		if u.Meta == nil {
			return sortValue{missing: true}
		}
		b, _ := json.Marshal(u.Meta)
		return sortStr(string(b))
	},
	"refreshedAt": func(u *User) sortValue { return sortOptNum(u.RefreshedAt) },
}
