package config_test

import (
	"bufio"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
)

// dotenv reads an .env file as the original's dotenv did: KEY=value lines,
// surrounding quotes removed. With uncomment, "# KEY=value" lines count
// too: an operator who enabled every documented setting.
func dotenv(t *testing.T, path string, uncomment bool) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := line.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil || (m[1] != "" && !uncomment) {
			continue
		}
		v := strings.TrimSpace(m[3])
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[m[2]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}

func TestOriginalEnvExampleStarts(t *testing.T) {
	for _, uncomment := range []bool{false, true} {
		env := dotenv(t, "testdata/original.env.example", uncomment)
		if uncomment && len(env) < 50 {
			t.Fatalf("read only %d variables from the example", len(env))
		}
		c, err := config.FromMap(env)
		if err != nil {
			t.Fatalf("uncomment=%v: %v", uncomment, err)
		}
		if !uncomment {
			continue
		}
		// Every documented value is honoured as the original would.
		if c.TextRateLimit != 4 || c.ImageRateLimit != 2 {
			t.Errorf("rate limits %d/%d, want 4/2", c.TextRateLimit, c.ImageRateLimit)
		}
		if c.MaxOutputTokens[models.OpenAI] != 400 || c.MaxOutputTokens[models.Anthropic] != 400 {
			t.Errorf("output clamps %v", c.MaxOutputTokens)
		}
		if c.Policies.MaxContext[models.OpenAI] != 16384 || c.Policies.MaxContext[models.AzureOpenAI] != 16384 {
			t.Errorf("MaxContext %v", c.Policies.MaxContext)
		}
		for _, f := range []string{"aws-claude", "gcp-claude-opus", "azure-gpt4o", "mistral-large", "gpt4-32k"} {
			if !c.FamilyAllowed(f) {
				t.Errorf("family %s not allowed", f)
			}
		}
		if c.FamilyAllowed("dall-e") {
			t.Error("dall-e allowed though the example's list leaves it out")
		}
		if c.QuotaRefresh == nil || c.QuotaRefreshSpec != "daily" || !c.MaxIPsAutoBan {
			t.Errorf("QUOTA_REFRESH_PERIOD %q, MAX_IPS_AUTO_BAN %v", c.QuotaRefreshSpec, c.MaxIPsAutoBan)
		}
		for _, phrase := range []string{"phrase one", "PHRASE TWO", "Phrase three, which has a comma", "phrase four"} {
			if !c.Policies.RejectPhrases.Match("x " + phrase + " y") {
				t.Errorf("REJECT_PHRASES does not match %q", phrase)
			}
		}
		if c.Policies.RejectPhrases.Match("phrase three") {
			t.Error("a quoted phrase was split at its comma")
		}
		if c.Policies.RejectMessage != "You can't say that here." || c.Policies.BlockRedirect != "https://roblox.com/" ||
			!slices.Equal(c.Policies.BlockedOrigins, []string{"reddit.com", "9gag.com"}) {
			t.Errorf("policies = %+v", c.Policies)
		}
		if !c.SelfService.AllowNicknameChanges || c.SelfService.ShowTokenCosts {
			t.Errorf("self-service = %+v", c.SelfService)
		}
		// Of the example's other settings (PROMPT_LOGGING=false,
		// USE_INSECURE_COOKIES=false, Google Sheets, credentials) only
		// CHECK_KEYS is applied differently.
		if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], "CHECK_KEYS=true") {
			t.Errorf("warnings = %q", c.Warnings)
		}
	}
}

func TestNoWarningsByDefault(t *testing.T) {
	if c := load(t, map[string]string{}); len(c.Warnings) != 0 {
		t.Errorf("warnings = %q", c.Warnings)
	}
}

// Variables tollgate accepts but applies differently: one warning each,
// saying what tollgate does instead.
// The original counted the OpenAI (and Azure) models it did not know in
// gpt4 and every Gemini in gemini-pro, so its TOKEN_QUOTA_GPT4 and
// TOKEN_QUOTA_GEMINI_PRO limited them; tollgate counts them in families of
// their own, unlimited without a quota of their own. Bringing such a quota
// without theirs is warned of, naming the variables to set.
func TestOriginalQuotasLeftBehindWarn(t *testing.T) {
	c := load(t, map[string]string{"TOKEN_QUOTA_GPT4": "100000", "TOKEN_QUOTA_GEMINI_PRO": "5000", "TOKEN_QUOTA_GPT5": "100000"})
	if len(c.Warnings) != 2 {
		t.Fatalf("warnings = %q, want two", c.Warnings)
	}
	openai, google := c.Warnings[0], c.Warnings[1]
	if !strings.HasPrefix(openai, "TOKEN_QUOTA_GPT4=100000") || !strings.Contains(openai, "TOKEN_QUOTA_O1_PRO") ||
		!strings.Contains(openai, "TOKEN_QUOTA_GPT5_PRO,") || strings.Contains(openai, "TOKEN_QUOTA_GPT5,") ||
		strings.Contains(openai, "TOKEN_QUOTA_GPT4O") || strings.Contains(openai, "GPT_IMAGE") || strings.Contains(openai, "AZURE") {
		t.Errorf("OpenAI warning %q", openai)
	}
	if !strings.HasPrefix(google, "TOKEN_QUOTA_GEMINI_PRO=5000") || !strings.Contains(google, "TOKEN_QUOTA_GEMINI_FLASH") ||
		strings.Contains(google, "GEMINI_IMAGE") || strings.Contains(google, "GCP") {
		t.Errorf("Google warning %q", google)
	}
	// Every family given its quota, or the original's family none: no warning.
	all := map[string]string{"TOKEN_QUOTA_AZURE_GPT4": "7"}
	for _, f := range models.Families {
		if f.Provider == models.AzureOpenAI {
			all["TOKEN_QUOTA_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))] = "7"
		}
	}
	for _, env := range []map[string]string{all, {"TOKEN_QUOTA_GPT4": "0", "TOKEN_QUOTA_GEMINI_PRO": "0"}} {
		if c := load(t, env); len(c.Warnings) != 0 {
			t.Errorf("%v: warnings %q", env, c.Warnings)
		}
	}
	if c := load(t, map[string]string{"TOKEN_QUOTA_AZURE_GPT4": "7"}); len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "TOKEN_QUOTA_AZURE_O3_PRO") {
		t.Errorf("Azure: warnings %q", c.Warnings)
	}
}

func TestDifferencesWarnOnce(t *testing.T) {
	tests := []struct {
		name, value string
		want        string
	}{
		{"SERVICE_INFO_PASSWORD", "hunter2", "public"},
		{"STATIC_SERVICE_INFO", "false", "always static"},
		{"USE_INSECURE_COOKIES", "true", "localhost"},
		{"CHECK_KEYS", "true", "set aside"},
		{"SHOW_RECENT_IMAGES", "true", "no generated images"},
		{"PROXY_ENDPOINT_ROUTE", "/api", "under /proxy"},
		{"ALLOW_AWS_LOGGING", "true", "every AWS credential"},
		{"PROMPT_LOGGING", "true", "never logs prompts"},
		{"SQLITE_DATA_PATH", "/data/db", "GATEKEEPER_STORE"},
		{"EVENT_LOGGING_TRIM", "5", "no conversation hashes"},
		{"MODEL_RATE_LIMIT", "6", "TEXT_MODEL_RATE_LIMIT=6, IMAGE_MODEL_RATE_LIMIT=3"},
		{"MAX_OUTPUT_TOKENS", "300", "MAX_OUTPUT_TOKENS_OPENAI=300, MAX_OUTPUT_TOKENS_ANTHROPIC=300"},
		{"COOKIE_SECRET", "s3cret", "used as SIGNING_KEY"},
		{"ALLOW_IMAGE_PROMPTS", "true", "anthropic,openai"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := load(t, map[string]string{tt.name: tt.value})
			if len(c.Warnings) != 1 || !strings.HasPrefix(c.Warnings[0], tt.name) || !strings.Contains(c.Warnings[0], tt.want) {
				t.Errorf("warnings = %q, want one about %s saying %q", c.Warnings, tt.name, tt.want)
			}
			if tt.name == "COOKIE_SECRET" && strings.Contains(c.Warnings[0], tt.value) {
				t.Error("the secret is in the warning")
			}
		})
	}
	// Values that are what tollgate does anyway are no difference.
	for name, v := range map[string]string{"PROMPT_LOGGING": "false", "GOOGLE_SHEETS_KEY": "k", "STATIC_SERVICE_INFO": "true", "USE_INSECURE_COOKIES": "false", "SHOW_RECENT_IMAGES": "false", "PROXY_ENDPOINT_ROUTE": "/proxy"} {
		if c := load(t, map[string]string{name: v}); len(c.Warnings) != 0 {
			t.Errorf("%s=%s: warnings %q", name, v, c.Warnings)
		}
	}
}

func TestDeprecatedAliases(t *testing.T) {
	t.Run("MODEL_RATE_LIMIT wins over the new names, as in the original", func(t *testing.T) {
		c := load(t, map[string]string{"MODEL_RATE_LIMIT": "9", "TEXT_MODEL_RATE_LIMIT": "2", "IMAGE_MODEL_RATE_LIMIT": "7"})
		if c.TextRateLimit != 9 || c.ImageRateLimit != 4 {
			t.Errorf("limits %d/%d, want 9/4", c.TextRateLimit, c.ImageRateLimit)
		}
	})
	t.Run("MODEL_RATE_LIMIT=0 keeps the text limit; the image limit is at least 1", func(t *testing.T) {
		c := load(t, map[string]string{"MODEL_RATE_LIMIT": "0", "TEXT_MODEL_RATE_LIMIT": "1"})
		if c.TextRateLimit != 1 || c.ImageRateLimit != 1 {
			t.Errorf("limits %d/%d, want 1/1", c.TextRateLimit, c.ImageRateLimit)
		}
	})
	t.Run("MAX_OUTPUT_TOKENS fills only the unset OpenAI and Anthropic clamps", func(t *testing.T) {
		c := load(t, map[string]string{"MAX_OUTPUT_TOKENS": "300", "MAX_OUTPUT_TOKENS_ANTHROPIC": "500"})
		if c.MaxOutputTokens[models.OpenAI] != 300 || c.MaxOutputTokens[models.Anthropic] != 500 || c.MaxOutputTokens[models.GoogleAI] != 1024 {
			t.Errorf("clamps %v", c.MaxOutputTokens)
		}
	})
	t.Run("COOKIE_SECRET is the signing key, before SIGNING_KEY as in the original", func(t *testing.T) {
		c := load(t, map[string]string{"COOKIE_SECRET": " old ", "SIGNING_KEY": "new"})
		if c.SigningKey != "old" || c.SecretValues()["SIGNING_KEY"] != "old" {
			t.Errorf("SigningKey = %q", c.SigningKey)
		}
	})
	t.Run("ALLOW_IMAGE_PROMPTS leaves an explicit service list alone", func(t *testing.T) {
		c := load(t, map[string]string{"ALLOW_IMAGE_PROMPTS": "true", "ALLOWED_VISION_SERVICES": "gcp"})
		if !c.Policies.VisionServices["gcp"] || len(c.Policies.VisionServices) != 1 {
			t.Errorf("vision = %v", c.Policies.VisionServices)
		}
	})
}

func TestPolicySettings(t *testing.T) {
	c := load(t, map[string]string{})
	p := c.Policies
	if len(p.VisionServices) != 0 || p.AllowTools || p.AllowPaid || !p.RejectPhrases.Empty() || len(p.BlockedOrigins) != 0 {
		t.Errorf("default policies refuse nothing but images, tools and paid features: %+v", p)
	}
	if p.RejectMessage == "" || p.BlockMessage == "" || p.MaxContext[models.OpenAI] != 0 {
		t.Errorf("defaults = %+v", p)
	}
	c = load(t, map[string]string{
		"MAX_CONTEXT_TOKENS_ANTHROPIC": "9000", "ALLOWED_VISION_SERVICES": "OpenAI, aws", "ALLOW_OPENAI_TOOL_USAGE": "true",
		"ALLOW_PAID_FEATURES": "TRUE", "REJECT_PHRASES": `bad\s+word,"a, b",(?=x)y`, "REJECT_MESSAGE": `"No."`, "BLOCKED_ORIGINS": "janitorai.com, venus",
	})
	p = c.Policies
	for _, prov := range []models.Provider{models.Anthropic, models.AWSClaude, models.GCPClaude} {
		if p.MaxContext[prov] != 9000 {
			t.Errorf("MaxContext[%s] = %d", prov, p.MaxContext[prov])
		}
	}
	if p.MaxContext[models.OpenAI] != 0 || p.MaxContext[models.GoogleAI] != 0 {
		t.Errorf("MaxContext = %v", p.MaxContext)
	}
	if !p.VisionServices["openai"] || !p.VisionServices["aws"] || len(p.VisionServices) != 2 || !p.AllowTools || !p.AllowPaid {
		t.Errorf("vision %v tools %v paid %v", p.VisionServices, p.AllowTools, p.AllowPaid)
	}
	if config.VisionService(models.AWSMistral) != "aws" || config.VisionService(models.GoogleAI) != "google-ai" {
		t.Error("VisionService names")
	}
	for s, want := range map[string]bool{"a BAD   Word": true, "x A, B y": true, "(?=X)y": true, "xy": false, "bad": false, "a b": false} {
		if p.RejectPhrases.Match(s) != want {
			t.Errorf("phrases match %q: %v", s, !want)
		}
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "plain text") {
		t.Errorf("warnings = %q", c.Warnings)
	}
	if p.RejectMessage != "No." || !slices.Equal(p.BlockedOrigins, []string{"janitorai.com", "venus"}) {
		t.Errorf("policies = %+v", p)
	}
}

// REJECT_PHRASES are the original's JavaScript expressions, whose \s is
// every Unicode space (Go's is ASCII only); an invisible format character
// inside a phrase does not hide it.
func TestRejectPhrasesReadUnicodeSpacesAndFormatCharacters(t *testing.T) {
	c, err := config.FromMap(map[string]string{"REJECT_PHRASES": `forbidden\s+topic,secret plan,秘密计划`})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policies.RejectPhrases
	for s, want := range map[string]bool{
		"the forbidden\u00a0topic":            true,
		"the forbidden\u2003topic":            true,
		"the forbidden\u3000topic":            true,
		"the forbidden\vtopic":                true,
		"the forbidden\u2028\u00a0 topic":     true,
		"a secret\u00a0plan":                  true,
		"a sec\u200bret pl\u200can":           true,
		"a \ufeffsecret\u202fpl\u200dan":      true,
		"这是秘密\u200b计划":                        true,
		"forbiddentopic, a secretplan, 秘密 计划": false,
		"a secret\u200b plan?":                true,
	} {
		if p.Match(s) != want {
			t.Errorf("match %+q: %v, want %v", s, !want, want)
		}
	}
}

// REJECT_PHRASES items are compiled one by one, then joined into one
// expression that can exceed Go's limits although each item is within
// them: start-up must name the variable, not panic. Nesting depth is the
// quick limit to reach (a size past 3.3 million instructions takes
// seconds to compile); the path is the same.
func TestRejectPhrasesBeyondGoLimitsTogetherNameTheVariable(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("(", n) + "a." + strings.Repeat(")", n) }
	n, hi := 1, 2000 // n: the deepest item Go compiles on its own
	for n < hi {
		m := (n + hi + 1) / 2
		if _, err := regexp.Compile(deep(m)); err == nil {
			n = m
		} else {
			hi = m - 1
		}
	}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("FromMap panicked: %.200v", p)
		}
	}()
	_, err := config.FromMap(map[string]string{"REJECT_PHRASES": deep(n) + ",b."})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "REJECT_PHRASES" {
		t.Fatalf("err = %.300v, want a config.Error naming REJECT_PHRASES", err)
	}
	if strings.Contains(err.Error(), deep(10)) {
		t.Errorf("the message quotes the expression: %.300v", err)
	}
}

func TestSelfServiceSettings(t *testing.T) {
	c := load(t, map[string]string{})
	if !c.SelfService.AllowNicknameChanges || c.SelfService.ShowTokenCosts {
		t.Errorf("defaults %+v", c.SelfService)
	}
	if c.SelfService.Prices["aws-claude"] != c.SelfService.Prices["claude"] || c.SelfService.Prices["claude"] <= 0 {
		t.Errorf("prices %v", c.SelfService.Prices)
	}
	c = load(t, map[string]string{"ALLOW_NICKNAME_CHANGES": "false", "SHOW_TOKEN_COSTS": "true", "TOKEN_COST_AWS_CLAUDE": "3.5"})
	if c.SelfService.AllowNicknameChanges || !c.SelfService.ShowTokenCosts || c.SelfService.Prices["aws-claude"] != 3.5 || c.SelfService.Prices["claude"] == 3.5 {
		t.Errorf("%+v", c.SelfService)
	}
	if models.Prices()["aws-claude"] == 3.5 {
		t.Error("an override changed the built-in table")
	}
}

func TestOriginalInvalidValues(t *testing.T) {
	tests := []struct {
		env     map[string]string
		wantVar string
		want    string
	}{
		{map[string]string{"ALLOWED_VISION_SERVICES": "openai,bing"}, "ALLOWED_VISION_SERVICES", `"bing"; known: openai`},
		{map[string]string{"MAX_CONTEXT_TOKENS_OPENAI": "-1"}, "MAX_CONTEXT_TOKENS_OPENAI", "whole number"},
		{map[string]string{"ALLOW_OPENAI_TOOL_USAGE": "sometimes"}, "ALLOW_OPENAI_TOOL_USAGE", "true or false"},
		{map[string]string{"ALLOW_PAID_FEATURES": "search only"}, "ALLOW_PAID_FEATURES", "true or false"},
		{map[string]string{"ALLOW_NICKNAME_CHANGES": "2x"}, "ALLOW_NICKNAME_CHANGES", "true or false"},
		{map[string]string{"SHOW_TOKEN_COSTS": "yes please"}, "SHOW_TOKEN_COSTS", "true or false"},
		{map[string]string{"TOKEN_COST_GPT4O": "-2"}, "TOKEN_COST_GPT4O", "US dollars per million"},
		{map[string]string{"TOKEN_COST_CLAUDE": "NaN"}, "TOKEN_COST_CLAUDE", "US dollars per million"},
		{map[string]string{"TOKEN_COST_GPT9": "1"}, "TOKEN_COST_GPT9", "unknown model family"},
		{map[string]string{"BLOCK_REDIRECT": "javascript:alert(1)"}, "BLOCK_REDIRECT", "http(s) URL"},
		{map[string]string{"MODEL_RATE_LIMIT": "fast"}, "MODEL_RATE_LIMIT", "whole number"},
		{map[string]string{"MAX_OUTPUT_TOKENS": "-4"}, "MAX_OUTPUT_TOKENS", "whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.wantVar, func(t *testing.T) {
			_, err := config.FromMap(tt.env)
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Var != tt.wantVar || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %s saying %q", err, tt.wantVar, tt.want)
			}
		})
	}
}

func TestQuotaRefreshSecondsAndZone(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec, tz, from, want string
	}{
		// The original's documented example, quotes and all.
		{`"*/45 * * * * *"`, "", "2026-03-01T10:00:01Z", "2026-03-01T10:00:45Z"},
		{"*/45 * * * * *", "", "2026-03-01T10:00:45Z", "2026-03-01T10:01:00Z"},
		{"30 0 12 * * *", "", "2026-03-01T12:00:00Z", "2026-03-01T12:00:30Z"},
		{"daily", "UTC", "2026-03-01T10:30:00Z", "2026-03-02T00:00:00Z"},
		// Midnight in Berlin (UTC+1 in March) is 23:00 UTC.
		{"daily", "Europe/Berlin", "2026-03-01T10:30:00Z", "2026-03-01T23:00:00Z"},
		{"0 12 * * *", "America/New_York", "2026-03-01T10:30:00Z", "2026-03-01T17:00:00Z"},
		// An expression's own zone prefix wins.
		{"CRON_TZ=Asia/Tokyo 0 0 * * *", "Europe/Berlin", "2026-03-01T10:30:00Z", "2026-03-01T15:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.spec+"@"+tt.tz, func(t *testing.T) {
			env := map[string]string{"QUOTA_REFRESH_PERIOD": tt.spec}
			if tt.tz != "" {
				env["QUOTA_REFRESH_TZ"] = tt.tz
			}
			c := load(t, env)
			if got := c.QuotaRefresh.Next(at(tt.from)); !got.Equal(at(tt.want)) {
				t.Errorf("Next(%s) = %s, want %s", tt.from, got.UTC(), tt.want)
			}
		})
	}
}

// originalVars reads testdata/original-vars.txt: every variable of the
// original's config.ts with a value it accepts (quotes as a .env has them).
func originalVars(t *testing.T) (names []string, env map[string]string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/original-vars.txt")
	if err != nil {
		t.Fatal(err)
	}
	env = map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		names = append(names, k)
		if k == "TOKEN_QUOTA_<FAMILY>" {
			for _, f := range []string{"turbo", "gpt4", "gpt4-32k", "gpt4-turbo", "gpt4o", "dall-e", "claude", "claude-opus", "gemini-pro",
				"mistral-tiny", "mistral-small", "mistral-medium", "mistral-large", "aws-claude", "aws-claude-opus", "gcp-claude",
				"gcp-claude-opus", "azure-turbo", "azure-gpt4", "azure-gpt4-32k", "azure-gpt4-turbo", "azure-gpt4o", "azure-dall-e"} {
				env["TOKEN_QUOTA_"+strings.ToUpper(strings.ReplaceAll(f, "-", "_"))] = v
			}
			continue
		}
		env[k] = v
	}
	if len(names) < 60 {
		t.Fatalf("only %d variables listed", len(names))
	}
	return names, env
}

// Names, which the deploy's list of variables is checked against, holds
// the variables of the original that tollgate reads (if only to warn) and
// each family's TOKEN_QUOTA_ and TOKEN_COST_.
func TestNamesHoldsEveryVariableRead(t *testing.T) {
	names := config.Names()
	want, _ := originalVars(t)
	want = append(want, "PROXY_KEY", "SIGNING_KEY", "LIMITS_SCOPE", "CAPTCHA_MODE", "EVENT_RETENTION_DAYS", "TOKEN_COST_GPT4O", "SCHEDULER_AUDIENCE", "AZURE_CREDENTIALS")
	// The original's variables tollgate ignores: the platform's, or
	// prompt logging's beyond PROMPT_LOGGING.
	ignored := []string{"BIND_ADDRESS", "NODE_ENV", "PORT", "PROMPT_LOGGING_BACKEND", "PROMPT_LOGGING_FILE_PREFIX", "GOOGLE_SHEETS_KEY", "GOOGLE_SHEETS_SPREADSHEET_ID"}
	for _, name := range want {
		if slices.Contains(ignored, name) {
			continue
		}
		if name == "TOKEN_QUOTA_<FAMILY>" {
			name = "TOKEN_QUOTA_GPT4O"
		}
		if !slices.Contains(names, name) {
			t.Errorf("Names lacks %s", name)
		}
	}
	if !slices.IsSorted(names) {
		t.Error("Names is not sorted")
	}
}

// Every variable of the original, alone and all together, starts tollgate
// with the values the original accepts.
func TestEveryOriginalVariableStarts(t *testing.T) {
	names, all := originalVars(t)
	for _, name := range names {
		env := map[string]string{}
		for k, v := range all {
			if k == name || (name == "TOKEN_QUOTA_<FAMILY>" && strings.HasPrefix(k, "TOKEN_QUOTA_")) {
				env[k] = v
			}
		}
		if name == "GATEKEEPER" {
			env["ADMIN_KEY"] = all["ADMIN_KEY"]
		}
		if _, err := config.FromMap(env); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, err := config.FromMap(all)
	if err != nil {
		t.Fatalf("all together: %v", err)
	}
	if c.TokenQuota["azure-dall-e"] != 100000 || c.QuotaRefreshSpec != "*/45 * * * * *" || !c.FamilyAllowed("azure-gpt4-32k") {
		t.Errorf("quota %v, refresh %q", c.TokenQuota, c.QuotaRefreshSpec)
	}
}

// The README's migration table has a row for every variable of the
// original.
func TestReadmeMigrationTableIsComplete(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	start := strings.Index(readme, "## Migrating from oai-reverse-proxy")
	if start < 0 {
		t.Fatal("README has no migration section")
	}
	section := readme[start+3:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(first, -1) {
			rows[m[1]] = true
		}
	}
	names, _ := originalVars(t)
	for _, name := range names {
		if !rows[name] {
			t.Errorf("no row for %s", name)
		}
	}
}
