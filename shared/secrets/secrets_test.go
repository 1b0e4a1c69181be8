package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/option"

	"tollgate.dev/tollgate/internal/testsupport/smfake"
	"tollgate.dev/tollgate/shared/secrets"
)

func TestIsReference(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"sm://admin-key", true},
		{"sm://ADMIN_KEY_2", true},
		{"  sm://admin\n", true},
		{"projects/p/secrets/s/versions/latest", true},
		{"projects/123456/secrets/s/versions/7", true},
		{"projects/p/secrets/s", true}, // malformed, reported by Resolve
		{"sm://", true},                // malformed, reported by Resolve
		{"sm://a/b", true},             // malformed, reported by Resolve
		{"", false},
		{"sk-proj-abc123", false},
		{"sk-ant-api03-xyz", false},
		{"https://example.com/sm://x", false},
		{"projects/p/topics/t", false},
		{"SM://admin", false},
		{"my projects/p/secrets/s/versions/1", false},
	}
	for _, tt := range tests {
		if got := secrets.IsReference(tt.v); got != tt.want {
			t.Errorf("IsReference(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// opts points the real client at the fake, plaintext and without credentials.
func opts(srv *smfake.Server) secrets.Options {
	return secrets.Options{Project: "p", EmulatorHost: srv.Addr(), Timeout: 5 * time.Second}
}

// clientTripwire makes secretmanager.NewClient fail at once (credentials
// together with the emulator's WithoutAuthentication), so a test can tell
// whether Resolve created a client at all; dialing is lazy, so the server's
// connection count alone cannot.
func clientTripwire() []option.ClientOption {
	return []option.ClientOption{option.WithAPIKey("tripwire")}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(s *smfake.Server)
		values map[string]string
		opts   func(o *secrets.Options)
		want   map[string]string
		// errVars are the variables the error must name (each as an *Error).
		errVars   []string
		errSubstr []string
		calls     int
		conns     int
	}{
		{
			name:   "sm:// resolves the latest version",
			setup:  func(s *smfake.Server) { s.SetSecret("p", "admin", "1", "k-admin") },
			values: map[string]string{"ADMIN_KEY": "sm://admin"},
			want:   map[string]string{"ADMIN_KEY": "k-admin"},
			calls:  1, conns: 1,
		},
		{
			name:   "full path with explicit version",
			setup:  func(s *smfake.Server) { s.SetSecret("q", "openai", "1", "old"); s.SetSecret("q", "openai", "2", "new") },
			values: map[string]string{"OPENAI_KEY": "projects/q/secrets/openai/versions/1"},
			want:   map[string]string{"OPENAI_KEY": "old"},
			calls:  1, conns: 1,
		},
		{
			name: "latest is the highest version, whatever the order of creation",
			setup: func(s *smfake.Server) {
				s.SetSecret("p", "k", "2", "two")
				s.SetSecret("p", "k", "10", "ten")
				s.SetSecret("p", "k", "3", "three")
			},
			values: map[string]string{"A": "sm://k", "B": "projects/p/secrets/k/versions/latest"},
			want:   map[string]string{"A": "ten", "B": "ten"},
			calls:  1, conns: 1, // same resource: fetched once
		},
		{
			name: "one trailing newline is trimmed",
			setup: func(s *smfake.Server) {
				s.SetSecret("p", "lf", "1", "v1\n")
				s.SetSecret("p", "crlf", "1", "v2\r\n")
				s.SetSecret("p", "two", "1", "v3\n\n")
				s.SetSecret("p", "inner", "1", " a b\tc ")
			},
			values: map[string]string{"A": "sm://lf", "B": "sm://crlf", "C": "sm://two", "D": "sm://inner"},
			want:   map[string]string{"A": "v1", "B": "v2", "C": "v3\n", "D": " a b\tc "},
			calls:  4, conns: 1,
		},
		{
			name:   "plain values untouched and no client at all",
			values: map[string]string{"OPENAI_KEY": "sk-1,sk-2", "PROXY_KEY": "", "ADMIN_KEY": "projects-are-fun"},
			opts:   func(o *secrets.Options) { o.Project = ""; o.ClientOptions = clientTripwire() },
			want:   map[string]string{"OPENAI_KEY": "sk-1,sk-2", "PROXY_KEY": "", "ADMIN_KEY": "projects-are-fun"},
			calls:  0, conns: 0,
		},
		{
			name:   "nil map",
			values: nil,
			want:   map[string]string{},
		},
		{
			name: "plain and references mixed, one client",
			setup: func(s *smfake.Server) {
				s.SetSecret("p", "a", "1", "va")
				s.SetSecret("p", "b", "1", "vb")
				s.SetSecret("o", "c", "4", "vc")
			},
			values: map[string]string{"A": "sm://a", "B": "sm://b", "C": "projects/o/secrets/c/versions/4", "PLAIN": "x"},
			want:   map[string]string{"A": "va", "B": "vb", "C": "vc", "PLAIN": "x"},
			calls:  3, conns: 1,
		},
		{
			name:      "client that cannot be created names the variables",
			values:    map[string]string{"ADMIN_KEY": "sm://a", "PROXY_KEY": "sm://b", "PLAIN": "x"},
			opts:      func(o *secrets.Options) { o.ClientOptions = clientTripwire() },
			errVars:   []string{"ADMIN_KEY, PROXY_KEY"},
			errSubstr: []string{"ADMIN_KEY, PROXY_KEY: cannot create Secret Manager client"},
		},
		{
			name:      "missing secret",
			values:    map[string]string{"ADMIN_KEY": "sm://admin"},
			errVars:   []string{"ADMIN_KEY"},
			errSubstr: []string{`ADMIN_KEY: secret "projects/p/secrets/admin/versions/latest" not found (NotFound)`},
			calls:     1, conns: 1,
		},
		{
			name:      "missing version",
			setup:     func(s *smfake.Server) { s.SetSecret("p", "admin", "1", "v") },
			values:    map[string]string{"ADMIN_KEY": "projects/p/secrets/admin/versions/2"},
			errVars:   []string{"ADMIN_KEY"},
			errSubstr: []string{"NotFound", "versions/2"},
			calls:     1, conns: 1,
		},
		{
			name:      "permission denied",
			setup:     func(s *smfake.Server) { s.SetSecret("p", "admin", "1", "v"); s.Deny("projects/p/secrets/admin") },
			values:    map[string]string{"ADMIN_KEY": "sm://admin"},
			errVars:   []string{"ADMIN_KEY"},
			errSubstr: []string{"PermissionDenied", "roles/secretmanager.secretAccessor"},
			calls:     1, conns: 1,
		},
		{
			name:      "sm:// without project names GOOGLE_CLOUD_PROJECT, before any call",
			values:    map[string]string{"PROXY_KEY": "sm://proxy", "OPENAI_KEY": "sk-plain"},
			opts:      func(o *secrets.Options) { o.Project = "" },
			errVars:   []string{"PROXY_KEY"},
			errSubstr: []string{"PROXY_KEY:", "GOOGLE_CLOUD_PROJECT"},
			calls:     0, conns: 0,
		},
		{
			name:   "full path needs no project",
			setup:  func(s *smfake.Server) { s.SetSecret("o", "k", "1", "v") },
			values: map[string]string{"K": "projects/o/secrets/k/versions/latest"},
			opts:   func(o *secrets.Options) { o.Project = "" },
			want:   map[string]string{"K": "v"},
			calls:  1, conns: 1,
		},
		{
			name:      "malformed references fail before any call",
			values:    map[string]string{"A": "sm://a/b", "B": "projects/p/secrets/s", "C": "sm://", "D": "projects/p/locations/eu/secrets/s/versions/1"},
			errVars:   []string{"A", "B", "C", "D"},
			errSubstr: []string{"malformed", "A:", "B:", "C:", "D:"},
			calls:     0, conns: 0,
		},
		{
			name:      "empty secret is an error",
			setup:     func(s *smfake.Server) { s.SetSecret("p", "empty", "1", "\n") },
			values:    map[string]string{"SIGNING_KEY": "sm://empty"},
			errVars:   []string{"SIGNING_KEY"},
			errSubstr: []string{"is empty"},
			calls:     1, conns: 1,
		},
		{
			name:      "corrupted payload is refused",
			setup:     func(s *smfake.Server) { s.SetSecret("p", "k", "1", "v"); s.CorruptChecksums() },
			values:    map[string]string{"K": "sm://k"},
			errVars:   []string{"K"},
			errSubstr: []string{"CRC32C"},
			calls:     1, conns: 1,
		},
		{
			name: "every failing variable is reported, shared reference once per variable",
			setup: func(s *smfake.Server) {
				s.SetSecret("p", "ok", "1", "fine")
				s.SetSecret("p", "denied", "1", "nope")
				s.Deny("projects/p/secrets/denied/versions/1")
			},
			values:    map[string]string{"OK": "sm://ok", "X": "sm://gone", "Y": "sm://gone", "Z": "sm://denied"},
			errVars:   []string{"X", "Y", "Z"},
			errSubstr: []string{"X: secret", "Y: secret", "Z: access"},
			calls:     3, conns: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smfake.Start(t)
			if tt.setup != nil {
				tt.setup(srv)
			}
			o := opts(srv)
			if tt.opts != nil {
				tt.opts(&o)
			}
			before := maps.Clone(tt.values)

			got, err := secrets.Resolve(t.Context(), tt.values, o)

			if !maps.Equal(tt.values, before) {
				t.Errorf("Resolve modified its input: %v", tt.values)
			}
			if tt.errVars == nil {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if !maps.Equal(got, tt.want) {
					t.Errorf("Resolve = %q, want %q", got, tt.want)
				}
			} else {
				if err == nil {
					t.Fatalf("Resolve = %q, want an error naming %v", got, tt.errVars)
				}
				if got != nil {
					t.Errorf("Resolve returned values %q with an error", got)
				}
				if vars := errorVars(err); !equalSets(vars, tt.errVars) {
					t.Errorf("error names %v, want %v (error: %v)", vars, tt.errVars, err)
				}
				for _, s := range tt.errSubstr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
			}
			if c := srv.Calls(); c != tt.calls {
				t.Errorf("AccessSecretVersion calls = %d, want %d", c, tt.calls)
			}
			if c := srv.Conns(); c != tt.conns {
				t.Errorf("connections = %d, want %d", c, tt.conns)
			}
		})
	}
}

// errorVars lists the Var of every *Error in err (joined or not).
func errorVars(err error) []string {
	var vars []string
	for _, e := range allErrors(err) {
		if se, ok := e.(*secrets.Error); ok {
			vars = append(vars, se.Var)
		}
	}
	return vars
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestResolveDeadline(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p", "slow", "1", "v")
	srv.SetDelay(2 * time.Second)
	o := opts(srv)
	o.Timeout = 100 * time.Millisecond

	start := time.Now()
	_, err := secrets.Resolve(t.Context(), map[string]string{"ANTHROPIC_KEY": "sm://slow"}, o)
	elapsed := time.Since(start)

	// A bound on "promptly", not a benchmark: the server would answer after 2s.
	if elapsed >= time.Second {
		t.Errorf("Resolve took %v with a 100ms timeout", elapsed)
	}
	var se *secrets.Error
	if !errors.As(err, &se) || se.Var != "ANTHROPIC_KEY" {
		t.Fatalf("error = %v, want *secrets.Error for ANTHROPIC_KEY", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not context.DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "DeadlineExceeded") || !strings.Contains(err.Error(), "100ms") {
		t.Errorf("error %q does not explain the deadline", err)
	}
	if c := srv.Calls(); c != 1 {
		t.Errorf("calls = %d, want 1 (no retry past the deadline)", c)
	}
}

func TestResolveDeadlineIsPerCall(t *testing.T) {
	// Eight calls of 150ms each under a 1s per-call deadline all succeed:
	// the deadline must not be shared by the whole batch.
	srv := smfake.Start(t)
	values := map[string]string{}
	want := map[string]string{}
	for i := range 8 {
		srv.SetSecret("p", fmt.Sprintf("s%d", i), "1", fmt.Sprintf("v%d", i))
		values[fmt.Sprintf("V%d", i)] = fmt.Sprintf("sm://s%d", i)
		want[fmt.Sprintf("V%d", i)] = fmt.Sprintf("v%d", i)
	}
	srv.SetDelay(150 * time.Millisecond)
	o := opts(srv)
	o.Timeout = time.Second

	got, err := secrets.Resolve(t.Context(), values, o)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Resolve = %q, want %q", got, want)
	}
}

func TestResolveCanceledContext(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p", "k", "1", "v")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := secrets.Resolve(ctx, map[string]string{"K": "sm://k"}, opts(srv))
	var se *secrets.Error
	if !errors.As(err, &se) || se.Var != "K" {
		t.Fatalf("error = %v, want *secrets.Error for K", err)
	}
}

func TestErrorsNeverContainPayloads(t *testing.T) {
	payloads := map[string]string{
		"good":    "sk-live-GOOD-0123456789",
		"denied":  "sk-live-DENIED-0123456789",
		"corrupt": "sk-live-CORRUPT-0123456789",
		"slow":    "sk-live-SLOW-0123456789",
	}
	values := map[string]string{
		"OPENAI_KEY":  "sm://good",
		"ADMIN_KEY":   "sm://denied",
		"PROXY_KEY":   "sm://missing",
		"SIGNING_KEY": "projects/p/secrets/good/versions/9",
	}
	scenarios := []struct {
		name  string
		setup func(s *smfake.Server)
		vals  map[string]string
		opts  func(o *secrets.Options)
	}{
		{name: "mixed failures", vals: values},
		{name: "checksum", setup: func(s *smfake.Server) { s.CorruptChecksums() },
			vals: map[string]string{"A": "sm://corrupt", "B": "sm://good"}},
		{name: "deadline", setup: func(s *smfake.Server) { s.SetDelay(time.Second) },
			vals: map[string]string{"A": "sm://slow"}, opts: func(o *secrets.Options) { o.Timeout = 50 * time.Millisecond }},
		{name: "malformed beside good", vals: map[string]string{"A": "sm://good", "B": "sm://bad/name"}},
		{name: "good ones resolved but another fails", vals: map[string]string{"A": "sm://good", "B": "sm://missing"}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			srv := smfake.Start(t)
			for name, p := range payloads {
				srv.SetSecret("p", name, "1", p)
			}
			srv.Deny("projects/p/secrets/denied")
			if sc.setup != nil {
				sc.setup(srv)
			}
			o := opts(srv)
			if sc.opts != nil {
				sc.opts(&o)
			}
			_, err := secrets.Resolve(t.Context(), sc.vals, o)
			if err == nil {
				t.Fatal("Resolve succeeded, want an error")
			}
			var texts []string
			for e := error(err); e != nil; e = errors.Unwrap(e) {
				texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
			}
			for _, e := range allErrors(err) {
				texts = append(texts, e.Error(), fmt.Sprintf("%+v", e))
				if se, ok := e.(*secrets.Error); ok && se.Err != nil {
					texts = append(texts, se.Err.Error())
				}
			}
			for _, text := range texts {
				for _, p := range payloads {
					if strings.Contains(text, p) || strings.Contains(text, p[8:]) {
						t.Errorf("error text leaks a secret payload: %q", text)
					}
				}
			}
		})
	}
}

// allErrors flattens joined and wrapped errors.
func allErrors(err error) []error {
	if err == nil {
		return nil
	}
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, allErrors(e)...)
		}
	case interface{ Unwrap() error }:
		out = append(out, allErrors(u.Unwrap())...)
	}
	return out
}
