package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"tollgate.dev/tollgate/internal/testsupport/smfake"
	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/secrets"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestBuildMemory(t *testing.T) {
	var logs bytes.Buffer
	d, err := app.Build(ctx(t), app.Options{
		Environ:   []string{"GATEKEEPER=user_token", "ADMIN_KEY=plain-admin-key", "TOKEN_QUOTA_GPT4O=500", "LOG_LEVEL=warn"},
		LogOutput: &logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.Gatekeeper != config.ModeUserToken || d.Config.AdminKey != "plain-admin-key" {
		t.Errorf("config = %+v", d.Config)
	}
	if _, ok := d.Store.(*memory.Store); !ok {
		t.Errorf("store is %T, want *memory.Store", d.Store)
	}
	if d.Now == nil {
		t.Error("Now missing")
	}
	if !strings.Contains(logs.String(), "GATEKEEPER_STORE=memory") || !strings.Contains(logs.String(), `"severity":"WARNING"`) {
		t.Errorf("no warning about the memory store: %q", logs.String())
	}
	if strings.Contains(logs.String(), "plain-admin-key") {
		t.Error("the admin key was logged")
	}
	// The logger honours LOG_LEVEL.
	d.Log.Info().Msg("info-line")
	if strings.Contains(logs.String(), "info-line") {
		t.Error("info written at LOG_LEVEL=warn")
	}
	// The service gives new users the configured quotas.
	u, err := (&users.Service{Store: d.Store, Defaults: d.Config.TokenQuota, Now: d.Now}).Create(ctx(t), users.Patch{})
	if err != nil {
		t.Fatal(err)
	}
	if u.TokenLimits["gpt4o"] != 500 {
		t.Errorf("new user limits = %v", u.TokenLimits)
	}
}

func TestBuildInvalidConfig(t *testing.T) {
	_, err := app.Build(ctx(t), app.Options{Environ: []string{"GATEKEEPER=foo", "ADMIN_KEY=k"}, LogOutput: &bytes.Buffer{}})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "GATEKEEPER" {
		t.Fatalf("err = %v, want *config.Error for GATEKEEPER", err)
	}
}

func TestBuildSharedStore(t *testing.T) {
	environ := []string{"GATEKEEPER_STORE=firebase_rtdb", "FIREBASE_RTDB_URL=https://x-default-rtdb.firebaseio.com"}
	if _, err := app.Build(ctx(t), app.Options{Environ: environ, LogOutput: &bytes.Buffer{}}); err == nil {
		t.Error("firebase_rtdb without an opener built")
	}
	shared := memory.New()
	var gotURL string
	d, err := app.Build(ctx(t), app.Options{
		Environ:   environ,
		LogOutput: &bytes.Buffer{},
		OpenShared: func(ctx context.Context, cfg *config.Config, log zerolog.Logger) (users.Store, error) {
			gotURL = cfg.FirebaseRTDBURL
			return shared, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Store != shared || gotURL != "https://x-default-rtdb.firebaseio.com" {
		t.Errorf("store %p url %q", d.Store, gotURL)
	}
	boom := errors.New("FIREBASE_RTDB_URL: cannot reach the database")
	_, err = app.Build(ctx(t), app.Options{
		Environ:   environ,
		LogOutput: &bytes.Buffer{},
		OpenShared: func(context.Context, *config.Config, zerolog.Logger) (users.Store, error) {
			return nil, boom
		},
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want the opener's error", err)
	}
}

func TestBuildResolvesSecrets(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p1", "admin-key", "1", "resolved-admin-key\n")
	srv.SetSecret("p1", "openai", "1", "sk-one,sk-two")
	srv.SetSecret("p1", "anthropic", "1", "sk-ant-old")
	srv.SetSecret("p1", "anthropic", "2", "sk-ant-new")
	d, err := app.Build(ctx(t), app.Options{
		Environ: []string{
			"GATEKEEPER=user_token",
			"ADMIN_KEY=sm://admin-key",
			"OPENAI_KEY=sm://openai",
			"ANTHROPIC_KEY=projects/p1/secrets/anthropic/versions/1",
			"MISTRAL_AI_KEY=plain-mistral",
			"GOOGLE_CLOUD_PROJECT=p1",
			"SECRET_MANAGER_EMULATOR_HOST=" + srv.Addr(),
		},
		LogOutput:     &bytes.Buffer{},
		SecretTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Config
	if c.AdminKey != "resolved-admin-key" {
		t.Errorf("AdminKey = %q", c.AdminKey)
	}
	if !slices.Equal(c.ProviderKeys[models.OpenAI], []string{"sk-one", "sk-two"}) {
		t.Errorf("OpenAI keys = %q", c.ProviderKeys[models.OpenAI])
	}
	if !slices.Equal(c.ProviderKeys[models.Anthropic], []string{"sk-ant-old"}) {
		t.Errorf("Anthropic keys = %q", c.ProviderKeys[models.Anthropic])
	}
	if !slices.Equal(c.ProviderKeys[models.MistralAI], []string{"plain-mistral"}) {
		t.Errorf("Mistral keys = %q", c.ProviderKeys[models.MistralAI])
	}
	if srv.Calls() != 3 {
		t.Errorf("Secret Manager calls = %d, want 3", srv.Calls())
	}
}

func TestResolveSecretsErrors(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p1", "admin-key", "1", "value-that-must-not-leak")
	srv.Deny("projects/p1/secrets/admin-key")
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		want    string
	}{
		{"missing", map[string]string{"PROXY_KEY": "sm://nope"}, "PROXY_KEY", "NotFound"},
		{"denied", map[string]string{"ADMIN_KEY": "sm://admin-key"}, "ADMIN_KEY", "PermissionDenied"},
		{"malformed", map[string]string{"SIGNING_KEY": "sm://a/b"}, "SIGNING_KEY", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"GOOGLE_CLOUD_PROJECT": "p1", "SECRET_MANAGER_EMULATOR_HOST": srv.Addr()}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := config.FromMap(env)
			if err != nil {
				t.Fatal(err)
			}
			err = app.ResolveSecrets(ctx(t), cfg, 5*time.Second)
			var se *secrets.Error
			if !errors.As(err, &se) || se.Var != tt.wantVar {
				t.Fatalf("err = %v, want a secrets.Error for %s", err, tt.wantVar)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.wantVar) {
				t.Errorf("message %q lacks %q or the variable", err, tt.want)
			}
			if strings.Contains(err.Error(), "value-that-must-not-leak") {
				t.Errorf("message leaks the secret: %q", err)
			}
		})
	}
}

// FromMap sees only the references: what they resolve to is checked as a
// literal value would be, so a blank PROXY_KEY or ADMIN_KEY secret, or a
// malformed credential, stops start-up with an error naming the variable.
func TestResolvedSecretsAreValidated(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p1", "proxy-key", "1", "   \n")
	srv.SetSecret("p1", "admin-key", "1", " \t\n")
	srv.SetSecret("p1", "azure", "1", "not-a-credential-must-not-leak")
	srv.SetSecret("p1", "aws-blank", "1", "  \n")
	srv.SetSecret("p1", "openai-lines", "1", "sk-a-must-not-leak\nsk-b-must-not-leak\n")
	tests := []struct {
		name    string
		env     []string
		wantVar string
	}{
		{"blank PROXY_KEY", []string{"GATEKEEPER=proxy_key", "PROXY_KEY=sm://proxy-key"}, "PROXY_KEY"},
		{"blank ADMIN_KEY", []string{"GATEKEEPER=user_token", "ADMIN_KEY=sm://admin-key"}, "ADMIN_KEY"},
		{"malformed Azure credential", []string{"AZURE_CREDENTIALS=sm://azure"}, "AZURE_CREDENTIALS"},
		{"blank entry of a list", []string{"AWS_CREDENTIALS=AKIDPLAIN:secret:us-east-1,sm://aws-blank"}, "AWS_CREDENTIALS"},
		{"keys one a line", []string{"OPENAI_KEY=sm://openai-lines"}, "OPENAI_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := append(tt.env, "GOOGLE_CLOUD_PROJECT=p1", "SECRET_MANAGER_EMULATOR_HOST="+srv.Addr())
			_, err := app.Build(ctx(t), app.Options{Environ: env, LogOutput: &bytes.Buffer{}, SecretTimeout: 5 * time.Second})
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Var != tt.wantVar {
				t.Fatalf("err = %v, want a config.Error naming %s", err, tt.wantVar)
			}
			if strings.Contains(err.Error(), "must-not-leak") {
				t.Errorf("message leaks the secret: %q", err)
			}
		})
	}
}

func TestResolveSecretsWithoutReferencesCallsNothing(t *testing.T) {
	srv := smfake.Start(t)
	cfg, err := config.FromMap(map[string]string{"ADMIN_KEY": "plain", "OPENAI_KEY": "a,b", "SECRET_MANAGER_EMULATOR_HOST": srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.ResolveSecrets(ctx(t), cfg, time.Second); err != nil {
		t.Fatal(err)
	}
	if srv.Calls() != 0 || srv.Conns() != 0 {
		t.Errorf("contacted Secret Manager: %d calls, %d conns", srv.Calls(), srv.Conns())
	}
	if cfg.AdminKey != "plain" || !slices.Equal(cfg.ProviderKeys[models.OpenAI], []string{"a", "b"}) {
		t.Errorf("values changed: %q %q", cfg.AdminKey, cfg.ProviderKeys[models.OpenAI])
	}
}

func TestDecodeFirebaseKey(t *testing.T) {
	if b, err := app.DecodeFirebaseKey(""); b != nil || err != nil {
		t.Errorf("empty: %q %v, want nil, nil (ADC)", b, err)
	}
	json := `{"type":"service_account"}`
	b, err := app.DecodeFirebaseKey(base64.StdEncoding.EncodeToString([]byte(json)))
	if err != nil || string(b) != json {
		t.Errorf("valid: %q %v", b, err)
	}
	const bad = "not base64 at all: secret-ish!"
	_, err = app.DecodeFirebaseKey(bad)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "FIREBASE_KEY" {
		t.Fatalf("err = %v, want *config.Error for FIREBASE_KEY", err)
	}
	if strings.Contains(err.Error(), bad) {
		t.Errorf("message leaks the value: %q", err)
	}
}
