package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
)

// GCP_CREDENTIALS serves both Vertex mounts; the region defaults to
// us-east5 and names a host, so it is checked; the base URL is a template.
func TestVertexConfig(t *testing.T) {
	c := load(t, map[string]string{"GCP_CREDENTIALS": "adc, p:e@x:us-east5:k"})
	for _, p := range []models.Provider{models.GCPClaude, models.GCPGemini} {
		if !c.Served(p) || !slices.Equal(c.ProviderKeys[p], []string{"adc", "p:e@x:us-east5:k"}) {
			t.Errorf("%s: served %v, keys %v", p, c.Served(p), c.ProviderKeys[p])
		}
		if c.BaseURLs[p] != "https://{region}-aiplatform.googleapis.com" {
			t.Errorf("%s: base URL %s", p, c.BaseURLs[p])
		}
	}
	if c.ProviderSettings["GCP_REGION"] != "us-east5" {
		t.Errorf("GCP_REGION default %q", c.ProviderSettings["GCP_REGION"])
	}
	if c := load(t, map[string]string{"GCP_REGION": "global", "GCP_VERTEX_BASE_URL": "http://127.0.0.1:9/"}); c.ProviderSettings["GCP_REGION"] != "global" || c.BaseURLs[models.GCPGemini] != "http://127.0.0.1:9" {
		t.Errorf("GCP_REGION %q, base %q", c.ProviderSettings["GCP_REGION"], c.BaseURLs[models.GCPGemini])
	}
	for _, bad := range []string{"US-EAST5", "us-east5.evil.example", "us-east5/x"} {
		_, err := config.FromMap(map[string]string{"GCP_REGION": bad})
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Var != "GCP_REGION" || !strings.Contains(err.Error(), "us-east5") {
			t.Errorf("GCP_REGION=%s: %v, want an error naming the variable and an example", bad, err)
		}
	}
}
