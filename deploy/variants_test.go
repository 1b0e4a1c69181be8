package deploy_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
)

const baseConfig = `DEPLOY_PROJECT: my-proj-123
GATEKEEPER: user_token
FIREBASE_RTDB_URL: https://my-proj-123-default-rtdb.firebaseio.com
ADMIN_KEY: sm://admin-key
`

func TestDryRunConfigVariants(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		config  string
		args    []string // beyond --dry-run
		wantErr string   // substring of stderr; "" means success
		check   func(t *testing.T, l listing, stdout, stderr string)
	}{
		{
			name:   "private proxy",
			config: baseConfig + "DEPLOY_PROXY_PUBLIC: false\n",
			check: func(t *testing.T, l listing, _, _ string) {
				p := l.find("gcloud", "functions", "deploy", "proxy")[0]
				if !hasArg(p, "--no-allow-unauthenticated") || hasArg(p, "--allow-unauthenticated") {
					t.Errorf("proxy should be IAM-only: %q", p)
				}
				if a := l.find("gcloud", "functions", "deploy", "admin")[0]; !hasArg(a, "--allow-unauthenticated") {
					t.Errorf("admin should stay public: %q", a)
				}
			},
		},
		{
			name:   "private admin is reached by the scheduler's invoker account",
			config: baseConfig + "DEPLOY_ADMIN_PUBLIC: false\n",
			check: func(t *testing.T, l listing, _, stderr string) {
				if a := l.find("gcloud", "functions", "deploy", "admin")[0]; !hasArg(a, "--no-allow-unauthenticated") {
					t.Errorf("admin should be IAM-only: %q", a)
				}
				if len(l.find("gcloud", "scheduler", "jobs", "create")) == 0 {
					t.Error("no scheduler job for an IAM-only admin")
				}
				if len(l.find("gcloud", "functions", "add-invoker-policy-binding", "admin")) != 1 {
					t.Error("the scheduler's account may not invoke the IAM-only admin")
				}
			},
		},
		{
			name:    "literal secret refused without echo",
			config:  strings.Replace(baseConfig, "sm://admin-key", "hunter2-literal", 1),
			wantErr: "ADMIN_KEY must be a Secret Manager reference",
		},
		{
			// The original's name for SIGNING_KEY is as secret as it.
			name:    "literal COOKIE_SECRET refused without echo",
			config:  baseConfig + "COOKIE_SECRET: hunter2-literal\n",
			wantErr: "COOKIE_SECRET must be a Secret Manager reference",
		},
		{
			name:   "COOKIE_SECRET reference is a secret",
			config: baseConfig + "COOKIE_SECRET: sm://cookie-secret\n",
			check: func(t *testing.T, l listing, _, stderr string) {
				if len(l.find("gcloud", "secrets", "add-iam-policy-binding", "cookie-secret")) != 1 {
					t.Error("the functions' account may not read the COOKIE_SECRET secret")
				}
			},
		},
		{
			name:    "literal Azure credentials refused",
			config:  baseConfig + "AZURE_CREDENTIALS: contoso:gpt4o:0123456789abcdef0123456789abcdef\n",
			wantErr: "AZURE_CREDENTIALS must be a Secret Manager reference",
		},
		{
			name:   "Azure settings known",
			config: baseConfig + "AZURE_CREDENTIALS: sm://azure-credentials\nAZURE_OPENAI_API_VERSION: 2024-10-21\nAZURE_OPENAI_BASE_URL: https://{resource}.openai.azure.com\nMAX_OUTPUT_TOKENS_AZURE: 2048\n",
			check: func(t *testing.T, l listing, _, stderr string) {
				if strings.Contains(stderr, "not a tollgate variable") {
					t.Errorf("an Azure variable drew a typo warning: %s", stderr)
				}
				if len(l.find("gcloud", "secrets", "add-iam-policy-binding", "azure-credentials")) != 1 {
					t.Error("the functions' account may not read the Azure credentials")
				}
			},
		},
		{
			name:    "project required",
			config:  strings.Replace(baseConfig, "DEPLOY_PROJECT: my-proj-123\n", "", 1),
			wantErr: "DEPLOY_PROJECT is required",
		},
		{
			name:    "malformed line",
			config:  baseConfig + "LOG_LEVEL debug\n",
			wantErr: "line 5",
		},
		{
			name:    "lower-case key",
			config:  baseConfig + "log_level: debug\n",
			wantErr: "line 5",
		},
		{
			name:    "timeout above the 2nd gen maximum",
			config:  baseConfig + "DEPLOY_PROXY_TIMEOUT: 4000\n",
			wantErr: "DEPLOY_PROXY_TIMEOUT must be 1..3600",
		},
		{
			name:    "duplicate key",
			config:  baseConfig + "GATEKEEPER: none\n",
			wantErr: "GATEKEEPER is set twice",
		},
		{
			name:    "unquoted YAML indicator",
			config:  baseConfig + "QUOTA_REFRESH_PERIOD: */5 * * * *\n",
			wantErr: "quote this value",
		},
		{
			name:    "concurrency needs a whole vCPU",
			config:  baseConfig + "DEPLOY_CPU: 0.5\n",
			wantErr: "needs DEPLOY_CPU of at least 1",
		},
		{
			name:    "unknown deploy setting",
			config:  baseConfig + "DEPLOY_REGON: europe-west1\n",
			wantErr: "unknown deploy setting DEPLOY_REGON",
		},
		{
			name:    "platform variable refused",
			config:  baseConfig + "GOOGLE_CLOUD_PROJECT: other\n",
			wantErr: "GOOGLE_CLOUD_PROJECT is set by the deploy",
		},
		{
			name:    "scheduler variables are the deploy's",
			config:  baseConfig + "SCHEDULER_AUDIENCE: https://elsewhere.example/admin\n",
			wantErr: "SCHEDULER_AUDIENCE is set by the deploy",
		},
		{
			name:    "bad scheduler account",
			config:  baseConfig + "DEPLOY_SCHEDULER_SERVICE_ACCOUNT: Cron Job\n",
			wantErr: "DEPLOY_SCHEDULER_SERVICE_ACCOUNT must be",
		},
		{
			name:    "bad scheduler action",
			config:  baseConfig + "DEPLOY_SCHEDULER_ACTIONS: reset-counts\n",
			wantErr: "DEPLOY_SCHEDULER_ACTIONS",
		},
		{
			name:   "cluster limits pruned on schedule",
			config: baseConfig + "LIMITS_SCOPE: cluster\nDEPLOY_SCHEDULER_ACTIONS: purge-temporary,prune-limits\n",
			check: func(t *testing.T, l listing, _, _ string) {
				jobs := l.find("gcloud", "scheduler", "jobs", "create", "http", "tollgate-prune-limits")
				if len(jobs) != 1 {
					t.Fatalf("want one scheduler job for prune-limits, got %q", l.find("gcloud", "scheduler", "jobs", "create"))
				}
				if u, _ := flagValue(jobs[0], "--uri"); !strings.HasSuffix(u, "/maintenance/prune-limits") {
					t.Errorf("prune-limits job: --uri=%q", u)
				}
			},
		},
		{
			name:    "rtdb store needs its URL",
			config:  strings.Replace(baseConfig, "FIREBASE_RTDB_URL: https://my-proj-123-default-rtdb.firebaseio.com\n", "", 1),
			wantErr: "needs FIREBASE_RTDB_URL",
		},
		{
			name:    "user_token needs an admin key",
			config:  strings.Replace(baseConfig, "ADMIN_KEY: sm://admin-key\n", "", 1),
			wantErr: "GATEKEEPER=user_token needs ADMIN_KEY",
		},
		{
			name: "quoted values keep commas, spaces and stars",
			config: baseConfig + "ADMIN_WHITELIST: \"10.0.0.0/8, 2001:db8::/32\"\n" +
				"QUOTA_REFRESH_PERIOD: '0 0 * * *'  # daily\n" +
				"ALLOWED_MODEL_FAMILIES: gpt4o,claude # a comment\n" +
				"ERROR_FORMAT: \"say \\\"hi\\\" \\\\ there\"\n",
			check: func(t *testing.T, l listing, _, _ string) {
				path, _ := flagValue(l.find("gcloud", "functions", "deploy", "proxy")[0], "--env-vars-file")
				vars := parseEnvFile(t, l.files[path])
				for k, v := range map[string]string{
					"ADMIN_WHITELIST":        "10.0.0.0/8, 2001:db8::/32",
					"QUOTA_REFRESH_PERIOD":   "0 0 * * *",
					"ALLOWED_MODEL_FAMILIES": "gpt4o,claude",
					"ERROR_FORMAT":           `say "hi" \ there`,
					"GOOGLE_CLOUD_PROJECT":   "my-proj-123",
				} {
					if vars[k] != v {
						t.Errorf("%s = %q, want %q", k, vars[k], v)
					}
				}
			},
		},
		{
			name:   "CRLF line endings",
			config: strings.ReplaceAll(baseConfig, "\n", "\r\n"),
			check: func(t *testing.T, l listing, _, _ string) {
				if len(l.find("gcloud", "functions", "deploy", "proxy", "--gen2", "--project=my-proj-123")) != 1 {
					t.Errorf("CRLF config not read: %q", l.commands)
				}
			},
		},
		{
			name:   "memory store needs no database role",
			config: strings.Replace(baseConfig, "FIREBASE_RTDB_URL: https://my-proj-123-default-rtdb.firebaseio.com\n", "GATEKEEPER_STORE: memory\n", 1),
			check: func(t *testing.T, l listing, _, stderr string) {
				if len(l.find("gcloud", "projects", "add-iam-policy-binding")) != 0 {
					t.Error("memory store should not get the database role")
				}
				if !strings.Contains(stderr, "memory") {
					t.Errorf("no warning about the memory store: %s", stderr)
				}
			},
		},
		{
			name:   "scheduler off",
			config: baseConfig + "DEPLOY_SCHEDULER: false\n",
			check: func(t *testing.T, l listing, _, _ string) {
				if len(l.find("gcloud", "scheduler")) != 0 || len(l.find("gcloud", "secrets", "versions", "access")) != 0 ||
					len(l.find("gcloud", "iam", "service-accounts", "create", "tollgate-scheduler")) != 0 ||
					len(l.find("gcloud", "functions", "add-invoker-policy-binding")) != 0 {
					t.Errorf("scheduler disabled but listed: %q", l.commands)
				}
			},
		},
		{
			name:   "pinned secret version in another project",
			config: baseConfig + "OPENAI_KEY: projects/shared-keys/secrets/openai/versions/3\n",
			check: func(t *testing.T, l listing, _, _ string) {
				if len(l.find("gcloud", "secrets", "create", "openai")) != 0 {
					t.Error("a pinned version must not be created")
				}
				g := l.find("gcloud", "secrets", "add-iam-policy-binding", "openai")
				if len(g) != 1 || !hasArg(g[0], "--project=shared-keys") {
					t.Errorf("want an accessor grant in shared-keys, got %q", g)
				}
			},
		},
		{
			name: "existing service accounts by email",
			config: baseConfig + "DEPLOY_SERVICE_ACCOUNT: runner@other-proj.iam.gserviceaccount.com\n" +
				"DEPLOY_SCHEDULER_SERVICE_ACCOUNT: cron@other-proj.iam.gserviceaccount.com\n",
			check: func(t *testing.T, l listing, _, _ string) {
				if len(l.find("gcloud", "iam", "service-accounts")) != 0 {
					t.Errorf("an existing account is neither probed nor created: %q", l.find("gcloud", "iam"))
				}
				if !hasArg(l.find("gcloud", "functions", "deploy", "admin")[0], "--service-account=runner@other-proj.iam.gserviceaccount.com") {
					t.Error("deploy does not run as the given account")
				}
				for _, j := range l.find("gcloud", "scheduler", "jobs", "create") {
					if !hasArg(j, "--oidc-service-account-email=cron@other-proj.iam.gserviceaccount.com") {
						t.Errorf("job does not use the given scheduler account: %q", j)
					}
				}
				path, _ := flagValue(l.find("gcloud", "functions", "deploy", "admin")[0], "--env-vars-file")
				if v := parseEnvFile(t, l.files[path])["SCHEDULER_SERVICE_ACCOUNT"]; v != "cron@other-proj.iam.gserviceaccount.com" {
					t.Errorf("SCHEDULER_SERVICE_ACCOUNT = %q", v)
				}
			},
		},
		{
			name:   "documented variables draw no typo warning",
			config: baseConfig + "LIMITS_SCOPE: cluster\nEVENT_LOGGING: true\nQUOTA_REFRESH_TZ: Europe/Berlin\nCAPTCHA_MODE: proof_of_work\nTOKEN_COST_GPT4O: \"2.5\"\nREJECT_PHRASES: bad word\n",
			check: func(t *testing.T, l listing, _, stderr string) {
				if strings.Contains(stderr, "not a tollgate variable") {
					t.Errorf("documented variables called typos: %s", stderr)
				}
			},
		},
		{
			name:   "unknown application variable warns and passes",
			config: baseConfig + "LOG_LEVLE: debug\n",
			check: func(t *testing.T, l listing, _, stderr string) {
				if !strings.Contains(stderr, "LOG_LEVLE is not a tollgate variable") {
					t.Errorf("no typo warning: %s", stderr)
				}
			},
		},
		{
			name:   "build service account and --update-secrets",
			config: baseConfig + "DEPLOY_BUILD_SERVICE_ACCOUNT: builder@my-proj-123.iam.gserviceaccount.com\n",
			args:   []string{"--update-secrets"},
			check: func(t *testing.T, l listing, _, _ string) {
				want := "--build-service-account=projects/my-proj-123/serviceAccounts/builder@my-proj-123.iam.gserviceaccount.com"
				if !hasArg(l.find("gcloud", "functions", "deploy", "proxy")[0], want) {
					t.Errorf("deploy lacks %s", want)
				}
				if len(l.find("gcloud", "secrets", "versions", "add", "admin-key")) != 1 {
					t.Error("--update-secrets does not show the new version")
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runDeploy(t, tc.config, nil, append([]string{"--dry-run"}, tc.args...)...)
			if strings.Contains(res.stdout+res.stderr, "hunter2-literal") {
				t.Error("a literal secret value was echoed")
			}
			if tc.wantErr != "" {
				if res.err == nil {
					t.Fatalf("want failure %q, got success:\n%s", tc.wantErr, res.stdout)
				}
				if !strings.Contains(res.stderr, tc.wantErr) {
					t.Fatalf("stderr %q lacks %q", res.stderr, tc.wantErr)
				}
				return
			}
			if res.err != nil {
				t.Fatalf("dry run failed: %v\n%s", res.err, res.stderr)
			}
			l := parseListing(t, res.stdout)
			for _, c := range l.commands {
				checkFlags(t, c)
			}
			checkFlagsFiles(t, l)
			tc.check(t, l, res.stdout, res.stderr)
		})
	}
}

// The deploy schedules exactly the actions meant to run on a schedule:
// each is accepted and becomes a job POSTing to its maintenance route
// (prune-events, which the README says to schedule, was refused once).
func TestSchedulableActionsAreTheScheduledOnes(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("bash", "-c", `source ./lib.sh; printf '%s\n' "${SCHEDULABLE_ACTIONS[@]}"`)
	cmd.Dir = deployDir(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	want := slices.Sorted(slices.Values(users.ScheduledActions))
	if !slices.Equal(got, want) {
		t.Fatalf("lib.sh schedules %q; users.ScheduledActions are %q", got, want)
	}
	for _, a := range users.Actions {
		res := runDeploy(t, baseConfig+"DEPLOY_SCHEDULER_ACTIONS: "+a+"\n", nil, "--dry-run")
		if !slices.Contains(users.ScheduledActions, a) {
			if res.err == nil || !strings.Contains(res.stderr, "DEPLOY_SCHEDULER_ACTIONS") {
				t.Errorf("%s, not meant for a schedule, was accepted (%v): %s", a, res.err, res.stderr)
			}
			continue
		}
		if res.err != nil {
			t.Errorf("%s: %v\n%s", a, res.err, res.stderr)
			continue
		}
		if !strings.Contains(res.stdout, "tollgate-"+a) || !strings.Contains(res.stdout, "/maintenance/"+a) {
			t.Errorf("%s: no scheduler job for it in the dry run:\n%s", a, res.stdout)
		}
	}
}

// The deploy knows every variable config reads and no other, so that its
// typo warning is never drawn by a real variable: the list in lib.sh is
// checked against config.Names().
func TestAppVarsAreTheVariablesConfigReads(t *testing.T) {
	t.Parallel()
	names := config.Names()
	script := `source ./lib.sh
printf 'app %s\n' "${APP_VARS[@]}"
printf 'deploy %s\n' "${SCHEDULER_VARS[@]}"
for k in "$@"; do if is_app_var "$k"; then printf 'known %s\n' "$k"; fi; done`
	cmd := exec.Command("bash", append([]string{"-c", script, "bash"}, names...)...)
	cmd.Dir = deployDir(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lists := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		kind, name, _ := strings.Cut(line, " ")
		lists[kind] = append(lists[kind], name)
	}
	// Set by the platform (the deploy refuses them) or by tests only.
	notDeployed := []string{"K_SERVICE", "GOOGLE_CLOUD_PROJECT", "SECRET_MANAGER_EMULATOR_HOST", "FIREBASE_DATABASE_EMULATOR_HOST"}
	for _, name := range names {
		if !slices.Contains(lists["known"], name) && !slices.Contains(lists["deploy"], name) && !slices.Contains(notDeployed, name) {
			t.Errorf("config reads %s, which lib.sh calls a typo: add it to APP_VARS", name)
		}
	}
	for i, name := range lists["app"] {
		if !slices.Contains(names, name) {
			t.Errorf("APP_VARS lists %s, which config does not read", name)
		}
		if slices.Contains(lists["app"][:i], name) {
			t.Errorf("APP_VARS lists %s twice", name)
		}
	}
}

// The functions get GOMEMLIMIT at 85% of the instance's memory, whatever
// unit DEPLOY_MEMORY is given in: Go collects before the instance's limit,
// and the proxy sizes its memory budget for bodies from it.
func TestGoMemLimitFollowsTheInstanceMemory(t *testing.T) {
	t.Parallel()
	for memory, want := range map[string]string{"": "435MiB", "512Mi": "435MiB", "1Gi": "870MiB", "2G": "1620MiB", "4096M": "3320MiB"} {
		config := baseConfig
		if memory != "" {
			config += "DEPLOY_MEMORY: " + memory + "\n"
		}
		res := runDeploy(t, config, map[string]string{"FAKE_EXISTS": "0"})
		if res.err != nil {
			t.Fatalf("%s: %v\n%s", memory, res.err, res.stderr)
		}
		files := logCalls(res.gcloudLog, "ENVFILE")
		if len(files) != 2 {
			t.Fatalf("%s: env files %q", memory, files)
		}
		for _, f := range files {
			if !strings.Contains(f[0], `GOMEMLIMIT: "`+want+`"|`) {
				t.Errorf("DEPLOY_MEMORY %q: env file %q, want GOMEMLIMIT %s", memory, f[0], want)
			}
		}
	}
}
