package users

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ipGroup is what an entry of a user's IP list counts as toward the IP
// limit. An IPv6 address counts as its /64, which one client usually holds
// whole and moves within (temporary addresses, RFC 8981), the rule
// netutil.ClientKey applies to lockouts and per-address limits; an IPv4
// address (or an IPv4-mapped one) counts as itself. An IPv6 address that
// stands for an IPv4 client in a prefix many clients share (clientIPv4)
// counts as that client. A RisuAI entry (RisuIP) is its id with its
// address's group. An entry that is no address is a group of its own.
// Finding the group of an address without a zone (every address a request
// brings) allocates nothing.
type ipGroup struct {
	net  netip.Prefix
	rest string // a RisuAI entry's "risu<id>-"; the whole entry if it is no address
}

func groupOf(entry string) ipGroup {
	id := ""
	a, err := netip.ParseAddr(entry)
	if err != nil {
		var ok bool
		if a, ok = risuAddr(entry); !ok {
			return ipGroup{rest: entry}
		}
		id = entry[:strings.LastIndexByte(entry, '-')+1]
	}
	a = clientIPv4(a.Unmap().WithZone(""))
	bits := 32
	if a.Is6() {
		bits = 64
		if nat64Local.Contains(a) {
			bits = 128 // where the IPv4 address sits depends on the translator
		}
	}
	p, _ := a.Prefix(bits)
	return ipGroup{net: p, rest: id}
}

var (
	teredo     = netip.MustParsePrefix("2001::/32")      // RFC 4380
	nat64      = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215
)

// clientIPv4 is the IPv4 client an IPv6 address stands for where the
// address's /64 is shared by clients anywhere: a Teredo address (the /64
// is its server's, the client's address is its last 32 bits, inverted)
// or one of NAT64's well-known /96 (the client's address is its last 32
// bits). Any other address is returned as it is.
func clientIPv4(a netip.Addr) netip.Addr {
	if !a.Is6() {
		return a
	}
	b := a.As16()
	switch {
	case teredo.Contains(a):
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return a
}

// roomFor reports whether ips leaves room for ip under limit (> 0): ip's
// group is among those of ips, or they hold fewer than limit groups. The
// groups seen are kept on the stack while they are few (small limits
// allocate nothing) and in a set past that, so that a large limit costs
// one pass over ips, not one per group.
func roomFor(ips []string, ip string, limit int64) bool {
	g := groupOf(ip)
	var buf [8]ipGroup
	seen := buf[:0]
	var many map[ipGroup]struct{}
	counted := int64(0)
	for _, e := range ips {
		eg := groupOf(e)
		if eg == g {
			return true
		}
		if counted >= limit {
			continue // full: only ip's own group can still make room
		}
		if many == nil && len(seen) == len(buf) && !slices.Contains(seen, eg) {
			many = make(map[ipGroup]struct{}, len(ips))
			for _, s := range seen {
				many[s] = struct{}{}
			}
		}
		if many != nil {
			if _, ok := many[eg]; !ok {
				many[eg] = struct{}{}
				counted++
			}
		} else if !slices.Contains(seen, eg) {
			seen = append(seen, eg)
			counted++
		}
	}
	return counted < limit
}

// HasIPGroup reports whether an address of ip's network (what the IP
// limit counts) is recorded for u: ip then takes no place under the limit.
func (u *User) HasIPGroup(ip string) bool {
	g := groupOf(ip)
	for _, e := range u.IP {
		if groupOf(e) == g {
			return true
		}
	}
	return false
}

// IPUnlimited reports whether no IP limit applies to u (defaultMax is
// MAX_IPS_PER_USER): a special user, or a limit of 0.
func (u *User) IPUnlimited(defaultMax int64) bool {
	return u.Type == Special || u.MaxIPsOr(defaultMax) <= 0
}

// RecordIP records an address used without the database's judgement (its
// network recorded, or no limit applying: see IPRecorder) as AdmitIP
// would on u as it is now, but never disables u: when u has no room for
// it any more, it is not recorded. It reports whether it recorded it.
func RecordIP(u *User, ip string, defaultMax int64) bool {
	return AdmitIP(u, ip, defaultMax, false, time.Time{}) == IPAdded
}

// IPsCounted is how many places of the IP limit the user's recorded
// addresses take: the addresses of one IPv6 /64 (and of one RisuAI user
// there) take one.
func (u *User) IPsCounted() int {
	seen := make(map[ipGroup]struct{}, len(u.IP))
	for _, e := range u.IP {
		seen[groupOf(e)] = struct{}{}
	}
	return len(seen)
}

// trimIPs drops the oldest entries of ips (in place) until at most max
// remain: first those whose group is recorded again later, so that every
// group the IP limit counts stays recorded; only a record of more than max
// groups (no limit, or one above max) then loses its oldest.
func trimIPs(ips []string, max int) []string {
	excess := len(ips) - max
	if excess <= 0 {
		return ips
	}
	groups := make([]ipGroup, len(ips))
	left := make(map[ipGroup]int, len(ips))
	for i, e := range ips {
		groups[i] = groupOf(e)
		left[groups[i]]++
	}
	drop := make([]bool, len(ips))
	for i := 0; i < len(ips) && excess > 0; i++ {
		if left[groups[i]] > 1 {
			left[groups[i]]--
			drop[i], excess = true, excess-1
		}
	}
	for i := 0; i < len(ips) && excess > 0; i++ {
		if !drop[i] {
			drop[i], excess = true, excess-1
		}
	}
	kept := ips[:0]
	for i, e := range ips {
		if !drop[i] {
			kept = append(kept, e)
		}
	}
	clear(ips[len(kept):])
	return kept
}
