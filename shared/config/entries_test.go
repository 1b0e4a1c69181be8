package config_test

import (
	"slices"
	"testing"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
)

// Each entry of a credential list may be a Secret Manager reference of
// its own; a whole variable holding one reference is resolved whole.
func TestSecretListEntries(t *testing.T) {
	c, err := config.FromMap(map[string]string{
		"AWS_CREDENTIALS": "sm://aws-one, AKIDPLAIN:secret:us-east-1 ,projects/p/secrets/aws/versions/2",
		"OPENAI_KEY":      "sm://openai",
		"ANTHROPIC_KEY":   "sk-a,sk-b",
	})
	if err != nil {
		t.Fatal(err)
	}
	vals := c.SecretValues()
	want := map[string]string{
		"AWS_CREDENTIALS[1]": "sm://aws-one",
		"AWS_CREDENTIALS[3]": "projects/p/secrets/aws/versions/2",
		"OPENAI_KEY":         "sm://openai",
		"ANTHROPIC_KEY":      "sk-a,sk-b",
	}
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("SecretValues[%s] = %q, want %q", k, vals[k], v)
		}
	}
	if _, ok := vals["AWS_CREDENTIALS"]; ok || len(vals) != len(want) {
		t.Errorf("SecretValues = %v", vals)
	}
	c.ApplySecrets(map[string]string{
		"AWS_CREDENTIALS[1]": " AKIDONE:s1:eu-west-1\n",
		"AWS_CREDENTIALS[3]": "AKIDTHREE:s3:us-west-2",
		"AWS_CREDENTIALS[9]": "out of range: ignored",
		"OPENAI_KEY":         "sk-1,sk-2",
	})
	wantAWS := []string{"AKIDONE:s1:eu-west-1", "AKIDPLAIN:secret:us-east-1", "AKIDTHREE:s3:us-west-2"}
	for _, p := range []models.Provider{models.AWSClaude, models.AWSMistral} {
		if got := c.ProviderKeys[p]; !slices.Equal(got, wantAWS) {
			t.Errorf("%s keys = %q, want %q", p, got, wantAWS)
		}
	}
	if got := c.ProviderKeys[models.OpenAI]; !slices.Equal(got, []string{"sk-1", "sk-2"}) {
		t.Errorf("OpenAI keys = %q", got)
	}
}
