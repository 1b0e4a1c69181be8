package deploy_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// gcloudFlags lists, per command, the flags deploy.sh may print, as read in
// the gcloud reference (cloud.google.com/sdk/gcloud/reference/...):
//   - functions/deploy (SYNOPSIS; --cpu and --memory from functions/docs/configuring/memory)
//   - functions/describe, services/enable, iam/service-accounts/{create,describe}
//   - projects/add-iam-policy-binding (--condition=None: binding without condition)
//   - secrets/{create,describe,add-iam-policy-binding}, secrets/versions/{add,access}
//   - scheduler/jobs/create/http, scheduler/jobs/update/http, scheduler/jobs/describe
//     (--oidc-service-account-email, --oidc-token-audience; --clear-headers on update)
//   - functions/add-invoker-policy-binding (--region, --member)
//   - topic/flags-file (gcloud-wide --flags-file, YAML dict for dict flags),
//     topic/escaping (why the env goes in --env-vars-file instead).
//
// A flag outside these lists fails the test: no invented flags.
var gcloudFlags = map[string][]string{
	"functions deploy": {"--gen2", "--region", "--runtime", "--entry-point", "--trigger-http",
		"--source", "--service-account", "--build-service-account", "--memory", "--cpu",
		"--concurrency", "--timeout", "--min-instances", "--max-instances", "--env-vars-file",
		"--allow-unauthenticated", "--no-allow-unauthenticated"},
	"functions describe":                   {"--region"},
	"functions add-invoker-policy-binding": {"--region", "--member"},
	"services enable":                      {"--async"},
	"iam service-accounts create":          {"--display-name", "--description"},
	"iam service-accounts describe":        {},
	"projects add-iam-policy-binding":      {"--member", "--role", "--condition"},
	"secrets create":                       {"--data-file", "--replication-policy"},
	"secrets describe":                     {},
	"secrets add-iam-policy-binding":       {"--member", "--role"},
	"secrets versions add":                 {"--data-file"},
	"secrets versions access":              {"--secret"},
	"scheduler jobs describe":              {"--location"},
	"scheduler jobs create http": {"--location", "--schedule", "--uri", "--time-zone", "--http-method",
		"--attempt-deadline", "--max-retry-attempts", "--description", "--headers",
		"--oidc-service-account-email", "--oidc-token-audience"},
	"scheduler jobs update http": {"--location", "--schedule", "--uri", "--time-zone", "--http-method",
		"--attempt-deadline", "--max-retry-attempts", "--description", "--update-headers",
		"--clear-headers", "--oidc-service-account-email", "--oidc-token-audience"},
}

// Flags every gcloud command takes (GCLOUD WIDE FLAGS in each reference page).
var gcloudWideFlags = []string{"--project", "--quiet", "--format", "--flags-file"}

// checkFlags fails when cmd uses a flag its reference page does not list.
func checkFlags(t *testing.T, cmd []string) {
	t.Helper()
	for n := 4; n >= 2; n-- {
		if len(cmd) <= n {
			continue
		}
		allowed, ok := gcloudFlags[strings.Join(cmd[1:n+1], " ")]
		if !ok {
			continue
		}
		allowed = append(append([]string{}, allowed...), gcloudWideFlags...)
		for _, a := range cmd[n+1:] {
			if !strings.HasPrefix(a, "--") {
				continue
			}
			name, _, _ := strings.Cut(a, "=")
			if !hasArg(allowed, name) {
				t.Errorf("%s: flag %s is not in the gcloud reference for this command", strings.Join(cmd[:n+1], " "), name)
			}
		}
		return
	}
	t.Errorf("gcloud command not in the checked reference list: %q", cmd)
}

// checkFlagsFiles checks the flags inside every --flags-file the same way.
func checkFlagsFiles(t *testing.T, l listing) {
	t.Helper()
	for _, c := range l.commands {
		path, ok := flagValue(c, "--flags-file")
		if !ok {
			continue
		}
		body, ok := l.files[path]
		if !ok {
			t.Errorf("%q uses flags file %s that the listing never writes", c, path)
			continue
		}
		var flags []string
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "--") {
				name, _, _ := strings.Cut(line, ":")
				flags = append(flags, name)
			}
		}
		checkFlags(t, append(append([]string{}, c...), flags...))
	}
}

var secretVars = []string{"ADMIN_KEY", "PROXY_KEY", "SIGNING_KEY", "FIREBASE_KEY",
	"OPENAI_KEY", "ANTHROPIC_KEY", "GOOGLE_AI_KEY", "MISTRAL_AI_KEY"}

// secretFiles writes a distinct value per secret variable and returns the
// environment naming them (<VAR>_FILE) plus the raw values under <VAR>, so a
// leak through either path shows.
func secretFiles(t *testing.T) (env map[string]string, values []string) {
	t.Helper()
	dir := t.TempDir()
	env = map[string]string{}
	for _, v := range secretVars {
		value := "sekrit-" + strings.ToLower(v) + "-Zq8Yx"
		path := filepath.Join(dir, v)
		writeFile(t, path, value+"\n")
		env[v+"_FILE"] = path
		env[v] = value + "-from-env"
		values = append(values, value)
	}
	return env, values
}

func TestDryRunExampleConfig(t *testing.T) {
	t.Parallel()
	env, values := secretFiles(t)
	config := readFile(t, filepath.Join(deployDir(t), "env.example.yaml"))
	res := runDeploy(t, config, env, "--dry-run")
	if res.err != nil {
		t.Fatalf("dry run failed: %v\nstderr:\n%s", res.err, res.stderr)
	}
	if res.gcloudLog != "" {
		t.Errorf("dry run called gcloud:\n%s", res.gcloudLog)
	}
	for _, v := range values {
		if strings.Contains(res.stdout+res.stderr, v) {
			t.Errorf("secret value %q printed", v)
		}
	}
	l := parseListing(t, res.stdout)
	for _, c := range l.commands {
		checkFlags(t, c)
		if c[1] == "projects" {
			if c[3] != "example-project" {
				t.Errorf("%q: wrong project", c)
			}
		} else if p, _ := flagValue(c, "--project"); p != "example-project" {
			t.Errorf("%q: --project is %q, want example-project", c, p)
		}
	}
	checkFlagsFiles(t, l)

	sa := "serviceAccount:tollgate-functions@example-project.iam.gserviceaccount.com"
	wantDeploy := map[string]map[string]string{
		"proxy": {"--timeout": "3600s", "--max-instances": "10"},
		"admin": {"--timeout": "300s", "--max-instances": "2"},
	}
	var envFile string
	for fn, want := range wantDeploy {
		cmds := l.find("gcloud", "functions", "deploy", fn)
		if len(cmds) != 1 {
			t.Fatalf("want one deploy of %s, got %q", fn, cmds)
		}
		c := cmds[0]
		for _, a := range []string{"--gen2", "--trigger-http", "--runtime=go126", "--entry-point=" + fn,
			"--source=.", "--region=us-central1", "--allow-unauthenticated", "--concurrency=80",
			"--min-instances=0", "--cpu=1", "--memory=512Mi",
			"--service-account=" + strings.TrimPrefix(sa, "serviceAccount:")} {
			if !hasArg(c, a) {
				t.Errorf("deploy %s lacks %s: %q", fn, a, c)
			}
		}
		for flag, v := range want {
			if got, _ := flagValue(c, flag); got != v {
				t.Errorf("deploy %s: %s=%q, want %q", fn, flag, got, v)
			}
		}
		if _, ok := flagValue(c, "--set-env-vars"); ok {
			t.Errorf("deploy %s passes --set-env-vars; the env goes in --env-vars-file", fn)
		}
		path, _ := flagValue(c, "--env-vars-file")
		if envFile != "" && path != envFile {
			t.Errorf("the functions get different env files: %s and %s", envFile, path)
		}
		envFile = path
	}
	body, ok := l.files[envFile]
	if !ok {
		t.Fatalf("env file %s is not shown in the listing", envFile)
	}
	vars := parseEnvFile(t, body)
	for k, v := range map[string]string{
		"GOOGLE_CLOUD_PROJECT":     "example-project",
		"GATEKEEPER":               "user_token",
		"GATEKEEPER_STORE":         "firebase_rtdb",
		"FIREBASE_RTDB_URL":        "https://example-project-default-rtdb.firebaseio.com",
		"ADMIN_KEY":                "sm://tollgate-admin-key",
		"SIGNING_KEY":              "sm://tollgate-signing-key",
		"OPENAI_KEY":               "sm://tollgate-openai-key",
		"ANTHROPIC_KEY":            "sm://tollgate-anthropic-key",
		"ADMIN_WHITELIST":          "0.0.0.0/0,::/0",
		"MAX_OUTPUT_TOKENS_OPENAI": "1024",
		// The admin function accepts the scheduler's OIDC token.
		"SCHEDULER_SERVICE_ACCOUNT": "tollgate-scheduler@example-project.iam.gserviceaccount.com",
		"SCHEDULER_AUDIENCE":        "https://us-central1-example-project.cloudfunctions.net/admin",
	} {
		if vars[k] != v {
			t.Errorf("env %s = %q, want %q", k, vars[k], v)
		}
	}
	for k := range vars {
		if strings.HasPrefix(k, "DEPLOY_") {
			t.Errorf("deploy setting %s leaked into the functions' environment", k)
		}
	}
	for _, k := range []string{"PROXY_KEY", "FIREBASE_KEY", "GOOGLE_AI_KEY", "MISTRAL_AI_KEY", "QUOTA_REFRESH_PERIOD"} {
		if _, ok := vars[k]; ok {
			t.Errorf("empty %s should be left unset, got %q", k, vars[k])
		}
	}

	for _, name := range []string{"tollgate-admin-key", "tollgate-signing-key", "tollgate-openai-key", "tollgate-anthropic-key"} {
		if len(l.find("gcloud", "secrets", "create", name)) != 1 {
			t.Errorf("secret %s is not created when missing", name)
		}
		for _, c := range l.find("gcloud", "secrets", "create", name) {
			if !hasArg(c, "--data-file=-") {
				t.Errorf("%q: the value must come on stdin", c)
			}
		}
		grants := l.find("gcloud", "secrets", "add-iam-policy-binding", name)
		if len(grants) != 1 || !hasArg(grants[0], "--member="+sa) || !hasArg(grants[0], "--role=roles/secretmanager.secretAccessor") {
			t.Errorf("secret %s: want the accessor grant to the functions' account, got %q", name, grants)
		}
	}
	if !strings.Contains(res.stdout, "printf '%s' '****' | gcloud secrets create tollgate-admin-key") {
		t.Errorf("secret creation is not shown masked:\n%s", res.stdout)
	}
	db := l.find("gcloud", "projects", "add-iam-policy-binding", "example-project")
	if len(db) != 1 || !hasArg(db[0], "--role=roles/firebasedatabase.admin") || !hasArg(db[0], "--member="+sa) {
		t.Errorf("want the Realtime Database role for the functions' account, got %q", db)
	}
	if len(l.find("gcloud", "iam", "service-accounts", "create", "tollgate-functions")) != 1 {
		t.Error("the service account is not created when missing")
	}

	adminURL := "https://us-central1-example-project.cloudfunctions.net/admin"
	schedSA := "tollgate-scheduler@example-project.iam.gserviceaccount.com"
	if len(l.find("gcloud", "iam", "service-accounts", "create", "tollgate-scheduler")) != 1 {
		t.Error("the scheduler's service account is not created when missing")
	}
	inv := l.find("gcloud", "functions", "add-invoker-policy-binding", "admin")
	if len(inv) != 1 || !hasArg(inv[0], "--member=serviceAccount:"+schedSA) || !hasArg(inv[0], "--region=us-central1") {
		t.Errorf("want the invoker role on admin for the scheduler's account, got %q", inv)
	}
	if len(l.find("gcloud", "secrets", "versions", "access")) != 0 {
		t.Error("the admin key is read for the scheduler, which no longer sends it")
	}
	for _, action := range []string{"expire-temporary", "purge-temporary"} {
		for _, verb := range []string{"create", "update"} {
			jobs := l.find("gcloud", "scheduler", "jobs", verb, "http", "tollgate-"+action)
			if len(jobs) != 1 {
				t.Fatalf("want one scheduler %s for %s, got %q", verb, action, jobs)
			}
			j := jobs[0]
			if u, _ := flagValue(j, "--uri"); u != adminURL+"/maintenance/"+action {
				t.Errorf("scheduler %s: --uri=%q", action, u)
			}
			for _, a := range []string{"--http-method=post", "--schedule=0 * * * *", "--location=us-central1"} {
				if !hasArg(j, a) {
					t.Errorf("scheduler %s %s lacks %s: %q", verb, action, a, j)
				}
			}
			for _, a := range []string{"--oidc-service-account-email=" + schedSA, "--oidc-token-audience=" + adminURL} {
				if !hasArg(j, a) {
					t.Errorf("scheduler %s %s lacks %s: %q", verb, action, a, j)
				}
			}
			if _, ok := flagValue(j, "--flags-file"); ok || hasArg(j, "--headers") || strings.Contains(strings.Join(j, " "), "Authorization") {
				t.Errorf("scheduler %s %s still sends a header: %q", verb, action, j)
			}
			if verb == "update" && !hasArg(j, "--clear-headers") {
				t.Errorf("updating %s does not drop the old admin key header: %q", action, j)
			}
		}
	}
	if !strings.Contains(res.stdout, adminURL) || !strings.Contains(res.stdout, "/proxy/openai/v1") {
		t.Errorf("summary lacks the URLs:\n%s", res.stdout)
	}
}

// parseEnvFile reads the KEY: "value" lines deploy.sh writes.
func parseEnvFile(t *testing.T, body string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		k, v, ok := strings.Cut(line, `: "`)
		if !ok || !strings.HasSuffix(v, `"`) {
			t.Fatalf("env file line %q is not KEY: \"value\"", line)
		}
		v = strings.TrimSuffix(v, `"`)
		v = strings.ReplaceAll(strings.ReplaceAll(v, `\"`, `"`), `\\`, `\`)
		vars[k] = v
	}
	for k, v := range vars {
		if hasArg(secretVars, k) && !strings.HasPrefix(v, "sm://") && !strings.HasPrefix(v, "projects/") {
			t.Errorf("secret variable %s holds %q, not a Secret Manager reference", k, v)
		}
	}
	return vars
}
