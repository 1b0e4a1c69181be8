package netutil_test

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/netutil"
)

// referenceClientIP is ClientIP written plainly: the peer, then the
// header's entries collected and walked from the right.
func referenceClientIP(r *http.Request, trustedHops int) string {
	parse := func(s string) (string, bool) {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Unmap().WithZone("").String(), true
		}
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap().WithZone("").String(), true
		}
		return "", false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer := host
	if a, ok := parse(host); ok {
		peer = a
	}
	if trustedHops <= 0 {
		return peer
	}
	var entries []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}
	}
	chain := []string{peer}
	for i := len(entries) - 1; i >= 0 && len(chain) <= trustedHops; i-- {
		a, ok := parse(entries[i])
		if !ok {
			break
		}
		chain = append(chain, a)
	}
	return chain[len(chain)-1]
}

// FuzzClientIPReference: ClientIP, which reads the header in place,
// answers as the plain reading does, over one header line or two.
func FuzzClientIPReference(f *testing.F) {
	f.Add("10.0.0.1:1", "6.6.6.6, 198.51.100.7", "", 1)
	f.Add("[::1]:1", "[2001:db8::7]:443,,garbage", "1.2.3.4", 2)
	f.Add("x", "::ffff:1.2.3.4%z, 1.2.3.4:99999", " , ", 5)
	f.Add("[::ffff:203.0.113.9]:8080", "2001:DB8::7 ,fe80::1%eth0", "198.51.100.7:4711,", 3)
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string, hops int) {
		hops %= 8
		for _, lines := range [][]string{nil, {xff1}, {xff1, xff2}} {
			r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
			for _, l := range lines {
				r.Header.Add("X-Forwarded-For", l)
			}
			if got, want := netutil.ClientIP(r, hops), referenceClientIP(r, hops); got != want {
				t.Fatalf("ClientIP(remote %q, XFF %q, %d) = %q, want %q", remote, lines, hops, got, want)
			}
		}
	})
}

// ClientIP runs on every request: an address in canonical form, the
// peer's or a forwarded one, costs no allocation.
func TestClientIPOfCanonicalAllocates0(t *testing.T) {
	r := &http.Request{RemoteAddr: "203.0.113.9:5555", Header: http.Header{
		"X-Forwarded-For": {"6.6.6.6, 2001:db8::7, 198.51.100.7"}}}
	for hops := range 4 {
		if n := testing.AllocsPerRun(100, func() { _ = netutil.ClientIP(r, hops) }); n != 0 {
			t.Errorf("ClientIP with %d hops: %.0f allocations, want 0", hops, n)
		}
	}
}
