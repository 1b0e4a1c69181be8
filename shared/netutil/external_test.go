package netutil

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestExternal(t *testing.T) {
	tests := []struct {
		name          string
		trusted       int
		tls           bool
		host          string
		proto, fwHost string
		scheme, want  string
	}{
		{"direct, plain", 0, false, "proxy.example:8080", "", "", "http", "proxy.example:8080"},
		{"direct, TLS", 0, true, "proxy.example", "", "", "https", "proxy.example"},
		{"direct: forwarding headers are a client's word", 0, false, "127.0.0.1:8080", "https", "evil.example", "http", "127.0.0.1:8080"},
		{"direct, TLS: not downgraded by a header", 0, true, "proxy.example", "http", "", "https", "proxy.example"},
		{"behind a proxy", 1, false, "fn-abc.run.app", "https", "tollgate.web.app", "https", "tollgate.web.app"},
		{"first values, as Express", 2, false, "internal", "HTTPS, http", "a.example, b.example", "https", "a.example"},
		{"behind a proxy, no headers", 1, false, "fn-abc.run.app", "", "", "http", "fn-abc.run.app"},
		{"unknown scheme ignored", 1, false, "h.example", "javascript", "", "http", "h.example"},
		{"host with a path ignored", 1, false, "h.example", "", "evil.example/x", "http", "h.example"},
		{"host with a quote ignored", 1, false, "h.example", "", `evil"><script>`, "http", "h.example"},
		{"host with userinfo ignored", 1, false, "h.example", "", "user@evil.example", "http", "h.example"},
		{"host with a port", 1, false, "h.example", "", "tollgate.example:8443", "http", "tollgate.example:8443"},
		{"bad port ignored", 1, false, "h.example", "", "tollgate.example:84x3", "http", "h.example"},
		{"empty port ignored", 1, false, "h.example", "", "tollgate.example:", "http", "h.example"},
		{"IPv6 in brackets", 1, false, "h.example", "", "[2001:db8::1]:443", "http", "[2001:db8::1]:443"},
		{"bare IPv6 ignored", 1, false, "h.example", "", "2001:db8::1", "http", "h.example"},
		{"bracketed non-address ignored", 1, false, "h.example", "", "[evil.example]", "http", "h.example"},
		{"IPv4 address", 1, false, "h.example", "", "203.0.113.9", "http", "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Host = tt.host
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			} else {
				r.TLS = nil
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			if tt.fwHost != "" {
				r.Header.Set("X-Forwarded-Host", tt.fwHost)
			}
			scheme, host := External(r, tt.trusted)
			if scheme != tt.scheme || host != tt.want {
				t.Errorf("External(trusted %d) = %q, %q; want %q, %q", tt.trusted, scheme, host, tt.scheme, tt.want)
			}
		})
	}
}
