package netutil_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/netutil"
)

// FuzzForgedForwardedFor: a client can only add entries to the left of
// X-Forwarded-For (each trusted proxy appends on the right). Whatever it
// prepends, the client IP stays the same once the trusted hops have
// written their entries; and the answer is always the peer or one of the
// header's entries, in canonical form.
func FuzzForgedForwardedFor(f *testing.F) {
	f.Add("6.6.6.6", "198.51.100.7", "10.0.0.2:5", 1)
	f.Add("1.1.1.1, evil", "[2001:db8::7]:443, 203.0.113.9", "[::1]:80", 2)
	f.Add("::ffff:1.2.3.4", "::ffff:198.51.100.7%eth0", "10.0.0.2:1", 1)
	f.Add("", "", "unix-socket", 3)
	f.Fuzz(func(t *testing.T, forged, chain, remote string, hops int) {
		hops = hops%5 + 1
		if hops <= 0 {
			hops += 5
		}
		honest := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {chain}}}
		got := netutil.ClientIP(honest, hops)

		if got != netutil.PeerIP(honest) {
			found := false
			for _, e := range strings.Split(chain, ",") {
				a, err := netip.ParseAddr(strings.TrimSpace(e))
				if err != nil {
					ap, err2 := netip.ParseAddrPort(strings.TrimSpace(e))
					if err2 != nil {
						continue
					}
					a = ap.Addr()
				}
				if a.Unmap().WithZone("").String() == got {
					found = true
				}
			}
			if !found {
				t.Fatalf("ClientIP = %q is neither the peer nor an entry of %q", got, chain)
			}
		}

		// The trusted hops wrote hops-1 valid entries (the last hop is the
		// peer): only then is the answer theirs to give, not the client's.
		valid := 0
		entries := strings.Split(chain, ",")
		for i := len(entries) - 1; i >= 0; i-- {
			e := strings.TrimSpace(entries[i])
			if e == "" {
				continue
			}
			if _, err := netip.ParseAddr(e); err != nil {
				if _, err := netip.ParseAddrPort(e); err != nil {
					break
				}
			}
			valid++
		}
		if valid < hops {
			return
		}
		spoofed := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {forged + "," + chain}}}
		if again := netutil.ClientIP(spoofed, hops); again != got {
			t.Fatalf("prepending %q changed the client IP from %q to %q (chain %q, %d hops)", forged, got, again, chain, hops)
		}
		// A second header line is the same as a longer first one.
		split := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {forged, chain}}}
		if again := netutil.ClientIP(split, hops); again != got {
			t.Fatalf("a forged first header line changed the client IP from %q to %q", got, again)
		}
	})
}

// FuzzIPSetMembers: every address a list names is in its set, in every
// spelling a client may arrive with (IPv4-mapped IPv6, a zone); an
// unparseable address is in no set.
func FuzzIPSetMembers(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8, ::1", "203.0.113.9", "::ffff:1.2.3.0/120", "2001:db8::/32,0.0.0.0/0", "1.2.3.4/32, 1.2.3.4"} {
		f.Add(s, "10.1.2.3")
	}
	f.Fuzz(func(t *testing.T, list, ip string) {
		set, err := netutil.ParseIPSet(list)
		if err != nil {
			return
		}
		for _, part := range strings.Split(list, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			var a netip.Addr
			if p, err := netip.ParsePrefix(part); err == nil {
				a = p.Addr()
			} else if a, err = netip.ParseAddr(part); err != nil {
				t.Fatalf("%q accepted in %q but is neither an address nor a prefix", part, list)
			}
			if !set.ContainsAddr(a) {
				t.Fatalf("set %q does not contain its own entry %q", list, part)
			}
			if a.Unmap().Is4() {
				mapped := netip.AddrFrom16(a.Unmap().As16())
				if !set.Contains(mapped.String()) {
					t.Fatalf("set %q does not contain %s (IPv4-mapped %s)", list, mapped, a)
				}
			} else if !set.ContainsAddr(a.WithZone("eth0")) {
				t.Fatalf("set %q does not contain %s with a zone", list, a)
			}
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			if set.Contains(ip) != set.ContainsAddr(a) {
				t.Fatalf("Contains(%q) and ContainsAddr disagree", ip)
			}
		} else if set.Contains(ip) {
			t.Fatalf("unparseable %q is in %q", ip, list)
		}
	})
}

// FuzzExternal: directly facing clients, the forwarding headers change
// nothing; behind proxies, the host is the Host header or a forwarded
// value that cannot change a URL's meaning, and the scheme is http(s).
func FuzzExternal(f *testing.F) {
	f.Add("fn.run.app", "https", "tollgate.web.app")
	f.Add("h.example", "HTTPS, http", "[2001:db8::1]:443, b")
	f.Add("h.example", "javascript", "evil.example/x?y#z")
	f.Add("h.example", "", "user@evil.example:80")
	f.Fuzz(func(t *testing.T, host, proto, fwHost string) {
		r := &http.Request{Host: host, Header: http.Header{"X-Forwarded-Proto": {proto}, "X-Forwarded-Host": {fwHost}}}
		if scheme, h := netutil.External(r, 0); scheme != "http" || h != host {
			t.Fatalf("direct: %q %q, want http %q", scheme, h, host)
		}
		scheme, h := netutil.External(r, 1)
		if scheme != "http" && scheme != "https" {
			t.Fatalf("scheme %q", scheme)
		}
		if h != host && (h == "" || strings.ContainsAny(h, "/?#@\"'<> \\%,") || !strings.Contains(fwHost, h)) {
			t.Fatalf("host %q from X-Forwarded-Host %q", h, fwHost)
		}
	})
}
