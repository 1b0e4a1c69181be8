package deploy_test

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// logCalls splits the fake gcloud's log into records of kind ARGV, STDIN,
// FLAGSFILE or ENVFILE.
func logCalls(log, kind string) [][]string {
	var out [][]string
	for _, line := range strings.Split(log, "\n") {
		f := strings.Split(line, "\t")
		if f[0] == kind {
			out = append(out, f[1:])
		}
	}
	return out
}

func TestRunWithFakeGcloudCreatesMissing(t *testing.T) {
	t.Parallel()
	env, values := secretFiles(t)
	env["FAKE_EXISTS"] = "1"
	config := readFile(t, filepath.Join(deployDir(t), "env.example.yaml"))
	res := runDeploy(t, config, env)
	if res.err != nil {
		t.Fatalf("deploy failed: %v\nstderr:\n%s", res.err, res.stderr)
	}
	argv := logCalls(res.gcloudLog, "ARGV")
	for _, v := range values {
		if strings.Contains(res.stdout+res.stderr, v) {
			t.Errorf("secret value %q printed", v)
		}
		for _, a := range argv {
			if strings.Contains(strings.Join(a, " "), v) {
				t.Errorf("secret value %q in gcloud's arguments (visible in ps): %q", v, a)
			}
		}
	}
	for _, a := range argv {
		checkFlags(t, append([]string{"gcloud"}, a...))
	}
	// Each created secret got exactly its file's value on stdin, newline trimmed.
	stdin := logCalls(res.gcloudLog, "STDIN")
	var got []string
	for _, s := range stdin {
		got = append(got, s[0])
	}
	sort.Strings(got)
	want := []string{"sekrit-admin_key-Zq8Yx", "sekrit-anthropic_key-Zq8Yx", "sekrit-openai_key-Zq8Yx", "sekrit-signing_key-Zq8Yx"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("secret values written = %q, want %q", got, want)
	}
	// The scheduler jobs carry no admin key: an OIDC token for their own
	// account, with the admin URL as audience.
	if flags := logCalls(res.gcloudLog, "FLAGSFILE"); len(flags) != 0 {
		t.Errorf("flags files (headers) given to gcloud: %q", flags)
	}
	var uris []string
	for _, a := range argv {
		if len(a) > 3 && a[0] == "scheduler" && a[2] == "create" {
			u, _ := flagValue(a, "--uri")
			uris = append(uris, u)
			if !hasArg(a, "--oidc-service-account-email=tollgate-scheduler@example-project.iam.gserviceaccount.com") ||
				!hasArg(a, "--oidc-token-audience=https://us-central1-example-project.cloudfunctions.net/admin") {
				t.Errorf("scheduler job without the OIDC token: %q", a)
			}
		}
	}
	if strings.Join(uris, " ") != "https://fake-admin.example/maintenance/expire-temporary https://fake-admin.example/maintenance/purge-temporary" {
		t.Errorf("scheduler URIs = %q, want the described admin URL", uris)
	}
	envFiles := logCalls(res.gcloudLog, "ENVFILE")
	if len(envFiles) != 2 || !strings.Contains(envFiles[0][0], `ADMIN_KEY: "sm://tollgate-admin-key"|`) ||
		!strings.Contains(envFiles[0][0], `GOOGLE_CLOUD_PROJECT: "example-project"|`) {
		t.Errorf("env files given to deploy = %q", envFiles)
	}
	if !strings.Contains(res.stdout, "https://fake-proxy.example/openai/v1") {
		t.Errorf("summary lacks the proxy's SDK URL:\n%s", res.stdout)
	}
	if entries := readDirNames(t, res.tmp); len(entries) != 0 {
		t.Errorf("temporary files left behind: %q", entries)
	}
}

func TestRunWithFakeGcloudUpdatesExisting(t *testing.T) {
	t.Parallel()
	const adminKey = "existing-admin-key-Pw3"
	env := map[string]string{"FAKE_EXISTS": "0", "FAKE_ADMIN_KEY": adminKey}
	config := readFile(t, filepath.Join(deployDir(t), "env.example.yaml"))
	res := runDeploy(t, config, env)
	if res.err != nil {
		t.Fatalf("deploy failed: %v\nstderr:\n%s", res.err, res.stderr)
	}
	if strings.Contains(res.stdout+res.stderr, adminKey) {
		t.Error("the admin key read from Secret Manager was printed")
	}
	for _, a := range logCalls(res.gcloudLog, "ARGV") {
		line := strings.Join(a, " ")
		if strings.Contains(line, adminKey) {
			t.Errorf("admin key in gcloud's arguments: %q", a)
		}
		for _, bad := range []string{"secrets create", "service-accounts create", "jobs create"} {
			if strings.Contains(line, bad) {
				t.Errorf("existing resource recreated: %q", a)
			}
		}
	}
	if logCalls(res.gcloudLog, "STDIN") != nil {
		t.Error("existing secrets got new versions without --update-secrets")
	}
	var updates int
	for _, a := range logCalls(res.gcloudLog, "ARGV") {
		if len(a) > 3 && a[0] == "scheduler" && a[2] == "update" {
			updates++
			if !hasArg(a, "--clear-headers") || !hasArg(a, "--oidc-service-account-email=tollgate-scheduler@example-project.iam.gserviceaccount.com") {
				t.Errorf("existing job not moved to the OIDC token: %q", a)
			}
		}
	}
	if updates != 2 || logCalls(res.gcloudLog, "FLAGSFILE") != nil {
		t.Errorf("%d job updates, flags files %q", updates, logCalls(res.gcloudLog, "FLAGSFILE"))
	}
}

func TestRunWithFakeGcloudUpdateSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "openai")
	writeFile(t, path, "rotated-openai-Kk1\r\n")
	env := map[string]string{"FAKE_EXISTS": "0", "OPENAI_KEY_FILE": path, "FAKE_ADMIN_KEY": "x-admin-x"}
	config := baseConfig + "OPENAI_KEY: sm://openai\nDEPLOY_SCHEDULER: false\n"
	res := runDeploy(t, config, env, "--update-secrets")
	if res.err != nil {
		t.Fatalf("deploy failed: %v\nstderr:\n%s", res.err, res.stderr)
	}
	var adds []string
	for _, a := range logCalls(res.gcloudLog, "ARGV") {
		if len(a) > 3 && a[0] == "secrets" && a[1] == "versions" && a[2] == "add" {
			adds = append(adds, a[3])
		}
	}
	// Without a file and without a terminal, the admin key is left as it is.
	if strings.Join(adds, ",") != "openai" {
		t.Errorf("new versions added for %q, want only openai", adds)
	}
	if s := logCalls(res.gcloudLog, "STDIN"); len(s) != 1 || s[0][0] != "rotated-openai-Kk1" {
		t.Errorf("new version value = %q", s)
	}
}

func TestRunWithoutSecretValueFails(t *testing.T) {
	t.Parallel()
	res := runDeploy(t, baseConfig, map[string]string{"FAKE_EXISTS": "1"})
	if res.err == nil {
		t.Fatal("a missing secret with no value and no terminal must stop the deploy")
	}
	if !strings.Contains(res.stderr, "ADMIN_KEY_FILE") {
		t.Errorf("the error should say how to give the value: %s", res.stderr)
	}
	if strings.Contains(res.gcloudLog, "functions\tdeploy") {
		t.Error("functions deployed although a secret could not be created")
	}
}

func TestGenerateSecrets(t *testing.T) {
	t.Parallel()
	res := runDeploy(t, baseConfig+"SIGNING_KEY: sm://signing\nDEPLOY_SCHEDULER: false\n",
		map[string]string{"FAKE_EXISTS": "1"}, "--generate-secrets")
	if res.err != nil {
		t.Fatalf("deploy failed: %v\nstderr:\n%s", res.err, res.stderr)
	}
	stdin := logCalls(res.gcloudLog, "STDIN")
	if len(stdin) != 2 || len(stdin[0][0]) < 40 || stdin[0][0] == stdin[1][0] {
		t.Fatalf("want two distinct generated values, got %q", stdin)
	}
	for _, s := range stdin {
		if strings.Contains(res.stdout+res.stderr, s[0]) {
			t.Error("a generated secret was printed")
		}
	}
}
