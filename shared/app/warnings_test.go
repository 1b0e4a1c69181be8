package app_test

import (
	"bytes"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/app"
)

// The original's variables that tollgate applies differently are logged
// once each at start, as warnings, and start-up goes on.
func TestBuildLogsConfigurationWarnings(t *testing.T) {
	var logs bytes.Buffer
	_, err := app.Build(ctx(t), app.Options{
		Environ:   []string{"CHECK_KEYS=true", "SERVICE_INFO_PASSWORD=pw-secret-value", "COOKIE_SECRET=cookie-secret-value"},
		LogOutput: &logs,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, name := range []string{"CHECK_KEYS=true is not applied", "SERVICE_INFO_PASSWORD is not applied", "COOKIE_SECRET is deprecated"} {
		if n := strings.Count(out, name); n != 1 {
			t.Errorf("%q logged %d times in %s", name, n, out)
		}
	}
	if strings.Contains(out, "pw-secret-value") || strings.Contains(out, "cookie-secret-value") {
		t.Error("a secret was logged")
	}
}
