package secrets

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The metadata fallback is tested against a local metadata server:
// GCE_METADATA_HOST is how the metadata client is pointed elsewhere.
func TestFallbackProject(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		opts    Options
		want    string
		wantErr string
	}{
		{
			name: "project from the metadata server",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/computeMetadata/v1/project/project-id" || r.Header.Get("Metadata-Flavor") != "Google" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Metadata-Flavor", "Google")
				w.Write([]byte("meta-proj\n"))
			},
			want: "meta-proj",
		},
		{
			name:    "metadata without a project",
			handler: http.NotFound,
			wantErr: "not defined",
		},
		{
			name: "slow metadata server is bounded by Timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(3 * time.Second):
				}
			},
			opts:    Options{Timeout: 100 * time.Millisecond},
			wantErr: "deadline",
		},
		{
			name:    "emulator: never ask the metadata server",
			handler: func(w http.ResponseWriter, r *http.Request) { t.Error("metadata server asked with an emulator") },
			opts:    Options{EmulatorHost: "127.0.0.1:1"},
			wantErr: errNoMetadata.Error(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"))

			start := time.Now()
			got, err := fallbackProject(t.Context(), tt.opts)
			if time.Since(start) > 2*time.Second {
				t.Errorf("fallbackProject took %v", time.Since(start))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("fallbackProject = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("fallbackProject = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMissingProjectMessage(t *testing.T) {
	if msg := missingProject("sm://x", errors.New("project id: connection refused")); !strings.Contains(msg, "metadata server: project id: connection refused") {
		t.Errorf("metadata failure not explained: %q", msg)
	}
	if msg := missingProject("sm://x", errNoMetadata); strings.Contains(msg, "metadata") || !strings.Contains(msg, "GOOGLE_CLOUD_PROJECT") {
		t.Errorf("not on GCE: %q", msg)
	}
	if msg := missingProject("sm://x", errNoMetadata); !strings.Contains(msg, `"sm://x"`) {
		t.Errorf("message does not quote the reference: %q", msg)
	}
}
