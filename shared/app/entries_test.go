package app_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/smfake"
	"tollgate.dev/tollgate/shared/app"
	"tollgate.dev/tollgate/shared/models"
)

func TestBuildResolvesCredentialEntries(t *testing.T) {
	srv := smfake.Start(t)
	srv.SetSecret("p1", "aws-a", "1", "AKIDA:secret-a:us-east-1\n")
	srv.SetSecret("p1", "aws-c", "4", "AKIDC:secret-c:eu-west-3")
	env := []string{
		"AWS_CREDENTIALS=sm://aws-a,AKIDB:secret-b:us-west-2,projects/p1/secrets/aws-c/versions/4",
		"GOOGLE_CLOUD_PROJECT=p1",
		"SECRET_MANAGER_EMULATOR_HOST=" + srv.Addr(),
	}
	d, err := app.Build(ctx(t), app.Options{Environ: env, LogOutput: &bytes.Buffer{}, SecretTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"AKIDA:secret-a:us-east-1", "AKIDB:secret-b:us-west-2", "AKIDC:secret-c:eu-west-3"}
	for _, p := range []models.Provider{models.AWSClaude, models.AWSMistral} {
		if got := d.Config.ProviderKeys[p]; !slices.Equal(got, want) {
			t.Errorf("%s keys = %q, want %q", p, got, want)
		}
	}
	if srv.Calls() != 2 {
		t.Errorf("Secret Manager calls = %d, want 2", srv.Calls())
	}

	// A missing entry stops start-up naming the variable and the entry.
	env[0] = "AWS_CREDENTIALS=AKIDB:secret-b:us-west-2,sm://aws-missing"
	_, err = app.Build(ctx(t), app.Options{Environ: env, LogOutput: &bytes.Buffer{}, SecretTimeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "AWS_CREDENTIALS[2]") || strings.Contains(err.Error(), "secret-b") {
		t.Errorf("err = %v", err)
	}
}
