package users

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Check applies to a patch built in code (the admin UI's forms, the
// self-service page) the value rules ParsePatch applies to JSON: token
// shape, type, text lengths, family names, whole numbers of 0 or more.
// Issues are ordered by path.
func (p *Patch) Check() error {
	var issues []Issue
	add := func(path, msg string) {
		if msg != "" {
			issues = append(issues, Issue{Path: path, Message: msg})
		}
	}
	if p.Token.has() && !ValidToken(p.Token.Value) {
		add("token", tokenShape)
	}
	if p.Type.has() && !p.Type.Value.Valid() {
		add("type", typeValues)
	}
	for path, field := range textFields {
		if o := *field(p); o.has() {
			add(path, textTooLong(o.Value, path))
		}
	}
	counts := map[string]Opt[int64]{"promptCount": p.PromptCount, "createdAt": p.CreatedAt}
	for path, field := range optCountFields {
		counts[path] = *field(p)
	}
	for path, o := range counts {
		if o.has() {
			add(path, wholeRange(o.Value))
		}
	}
	for path, field := range familyFields {
		o := *field(p)
		for _, f := range slices.Sorted(maps.Keys(o.Value)) {
			if !ValidFamily(f) {
				add(path+"."+f, familyName)
			} else {
				add(path+"."+f, wholeRange(o.Value[f]))
			}
		}
	}
	if p.Meta.has() {
		if b, err := json.Marshal(p.Meta.Value); err != nil || len(b) > MaxMetaLen {
			add("meta", fmt.Sprintf("must be at most %d bytes of JSON", MaxMetaLen))
		}
	}
	if len(issues) == 0 {
		return nil
	}
	slices.SortFunc(issues, func(a, b Issue) int { return strings.Compare(a.Path, b.Path) })
	return invalid(issues)
}

// The value rules' messages, shared by ParsePatch and Check.
const (
	tokenShape  = "must be 1-128 letters, digits, '-' or '_'"
	typeValues  = `must be one of "normal", "special", "temporary"`
	notNegative = "must be 0 or more"
	tooLarge    = "must be at most 2^53"
	familyName  = "is not a valid model family name"
)

// wholeRange is the issue of a number outside 0..2^53 (what a JSON
// number and the database hold exactly), "" if none.
func wholeRange(n int64) string {
	switch {
	case n < 0:
		return notNegative
	case n > maxExact:
		return tooLarge
	}
	return ""
}

// textTooLong is the issue of a free-text field over its limit, "" if none.
func textTooLong(s, field string) string {
	max := MaxTextLen
	if field == "nickname" {
		max = MaxNicknameLen
	}
	if utf8.RuneCountInString(s) > max {
		return fmt.Sprintf("must be at most %d characters", max)
	}
	return ""
}
