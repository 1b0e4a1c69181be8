// Package netutil parses address lists and finds a request's real client IP.
package netutil

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// IPSet is a list of addresses and CIDR ranges, IPv4 and IPv6.
type IPSet struct {
	prefixes []netip.Prefix
	raw      string
}

// ParseIPSet parses a comma list such as "10.0.0.0/8, 2001:db8::1".
// Empty input is the empty set.
func ParseIPSet(s string) (IPSet, error) {
	set := IPSet{raw: s}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(part, "/") {
			p, err = netip.ParsePrefix(part)
			if err == nil {
				p = p.Masked()
			}
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(part)
			if err == nil && a.Zone() != "" {
				// A zone means nothing to a remote client's address, and
				// PrefixFrom would drop it silently.
				err = fmt.Errorf("zoned address")
			}
			if err == nil {
				a = a.Unmap()
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return IPSet{}, fmt.Errorf("%q is not an IP address or CIDR range", part)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		set.prefixes = append(set.prefixes, p)
	}
	return set, nil
}

// Contains reports whether ip (any textual form) is in the set.
func (s IPSet) Contains(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return s.ContainsAddr(a)
}

// ContainsAddr reports whether a is in the set.
func (s IPSet) ContainsAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s IPSet) String() string { return s.raw }

// ClientIP finds the address of the client that made r, trusting the
// rightmost trustedHops entries of X-Forwarded-For the way Express's
// "trust proxy = N" does: with the peer address first and the header's
// entries after it from right to left, the client is entry N (or the
// farthest one when the chain is shorter). With 0 the peer is the client.
// Unparseable entries end the chain, so a forged entry cannot be chosen
// past a broken one.
func ClientIP(r *http.Request, trustedHops int) string {
	client := PeerIP(r)
	if trustedHops <= 0 {
		return client
	}
	// The header's entries, right to left (its lines last to first, each
	// line's comma-separated entries last to first), read in place: this
	// runs on every request.
	hops := 0
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0 && hops < trustedHops; i-- {
		rest := values[i]
		for hops < trustedHops {
			comma := strings.LastIndexByte(rest, ',')
			e := strings.TrimSpace(rest[comma+1:])
			if e != "" {
				a, ok := parseHostAddr(e)
				if !ok {
					return client
				}
				client, hops = a, hops+1
			}
			if comma < 0 {
				break
			}
			rest = rest[:comma]
		}
	}
	return client
}

// parseHostAddr accepts "1.2.3.4", "1.2.3.4:567", "[::1]:80" and "::1",
// and returns the address in canonical form.
func parseHostAddr(s string) (string, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return "", false
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	// Most addresses arrive in canonical form already: s itself is the
	// answer then, and costs no copy.
	var buf [64]byte
	if string(a.AppendTo(buf[:0])) == s {
		return s, true
	}
	return a.String(), true
}

// PeerIP is the address of the TCP peer.
func PeerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, ok := parseHostAddr(host); ok {
		return a
	}
	return host
}

// External is the scheme and host the client used to reach r. The
// forwarding headers X-Forwarded-Proto and X-Forwarded-Host (their first
// value, as Express reads them) are believed only behind trusted proxies
// (trustedHops > 0, as TRUSTED_PROXIES): a server facing clients directly
// would otherwise let any client choose the URLs it is shown. Else the
// scheme is https when the connection is TLS, and the host is the Host
// header. A forwarded value that is not a plain http/https scheme or a
// host[:port] is ignored.
func External(r *http.Request, trustedHops int) (scheme, host string) {
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if trustedHops <= 0 {
		return scheme, host
	}
	if p := strings.ToLower(firstValue(r.Header.Get("X-Forwarded-Proto"))); p == "https" || p == "http" {
		scheme = p
	}
	if h := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(h) {
		host = h
	}
	return scheme, host
}

func firstValue(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// validHost accepts a DNS name or an IP address (IPv6 in brackets), with
// an optional port: nothing that could change a URL's meaning when
// pasted into one.
func validHost(h string) bool {
	if h == "" || len(h) > 261 {
		return false
	}
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		if a, err := netip.ParseAddr(h[1:end]); err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		rest := h[end+1:]
		return rest == "" || rest[0] == ':' && validPort(rest[1:])
	}
	name, port, hasPort := strings.Cut(h, ":")
	if hasPort && !validPort(port) || name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	return p != "" && len(p) <= 5 && strings.Trim(p, "0123456789") == ""
}

// ClientKey is what limits per client address count under: an IPv6
// address as its /64, which one client usually holds whole (it may move
// within it at will), an IPv4-mapped one as IPv4. Anything that is not an
// address is its own key.
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() {
		return ip // an IPv4 address parses only in its one form: no copy
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
