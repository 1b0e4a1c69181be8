package users

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// IPLists are the operator's live additions to ADMIN_WHITELIST and
// IP_BLACKLIST, kept in the store so that every instance enforces them.
// The environment's lists stay in force beside them: these only add.
type IPLists struct {
	Whitelist []string `json:"whitelist"`
	Blacklist []string `json:"blacklist"`
	UpdatedAt int64    `json:"updatedAt,omitempty"` // epoch ms
	// Version names the lists as read (the database's ETag, the memory
	// store's count of saves); it is never stored. A save that carries it
	// is made only over that same version, so that two admins editing at
	// once cannot silently undo each other.
	Version string `json:"-"`
}

// LiveLists reads and replaces the live IP lists.
type LiveLists interface {
	// IPLists returns the lists as stored (empty lists when never set)
	// with their Version, which is never empty.
	IPLists(ctx context.Context) (IPLists, error)
	// SetIPLists replaces both lists. With l.Version set, only if the
	// stored lists are still at that version: else it writes nothing and
	// returns ErrListsChanged. An empty Version replaces whatever is
	// stored.
	SetIPLists(ctx context.Context, l IPLists) error
}

// ErrListsChanged refuses a save of the live lists made over a version
// that is no longer the stored one: someone else saved in between.
var ErrListsChanged = &Error{Code: CodeConflict, Message: "The IP lists were changed by someone else since they were read: nothing was written."}

// WellFormedVersion reports whether v can be a version of the live lists:
// 1 to 128 letters, digits and + / = _ - (what database ETags and counters
// are made of). Stores refuse a save over any other version as
// ErrListsChanged, before it reaches the database.
func WellFormedVersion(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for _, c := range []byte(v) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("+/=_-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// MaxListEntries bounds each live list.
const MaxListEntries = 1000

// ParseIPList reads a list typed by an operator: entries separated by
// commas, spaces or new lines, each an IPv4/IPv6 address or CIDR range.
// Ranges are written masked and duplicates are dropped; field names the
// list in the issues of a bad entry.
func ParseIPList(field, text string) ([]string, error) {
	var out []string
	var issues []Issue
	for _, part := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		entry, err := canonicalIP(part)
		if err != nil {
			issues = append(issues, Issue{Path: field, Message: fmt.Sprintf("%q is not an IP address or CIDR range", part)})
			continue
		}
		if !slices.Contains(out, entry) {
			out = append(out, entry)
		}
	}
	if len(out) > MaxListEntries {
		issues = append(issues, Issue{Path: field, Message: fmt.Sprintf("at most %d entries", MaxListEntries)})
	}
	if issues != nil {
		return nil, invalid(issues)
	}
	return out, nil
}

func canonicalIP(s string) (string, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", err
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("not an address: %q", s)
	}
	return a.Unmap().String(), nil
}

// Validate checks lists read from outside (the API, the store).
func (l IPLists) Validate() error {
	var issues []Issue
	for field, list := range map[string][]string{"whitelist": l.Whitelist, "blacklist": l.Blacklist} {
		if len(list) > MaxListEntries {
			issues = append(issues, Issue{Path: field, Message: fmt.Sprintf("at most %d entries", MaxListEntries)})
		}
		for i, e := range list {
			if _, err := canonicalIP(e); err != nil {
				issues = append(issues, Issue{Path: fmt.Sprintf("%s/%d", field, i), Message: fmt.Sprintf("%q is not an IP address or CIDR range", e)})
			}
		}
	}
	if issues != nil {
		slices.SortFunc(issues, func(a, b Issue) int { return strings.Compare(a.Path, b.Path) })
		return invalid(issues)
	}
	return nil
}

// EnvLine is a list as an environment value (comma-separated), for
// "copy as environment".
func EnvLine(env string, live []string) string {
	var all []string
	for _, e := range strings.Split(env, ",") {
		if e = strings.TrimSpace(e); e != "" && !slices.Contains(all, e) {
			all = append(all, e)
		}
	}
	for _, e := range live {
		if !slices.Contains(all, e) {
			all = append(all, e)
		}
	}
	return strings.Join(all, ",")
}
