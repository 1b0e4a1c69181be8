package config_test

import (
	"errors"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/config"
)

func TestSchedulerDefaultsOff(t *testing.T) {
	c := load(t, map[string]string{})
	if c.Scheduler.Enabled() || c.Scheduler.Audience != "" || c.Scheduler.CertsURL != config.GoogleCertsURL {
		t.Fatalf("default scheduler = %+v", c.Scheduler)
	}
}

func TestSchedulerValid(t *testing.T) {
	for _, env := range []map[string]string{
		{"SCHEDULER_SERVICE_ACCOUNT": "tollgate-scheduler@my-proj.iam.gserviceaccount.com", "SCHEDULER_AUDIENCE": "https://europe-west1-my-proj.cloudfunctions.net/admin"},
		{"SCHEDULER_SERVICE_ACCOUNT": "123456789-compute@developer.gserviceaccount.com", "SCHEDULER_AUDIENCE": "https://admin-abc-ew.a.run.app", "SCHEDULER_CERTS_URL": "http://127.0.0.1:8123/certs"},
		{"SCHEDULER_SERVICE_ACCOUNT": "s@p.iam.gserviceaccount.com", "SCHEDULER_AUDIENCE": "http://localhost:8080/admin", "SCHEDULER_CERTS_URL": "https://keys.example.test/jwks"},
	} {
		c := load(t, env)
		s := c.Scheduler
		if !s.Enabled() || s.ServiceAccount != env["SCHEDULER_SERVICE_ACCOUNT"] || s.Audience != env["SCHEDULER_AUDIENCE"] {
			t.Errorf("%v gave %+v", env, s)
		}
		if want := env["SCHEDULER_CERTS_URL"]; want != "" && s.CertsURL != want {
			t.Errorf("CertsURL = %q, want %q", s.CertsURL, want)
		}
	}
}

// Each bad value stops start-up naming the variable and what it takes.
func TestSchedulerInvalid(t *testing.T) {
	const sa, aud = "s@p.iam.gserviceaccount.com", "https://r-p.cloudfunctions.net/admin"
	for _, tt := range []struct {
		env  map[string]string
		bad  string
		hint string
	}{
		{map[string]string{"SCHEDULER_SERVICE_ACCOUNT": "someone@gmail.com", "SCHEDULER_AUDIENCE": aud}, "SCHEDULER_SERVICE_ACCOUNT", "service account's email"},
		{map[string]string{"SCHEDULER_SERVICE_ACCOUNT": "S@P.iam.gserviceaccount.com", "SCHEDULER_AUDIENCE": aud}, "SCHEDULER_SERVICE_ACCOUNT", "lower case"},
		{map[string]string{"SCHEDULER_SERVICE_ACCOUNT": sa}, "SCHEDULER_AUDIENCE", "required with SCHEDULER_SERVICE_ACCOUNT"},
		{map[string]string{"SCHEDULER_AUDIENCE": aud}, "SCHEDULER_SERVICE_ACCOUNT", "required with SCHEDULER_AUDIENCE"},
		{map[string]string{"SCHEDULER_SERVICE_ACCOUNT": sa, "SCHEDULER_AUDIENCE": "admin"}, "SCHEDULER_AUDIENCE", "http(s) URL"},
		{map[string]string{"SCHEDULER_SERVICE_ACCOUNT": sa, "SCHEDULER_AUDIENCE": "ftp://x/admin"}, "SCHEDULER_AUDIENCE", "http(s) URL"},
		{map[string]string{"SCHEDULER_SERVICE_ACCOUNT": sa, "SCHEDULER_AUDIENCE": aud + "#x"}, "SCHEDULER_AUDIENCE", "without a fragment"},
		{map[string]string{"SCHEDULER_CERTS_URL": "http://keys.example.test/jwks"}, "SCHEDULER_CERTS_URL", "http only on a loopback"},
		{map[string]string{"SCHEDULER_CERTS_URL": "not a url"}, "SCHEDULER_CERTS_URL", "https URL"},
	} {
		_, err := config.FromMap(tt.env)
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Var != tt.bad || !strings.Contains(err.Error(), tt.hint) {
			t.Errorf("%v: err = %v, want %s (%s)", tt.env, err, tt.bad, tt.hint)
		}
	}
}
