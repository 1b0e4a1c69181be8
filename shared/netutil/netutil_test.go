package netutil_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/netutil"
)

func TestParseIPSet(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		inSet []string // addresses in the set
		out   []string // addresses not in it
	}{
		{name: "empty", in: "", out: []string{"1.2.3.4", "::1", "0.0.0.0", "::"}},
		{name: "only separators and spaces", in: " , ,, ", out: []string{"1.2.3.4", "::1"}},
		{name: "single v4", in: "1.2.3.4", inSet: []string{"1.2.3.4", "::ffff:1.2.3.4"}, out: []string{"1.2.3.5", "1.2.3.40", "::1"}},
		{name: "v4 CIDR", in: "10.0.0.0/8", inSet: []string{"10.0.0.0", "10.255.255.255", "::ffff:10.1.1.1"}, out: []string{"11.0.0.0", "9.255.255.255"}},
		{name: "unmasked CIDR is masked", in: "10.1.2.3/8", inSet: []string{"10.200.0.1", "10.0.0.0"}, out: []string{"11.1.2.3"}},
		{name: "single v6", in: "2001:db8::1", inSet: []string{"2001:db8::1", "2001:0db8:0000::0001"}, out: []string{"2001:db8::2"}},
		{name: "v6 CIDR", in: "2001:db8::/32", inSet: []string{"2001:db8::", "2001:db8:ffff:ffff::1"}, out: []string{"2001:db9::", "1.2.3.4"}},
		{name: "4-in-6 address", in: "::ffff:192.0.2.1", inSet: []string{"192.0.2.1", "::ffff:192.0.2.1"}, out: []string{"192.0.2.2"}},
		{name: "4-in-6 CIDR", in: "::ffff:192.0.2.0/120", inSet: []string{"192.0.2.0", "192.0.2.255", "::ffff:192.0.2.9"}, out: []string{"192.0.3.1"}},
		{name: "all of v4 only", in: "0.0.0.0/0", inSet: []string{"0.0.0.0", "8.8.8.8"}, out: []string{"::1", "2001:db8::1"}},
		{name: "default whitelist", in: "0.0.0.0/0,::/0", inSet: []string{"8.8.8.8", "::1", "2001:db8::1", "::ffff:8.8.8.8"}},
		{name: "spaces and mixed", in: " 10.0.0.1 ,fe80::/10 , 192.168.0.0/16", inSet: []string{"10.0.0.1", "fe80::abcd", "fe80::1%eth0", "192.168.44.1"}, out: []string{"10.0.0.2", "fe00::1"}},
		{name: "host prefix", in: "1.2.3.4/32, 2001:db8::1/128", inSet: []string{"1.2.3.4", "2001:db8::1"}, out: []string{"1.2.3.5"}},
		{name: "zone-less link local", in: "fe80::1", inSet: []string{"fe80::1", "fe80::1%lo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := netutil.ParseIPSet(tt.in)
			if err != nil {
				t.Fatalf("ParseIPSet(%q): %v", tt.in, err)
			}
			if s.String() != tt.in {
				t.Errorf("String() = %q, want the input %q", s.String(), tt.in)
			}
			for _, ip := range tt.inSet {
				if !s.Contains(ip) {
					t.Errorf("%q does not contain %s", tt.in, ip)
				}
			}
			for _, ip := range tt.out {
				if s.Contains(ip) {
					t.Errorf("%q contains %s", tt.in, ip)
				}
			}
		})
	}
}

func TestParseIPSetErrors(t *testing.T) {
	tests := []struct {
		in  string
		bad string // the entry the error must name
	}{
		{in: "nope", bad: "nope"},
		{in: "10.0.0.0/33", bad: "10.0.0.0/33"},
		{in: "2001:db8::/129", bad: "2001:db8::/129"},
		{in: "1.2.3", bad: "1.2.3"},
		{in: "1.2.3.4/", bad: "1.2.3.4/"},
		{in: "/8", bad: "/8"},
		{in: "256.0.0.1", bad: "256.0.0.1"},
		{in: "1.2.3.4:80", bad: "1.2.3.4:80"},
		{in: "10.0.0.1-10.0.0.9", bad: "10.0.0.1-10.0.0.9"},
		{in: "fe80::1%eth0", bad: "fe80::1%eth0"},
		{in: "10.0.0.0/8, example.com", bad: "example.com"},
		{in: "10.0.0.0/8;192.168.0.0/16", bad: "10.0.0.0/8;192.168.0.0/16"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := netutil.ParseIPSet(tt.in)
			if err == nil {
				t.Fatalf("ParseIPSet(%q) = %v, want an error", tt.in, s)
			}
			if !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("error %q does not name %q", err, tt.bad)
			}
			if s.String() != "" || s.Contains("10.0.0.1") || s.Contains("::1") {
				t.Errorf("a failed parse returned a non-empty set %q", s)
			}
		})
	}
}

func TestContains(t *testing.T) {
	s, err := netutil.ParseIPSet("10.0.0.0/8, 2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"2001:db8::1", true},
		{"2001:db8::1%eth0", true},
		{"", false},
		{"garbage", false},
		{"10.1.2.3:80", false}, // an address, not a host:port
		{"[2001:db8::1]", false},
		{"11.0.0.1", false},
	}
	for _, tt := range tests {
		if got := s.Contains(tt.ip); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if !s.ContainsAddr(netip.MustParseAddr("::ffff:10.0.0.1")) {
		t.Error("ContainsAddr does not unmap 4-in-6")
	}
	var zero netutil.IPSet
	if zero.Contains("1.2.3.4") || zero.Contains("::1") || zero.String() != "" {
		t.Error("zero IPSet is not empty")
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		xff    []string // one element per X-Forwarded-For header
		hops   int
		want   string
	}{
		{"no proxy trusted: peer", "203.0.113.9:5555", []string{"1.1.1.1"}, 0, "203.0.113.9"},
		{"negative hops: peer", "203.0.113.9:5555", []string{"1.1.1.1"}, -1, "203.0.113.9"},
		{"one hop, no header: peer", "203.0.113.9:5555", nil, 1, "203.0.113.9"},
		{"one hop", "10.0.0.1:1", []string{"198.51.100.7"}, 1, "198.51.100.7"},
		{"one hop, spoofed leftmost ignored", "10.0.0.1:1", []string{"6.6.6.6, 198.51.100.7"}, 1, "198.51.100.7"},
		{"one hop, several spoofed", "10.0.0.1:1", []string{"6.6.6.6,7.7.7.7 , 198.51.100.7"}, 1, "198.51.100.7"},
		{"two hops", "10.0.0.1:1", []string{"6.6.6.6, 198.51.100.7, 10.0.0.2"}, 2, "198.51.100.7"},
		{"two hops, short chain: farthest", "10.0.0.1:1", []string{"198.51.100.7"}, 2, "198.51.100.7"},
		{"two hops, no header: peer", "10.0.0.1:1", nil, 2, "10.0.0.1"},
		{"many hops, short chain", "10.0.0.1:1", []string{"1.1.1.1, 2.2.2.2"}, 32, "1.1.1.1"},
		{"multiple headers joined in order", "10.0.0.1:1", []string{"6.6.6.6", "198.51.100.7, 10.0.0.2"}, 2, "198.51.100.7"},
		{"multiple headers, three hops", "10.0.0.1:1", []string{"6.6.6.6", "198.51.100.7, 10.0.0.2"}, 3, "6.6.6.6"},
		{"entry with port", "10.0.0.1:1", []string{"198.51.100.7:4711"}, 1, "198.51.100.7"},
		{"bracketed v6 with port", "10.0.0.1:1", []string{"[2001:db8::7]:443"}, 1, "2001:db8::7"},
		{"bare v6", "10.0.0.1:1", []string{"2001:DB8::7"}, 1, "2001:db8::7"},
		{"4-in-6 entry unmapped", "10.0.0.1:1", []string{"::ffff:198.51.100.7"}, 1, "198.51.100.7"},
		{"zone stripped", "10.0.0.1:1", []string{"fe80::1%eth0"}, 1, "fe80::1"},
		{"empty entries skipped", "10.0.0.1:1", []string{" , ,198.51.100.7,"}, 1, "198.51.100.7"},
		{"empty header", "10.0.0.1:1", []string{""}, 1, "10.0.0.1"},
		{"garbage rightmost: peer", "10.0.0.1:1", []string{"6.6.6.6, garbage"}, 1, "10.0.0.1"},
		{"garbage stops the chain", "10.0.0.1:1", []string{"6.6.6.6, garbage, 198.51.100.7"}, 3, "198.51.100.7"},
		{"unknown keyword", "10.0.0.1:1", []string{"unknown"}, 1, "10.0.0.1"},
		{"hostname is garbage", "10.0.0.1:1", []string{"evil.example"}, 1, "10.0.0.1"},
		{"v6 peer", "[2001:db8::1]:8080", nil, 1, "2001:db8::1"},
		{"4-in-6 peer", "[::ffff:203.0.113.9]:8080", nil, 0, "203.0.113.9"},
		{"peer without port", "203.0.113.9", nil, 0, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := netutil.ClientIP(r, tt.hops); got != tt.want {
				t.Errorf("ClientIP(remote %q, XFF %q, %d) = %q, want %q", tt.remote, tt.xff, tt.hops, got, tt.want)
			}
		})
	}
}

func TestPeerIP(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.1:1234", "192.0.2.1"},
		{"[2001:db8::1]:1", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"@", "@"}, // a unix socket peer is passed through as is
		{"", ""},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
		if got := netutil.PeerIP(r); got != tt.want {
			t.Errorf("PeerIP(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:1", "6.6.6.6, 198.51.100.7", 1)
	f.Add("[::1]:1", "[2001:db8::7]:443,,garbage", 2)
	f.Add("x", "::ffff:1.2.3.4%z, 1.2.3.4:99999", 5)
	f.Fuzz(func(t *testing.T, remote, xff string, hops int) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := netutil.ClientIP(r, hops%40)
		if got == netutil.PeerIP(r) {
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("ClientIP = %q: neither the peer nor an address", got)
		}
		if a.Zone() != "" || a.Is4In6() || a.String() != got {
			t.Fatalf("ClientIP = %q is not canonical", got)
		}
		if hops%40 <= 0 {
			t.Fatalf("ClientIP with %d hops did not return the peer", hops)
		}
	})
}

func FuzzParseIPSet(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8, ::1", "::ffff:1.2.3.0/120", "fe80::1%x", "1.2.3.4/33"} {
		f.Add(s, "10.1.2.3")
	}
	f.Fuzz(func(t *testing.T, list, ip string) {
		s, err := netutil.ParseIPSet(list)
		if err != nil {
			return
		}
		// The textual form parses back to a set that agrees.
		again, err := netutil.ParseIPSet(s.String())
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", s.String(), err)
		}
		if s.Contains(ip) != again.Contains(ip) {
			t.Fatalf("round trip changed Contains(%q)", ip)
		}
	})
}

func BenchmarkClientIP(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.2")
	b.ReportAllocs()
	for b.Loop() {
		netutil.ClientIP(r, 2)
	}
}

func BenchmarkContains(b *testing.B) {
	s, err := netutil.ParseIPSet("10.0.0.0/8, 192.168.0.0/16, 2001:db8::/32, 203.0.113.9")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Contains("203.0.113.9")
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7":                   "198.51.100.7",
		"::ffff:198.51.100.7":            "198.51.100.7",
		"2001:db8:1:2::1":                "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff:ffff:ff": "2001:db8:1:2::/64",
		"fe80::1%eth0":                   "fe80::/64",
		"not-an-address":                 "not-an-address",
		"":                               "",
	} {
		if got := netutil.ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// ClientKey runs on every request's lockout check: an IPv4 address, the
// common case, costs no allocation.
func TestClientKeyOfIPv4Allocates0(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = netutil.ClientKey("198.51.100.7") }); n != 0 {
		t.Errorf("ClientKey of an IPv4 address: %.0f allocations, want 0", n)
	}
}
