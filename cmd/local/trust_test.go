package main

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/config"
)

func TestLocalDefaults(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		trusted int
		mode    config.Mode
		genKey  bool
	}{
		{"nothing set", nil, 0, config.ModeUserToken, true},
		{"empty TRUSTED_PROXIES", []string{"TRUSTED_PROXIES="}, 0, config.ModeUserToken, true},
		{"behind a proxy of one's own", []string{"TRUSTED_PROXIES=2", "GATEKEEPER=none"}, 2, config.ModeNone, false},
		{"admin key given", []string{"ADMIN_KEY=mine-0123456789"}, 0, config.ModeUserToken, false},
		// Values are read as config reads them: trimmed, modes in any case.
		{"blank TRUSTED_PROXIES", []string{"TRUSTED_PROXIES= "}, 0, config.ModeUserToken, true},
		{"upper-case GATEKEEPER", []string{"GATEKEEPER=USER_TOKEN"}, 0, config.ModeUserToken, true},
		{"blank GATEKEEPER", []string{"GATEKEEPER=  "}, 0, config.ModeUserToken, true},
		{"blank ADMIN_KEY", []string{"ADMIN_KEY=\t"}, 0, config.ModeUserToken, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			environ, env, generated := localDefaults(tt.environ)
			cfg, err := config.Load(environ)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TrustedProxies != tt.trusted || cfg.Gatekeeper != tt.mode || generated != tt.genKey {
				t.Errorf("TRUSTED_PROXIES %d, GATEKEEPER %s, generated %v; want %d %s %v", cfg.TrustedProxies, cfg.Gatekeeper, generated, tt.trusted, tt.mode, tt.genKey)
			}
			if generated && (!strings.HasPrefix(cfg.AdminKey, "dev-") || env["ADMIN_KEY"] != cfg.AdminKey) {
				t.Errorf("generated admin key %q, map %q", cfg.AdminKey, env["ADMIN_KEY"])
			}
		})
	}
}

// With the runner's default, a client cannot leave IP_BLACKLIST by
// forging X-Forwarded-For: the peer is the client.
func TestForgedForwardedForLocally(t *testing.T) {
	_, env, _ := localDefaults([]string{"IP_BLACKLIST=127.0.0.1"})
	addr, _ := serve(t, map[string]string{"IP_BLACKLIST": env["IP_BLACKLIST"], "TRUSTED_PROXIES": env["TRUSTED_PROXIES"]}, defaultTimeouts())
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/proxy/openai/v1/models", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("blacklisted 127.0.0.1 forging X-Forwarded-For: %d, want 403", resp.StatusCode)
	}
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("served on %s", addr)
	}
}
