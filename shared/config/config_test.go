package config_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/providers"
)

func load(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	c, err := config.FromMap(env)
	if err != nil {
		t.Fatalf("FromMap(%v): %v", env, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := load(t, map[string]string{})
	if c.Gatekeeper != config.ModeNone {
		t.Errorf("Gatekeeper = %q, want none", c.Gatekeeper)
	}
	if c.Store != config.StoreMemory {
		t.Errorf("Store = %q, want memory off Cloud Functions", c.Store)
	}
	for _, ip := range []string{"1.2.3.4", "255.255.255.255", "::1", "2001:db8::1"} {
		if !c.AdminWhitelist.Contains(ip) {
			t.Errorf("default ADMIN_WHITELIST does not contain %s", ip)
		}
	}
	if c.IPBlacklist.String() != "" || c.IPBlacklist.Contains("1.2.3.4") || c.IPBlacklist.Contains("::1") {
		t.Errorf("default IP_BLACKLIST = %q, want empty", c.IPBlacklist)
	}
	if c.TrustedProxies != 1 {
		t.Errorf("TrustedProxies = %d, want 1", c.TrustedProxies)
	}
	if c.FirebaseUsersRef != "users" {
		t.Errorf("FirebaseUsersRef = %q", c.FirebaseUsersRef)
	}
	if c.MaxIPsPerUser != 0 || c.MaxIPsAutoBan {
		t.Errorf("MaxIPsPerUser = %d, MaxIPsAutoBan = %v; want 0, false", c.MaxIPsPerUser, c.MaxIPsAutoBan)
	}
	if len(c.TokenQuota) != 0 {
		t.Errorf("TokenQuota = %v, want none", c.TokenQuota)
	}
	if c.QuotaRefresh != nil || c.QuotaRefreshSpec != "" {
		t.Errorf("QuotaRefresh set by default: %q", c.QuotaRefreshSpec)
	}
	if c.TextRateLimit != 4 || c.ImageRateLimit != 4 {
		t.Errorf("rate limits = %d/%d, want 4/4", c.TextRateLimit, c.ImageRateLimit)
	}
	if c.ConcurrencyLimit != 1 {
		t.Errorf("ConcurrencyLimit = %d, want 1", c.ConcurrencyLimit)
	}
	if c.BodyMemoryMB != 0 {
		t.Errorf("BodyMemoryMB = %d, want 0 (sized from the Go memory limit)", c.BodyMemoryMB)
	}
	want := models.TextFamilies()
	got := slices.Sorted(maps.Keys(c.AllowedFamilies))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("AllowedFamilies = %v, want every text family %v", got, want)
	}
	if c.FamilyAllowed("dall-e") || c.FamilyAllowed("gpt-image") {
		t.Error("image families allowed by default")
	}
	for _, prov := range providers.All() {
		p := prov.ID
		if c.MaxOutputTokens[p] != 1024 {
			t.Errorf("MaxOutputTokens[%s] = %d, want 1024", p, c.MaxOutputTokens[p])
		}
		if c.BaseURLs[p] != prov.Env.DefaultBaseURL {
			t.Errorf("BaseURLs[%s] = %q", p, c.BaseURLs[p])
		}
		if c.Served(p) {
			t.Errorf("%s served without a key", p)
		}
	}
	if c.ErrorFormat != config.ErrorsNative {
		t.Errorf("ErrorFormat = %q", c.ErrorFormat)
	}
	if c.UserCacheTTL != 5*time.Second {
		t.Errorf("UserCacheTTL = %s", c.UserCacheTTL)
	}
	if c.LogLevel != "info" {
		t.Errorf("LogLevel = %q", c.LogLevel)
	}
	if c.OnCloud {
		t.Error("OnCloud without K_SERVICE")
	}
}

func TestValidValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c *config.Config)
	}{
		{"proxy_key mode", map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": "pk"}, func(t *testing.T, c *config.Config) {
			if c.Gatekeeper != config.ModeProxyKey || c.ProxyKey != "pk" {
				t.Errorf("got %q %q", c.Gatekeeper, c.ProxyKey)
			}
		}},
		{"user_token mode, upper case", map[string]string{"GATEKEEPER": " USER_TOKEN ", "ADMIN_KEY": "ak"}, func(t *testing.T, c *config.Config) {
			if c.Gatekeeper != config.ModeUserToken || c.AdminKey != "ak" {
				t.Errorf("got %q %q", c.Gatekeeper, c.AdminKey)
			}
		}},
		{"secrets are trimmed", map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": " pk\n", "ADMIN_KEY": "ak\r\n", "SIGNING_KEY": " sk ", "FIREBASE_KEY": "e30=\n"}, func(t *testing.T, c *config.Config) {
			if c.ProxyKey != "pk" || c.AdminKey != "ak" || c.SigningKey != "sk" || c.FirebaseKey != "e30=" {
				t.Errorf("got %q %q %q %q", c.ProxyKey, c.AdminKey, c.SigningKey, c.FirebaseKey)
			}
		}},
		{"explicit memory store on cloud", map[string]string{"K_SERVICE": "proxy", "GATEKEEPER_STORE": "memory"}, func(t *testing.T, c *config.Config) {
			if c.Store != config.StoreMemory || !c.OnCloud {
				t.Errorf("Store = %q, OnCloud = %v", c.Store, c.OnCloud)
			}
		}},
		{"K_SERVICE defaults the store to firebase_rtdb", map[string]string{"K_SERVICE": "proxy", "FIREBASE_RTDB_URL": "https://p-default-rtdb.firebaseio.com/"}, func(t *testing.T, c *config.Config) {
			if c.Store != config.StoreFirebase {
				t.Errorf("Store = %q, want firebase_rtdb", c.Store)
			}
			if c.FirebaseRTDBURL != "https://p-default-rtdb.firebaseio.com" {
				t.Errorf("FirebaseRTDBURL = %q, want trailing slash trimmed", c.FirebaseRTDBURL)
			}
		}},
		{"firebase settings", map[string]string{"GATEKEEPER_STORE": "firebase_rtdb", "FIREBASE_RTDB_URL": "http://127.0.0.1:9000", "FIREBASE_USERS_REF_NAME": "tenants/a/users", "FIREBASE_DATABASE_EMULATOR_HOST": "127.0.0.1:9000"}, func(t *testing.T, c *config.Config) {
			if c.Store != config.StoreFirebase || c.FirebaseUsersRef != "tenants/a/users" || c.FirebaseEmulatorHost != "127.0.0.1:9000" {
				t.Errorf("got %q %q %q", c.Store, c.FirebaseUsersRef, c.FirebaseEmulatorHost)
			}
		}},
		{"address lists", map[string]string{"ADMIN_WHITELIST": "10.0.0.0/8, 2001:db8::/32", "IP_BLACKLIST": "192.0.2.1"}, func(t *testing.T, c *config.Config) {
			if !c.AdminWhitelist.Contains("10.9.8.7") || !c.AdminWhitelist.Contains("2001:db8::5") || c.AdminWhitelist.Contains("11.0.0.1") {
				t.Errorf("AdminWhitelist = %q wrong", c.AdminWhitelist)
			}
			if !c.IPBlacklist.Contains("192.0.2.1") || c.IPBlacklist.Contains("192.0.2.2") {
				t.Errorf("IPBlacklist = %q wrong", c.IPBlacklist)
			}
		}},
		{"trusted proxies 0", map[string]string{"TRUSTED_PROXIES": "0"}, func(t *testing.T, c *config.Config) {
			if c.TrustedProxies != 0 {
				t.Errorf("TrustedProxies = %d", c.TrustedProxies)
			}
		}},
		{"ip limits", map[string]string{"MAX_IPS_PER_USER": "3", "MAX_IPS_AUTO_BAN": "TRUE"}, func(t *testing.T, c *config.Config) {
			if c.MaxIPsPerUser != 3 || !c.MaxIPsAutoBan {
				t.Errorf("got %d %v", c.MaxIPsPerUser, c.MaxIPsAutoBan)
			}
		}},
		{"quotas by family, dash becomes underscore", map[string]string{"TOKEN_QUOTA_GPT4O": "100000", "TOKEN_QUOTA_GPT4_TURBO": "5000", "TOKEN_QUOTA_CLAUDE_OPUS": "7", "TOKEN_QUOTA_CLAUDE": "0"}, func(t *testing.T, c *config.Config) {
			want := map[string]int64{"gpt4o": 100000, "gpt4-turbo": 5000, "claude-opus": 7}
			if !maps.Equal(c.TokenQuota, want) {
				t.Errorf("TokenQuota = %v, want %v (0 is unlimited and left out)", c.TokenQuota, want)
			}
		}},
		{"rate and concurrency limits, 0 disables", map[string]string{"TEXT_MODEL_RATE_LIMIT": "0", "IMAGE_MODEL_RATE_LIMIT": "2", "USER_CONCURRENCY_LIMIT": "0"}, func(t *testing.T, c *config.Config) {
			if c.TextRateLimit != 0 || c.ImageRateLimit != 2 || c.ConcurrencyLimit != 0 {
				t.Errorf("got %d %d %d", c.TextRateLimit, c.ImageRateLimit, c.ConcurrencyLimit)
			}
			if c.RateLimitFor("dall-e") != 2 || c.RateLimitFor("gpt4o") != 0 || c.RateLimitFor("nosuch") != 0 {
				t.Errorf("RateLimitFor wrong: dall-e %d gpt4o %d", c.RateLimitFor("dall-e"), c.RateLimitFor("gpt4o"))
			}
		}},
		{"allowed families", map[string]string{"ALLOWED_MODEL_FAMILIES": "gpt4o, Claude,dall-e,"}, func(t *testing.T, c *config.Config) {
			want := []string{"claude", "dall-e", "gpt4o"}
			if got := slices.Sorted(maps.Keys(c.AllowedFamilies)); !slices.Equal(got, want) {
				t.Errorf("AllowedFamilies = %v, want %v", got, want)
			}
			if c.FamilyAllowed("gpt4") {
				t.Error("gpt4 allowed")
			}
		}},
		{"output clamps", map[string]string{"MAX_OUTPUT_TOKENS_OPENAI": "0", "MAX_OUTPUT_TOKENS_ANTHROPIC": "4096", "MAX_OUTPUT_TOKENS_GOOGLE_AI": "8192", "MAX_OUTPUT_TOKENS_MISTRAL_AI": "1", "MAX_OUTPUT_TOKENS_AWS": "300", "MAX_OUTPUT_TOKENS_GCP": "2048", "MAX_OUTPUT_TOKENS_AZURE": "512"}, func(t *testing.T, c *config.Config) {
			want := map[models.Provider]int64{models.OpenAI: 0, models.Anthropic: 4096, models.GoogleAI: 8192, models.MistralAI: 1,
				models.OpenAIImage: 0,                           // OpenAI's variables
				models.AWSClaude:   300, models.AWSMistral: 300, // both Bedrock mounts share one clamp
				models.GCPClaude: 2048, models.GCPGemini: 2048, // both Vertex mounts share one clamp
				models.AzureOpenAI: 512}
			if !maps.Equal(c.MaxOutputTokens, want) {
				t.Errorf("MaxOutputTokens = %v", c.MaxOutputTokens)
			}
		}},
		{"provider keys as comma lists", map[string]string{"OPENAI_KEY": "sk-1, sk-2,,", "ANTHROPIC_KEY": "sk-ant", "GOOGLE_AI_KEY": " , "}, func(t *testing.T, c *config.Config) {
			if !slices.Equal(c.ProviderKeys[models.OpenAI], []string{"sk-1", "sk-2"}) || !slices.Equal(c.ProviderKeys[models.Anthropic], []string{"sk-ant"}) {
				t.Errorf("ProviderKeys = %v", c.ProviderKeys)
			}
			if !c.Served(models.OpenAI) || c.Served(models.GoogleAI) || c.Served(models.MistralAI) {
				t.Errorf("Served wrong: %v", c.ProviderKeys)
			}
		}},
		{"base URLs", map[string]string{"OPENAI_BASE_URL": "http://127.0.0.1:8080/", "MISTRAL_AI_BASE_URL": "https://gw.example.com/mistral"}, func(t *testing.T, c *config.Config) {
			if c.BaseURLs[models.OpenAI] != "http://127.0.0.1:8080" || c.BaseURLs[models.MistralAI] != "https://gw.example.com/mistral" {
				t.Errorf("BaseURLs = %v", c.BaseURLs)
			}
		}},
		{"limits scope", map[string]string{"LIMITS_SCOPE": "Cluster"}, func(t *testing.T, c *config.Config) {
			if c.LimitsScope != config.LimitsCluster {
				t.Errorf("LimitsScope = %q", c.LimitsScope)
			}
		}},
		{"error format, cache, log level", map[string]string{"ERROR_FORMAT": "completion", "USER_CACHE_TTL": "0s", "LOG_LEVEL": "DEBUG"}, func(t *testing.T, c *config.Config) {
			if c.ErrorFormat != config.ErrorsCompletion || c.UserCacheTTL != 0 || c.LogLevel != "debug" {
				t.Errorf("got %q %s %q", c.ErrorFormat, c.UserCacheTTL, c.LogLevel)
			}
		}},
		{"cache ttl upper bound", map[string]string{"USER_CACHE_TTL": "1h"}, func(t *testing.T, c *config.Config) {
			if c.UserCacheTTL != time.Hour {
				t.Errorf("UserCacheTTL = %s", c.UserCacheTTL)
			}
		}},
		{"events", map[string]string{"EVENT_LOGGING": "true", "EVENT_RETENTION_DAYS": "7"}, func(t *testing.T, c *config.Config) {
			if !c.EventLogging || c.EventRetention != 7*24*time.Hour {
				t.Errorf("EventLogging %v, EventRetention %s", c.EventLogging, c.EventRetention)
			}
		}},
		{"events by default", map[string]string{}, func(t *testing.T, c *config.Config) {
			if c.EventLogging || c.EventRetention != 30*24*time.Hour {
				t.Errorf("EventLogging %v, EventRetention %s; want off, 30 days", c.EventLogging, c.EventRetention)
			}
		}},
		{"platform", map[string]string{"GOOGLE_CLOUD_PROJECT": "p1", "SECRET_MANAGER_EMULATOR_HOST": "127.0.0.1:1", "SIGNING_KEY": "sig"}, func(t *testing.T, c *config.Config) {
			if c.Project != "p1" || c.SecretEmulatorHost != "127.0.0.1:1" || c.SigningKey != "sig" {
				t.Errorf("got %q %q %q", c.Project, c.SecretEmulatorHost, c.SigningKey)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, load(t, tt.env))
		})
	}
}

// secretEnv sets every secret-valued variable to a recognisable value, so
// a test can prove none of them reaches an error message.
var secretEnv = map[string]string{
	"PROXY_KEY":      "secret-proxy-key-1111",
	"ADMIN_KEY":      "secret-admin-key-2222",
	"FIREBASE_KEY":   "c2VjcmV0LWZpcmViYXNlLTMzMzM=",
	"SIGNING_KEY":    "secret-signing-key-4444",
	"OPENAI_KEY":     "sk-secret-openai-5555,sk-secret-openai-6666",
	"ANTHROPIC_KEY":  "sk-ant-secret-7777",
	"GOOGLE_AI_KEY":  "secret-google-8888",
	"MISTRAL_AI_KEY": "secret-mistral-9999",
}

func TestInvalidValues(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		want    []string // substrings of the message: what is accepted
	}{
		{"gatekeeper", map[string]string{"GATEKEEPER": "foo"}, "GATEKEEPER", []string{`"foo"`, "none", "proxy_key", "user_token"}},
		{"store", map[string]string{"GATEKEEPER_STORE": "redis"}, "GATEKEEPER_STORE", []string{`"redis"`, "memory", "firebase_rtdb"}},
		{"whitelist prefix too long", map[string]string{"ADMIN_WHITELIST": "10.0.0.0/33"}, "ADMIN_WHITELIST", []string{"10.0.0.0/33", "CIDR"}},
		{"blacklist garbage", map[string]string{"IP_BLACKLIST": "nope"}, "IP_BLACKLIST", []string{"nope", "CIDR"}},
		{"trusted proxies negative", map[string]string{"TRUSTED_PROXIES": "-1"}, "TRUSTED_PROXIES", []string{`"-1"`, "whole number from 0"}},
		{"trusted proxies word", map[string]string{"TRUSTED_PROXIES": "one"}, "TRUSTED_PROXIES", []string{"whole number"}},
		{"refresh period", map[string]string{"QUOTA_REFRESH_PERIOD": "every tuesday"}, "QUOTA_REFRESH_PERIOD", []string{"every tuesday", "hourly", "daily", "cron"}},
		{"refresh period seven fields", map[string]string{"QUOTA_REFRESH_PERIOD": "0 0 0 * * * *"}, "QUOTA_REFRESH_PERIOD", []string{"5 fields", "6 with seconds"}},
		{"refresh time zone", map[string]string{"QUOTA_REFRESH_PERIOD": "daily", "QUOTA_REFRESH_TZ": "Mars/Olympus"}, "QUOTA_REFRESH_TZ", []string{"Mars/Olympus", "IANA time zone"}},
		{"quota not a number", map[string]string{"TOKEN_QUOTA_GPT4O": "lots"}, "TOKEN_QUOTA_GPT4O", []string{`"lots"`, "whole number"}},
		{"quota negative", map[string]string{"TOKEN_QUOTA_CLAUDE": "-5"}, "TOKEN_QUOTA_CLAUDE", []string{"whole number from 0"}},
		{"quota unknown family", map[string]string{"TOKEN_QUOTA_NOSUCH": "5"}, "TOKEN_QUOTA_NOSUCH", []string{"unknown model family", "gpt4o", "claude"}},
		{"allowed families unknown", map[string]string{"ALLOWED_MODEL_FAMILIES": "gpt4o,gpt9"}, "ALLOWED_MODEL_FAMILIES", []string{`"gpt9"`, "known:", "gpt4o"}},
		{"auto ban", map[string]string{"MAX_IPS_AUTO_BAN": "maybe"}, "MAX_IPS_AUTO_BAN", []string{`"maybe"`, "true or false"}},
		{"max ips", map[string]string{"MAX_IPS_PER_USER": "-1"}, "MAX_IPS_PER_USER", []string{"whole number"}},
		{"text rate", map[string]string{"TEXT_MODEL_RATE_LIMIT": "4.5"}, "TEXT_MODEL_RATE_LIMIT", []string{"whole number"}},
		{"image rate", map[string]string{"IMAGE_MODEL_RATE_LIMIT": "x"}, "IMAGE_MODEL_RATE_LIMIT", []string{"whole number"}},
		{"concurrency", map[string]string{"USER_CONCURRENCY_LIMIT": "-2"}, "USER_CONCURRENCY_LIMIT", []string{"whole number"}},
		{"body memory", map[string]string{"BODY_MEMORY_LIMIT_MB": "1.5"}, "BODY_MEMORY_LIMIT_MB", []string{`"1.5"`, "whole number from 0"}},
		{"body memory negative", map[string]string{"BODY_MEMORY_LIMIT_MB": "-1"}, "BODY_MEMORY_LIMIT_MB", []string{"whole number from 0"}},
		{"output clamp", map[string]string{"MAX_OUTPUT_TOKENS_ANTHROPIC": "big"}, "MAX_OUTPUT_TOKENS_ANTHROPIC", []string{"whole number"}},
		{"cache ttl word", map[string]string{"USER_CACHE_TTL": "forever"}, "USER_CACHE_TTL", []string{`"forever"`, "duration"}},
		{"cache ttl negative", map[string]string{"USER_CACHE_TTL": "-1s"}, "USER_CACHE_TTL", []string{"duration"}},
		{"cache ttl too long", map[string]string{"USER_CACHE_TTL": "2h"}, "USER_CACHE_TTL", []string{"1h0m0s"}},
		{"error format", map[string]string{"ERROR_FORMAT": "xml"}, "ERROR_FORMAT", []string{`"xml"`, "native", "completion"}},
		{"limits scope", map[string]string{"LIMITS_SCOPE": "global"}, "LIMITS_SCOPE", []string{`"global"`, "instance", "cluster"}},
		{"event logging", map[string]string{"EVENT_LOGGING": "sometimes"}, "EVENT_LOGGING", []string{`"sometimes"`, "true or false"}},
		{"event retention zero", map[string]string{"EVENT_RETENTION_DAYS": "0"}, "EVENT_RETENTION_DAYS", []string{"whole number from 1 to 3650"}},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL", []string{`"loud"`, "debug", "info", "warn"}},
		// A key list written one a line (a YAML block, a file) is one key
		// with line breaks, which no header can carry: every request
		// would fail with 502.
		{"keys one a line", map[string]string{"OPENAI_KEY": "sk-line-aaaa\nsk-line-bbbb"}, "OPENAI_KEY", []string{"entry 1", "comma"}},
		{"keys split by spaces", map[string]string{"MISTRAL_AI_KEY": "mk-aaaa mk-bbbb"}, "MISTRAL_AI_KEY", []string{"entry 1", "comma"}},
		{"key with a tab", map[string]string{"ANTHROPIC_KEY": "sk-ant-a,sk-ant-\tb"}, "ANTHROPIC_KEY", []string{"entry 2"}},
		{"key with a control character", map[string]string{"GOOGLE_AI_KEY": "AIza\x00b"}, "GOOGLE_AI_KEY", []string{"entry 1"}},
		{"base url scheme", map[string]string{"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL", []string{"ftp://x", "http(s) URL"}},
		{"base url without host", map[string]string{"ANTHROPIC_BASE_URL": "https://"}, "ANTHROPIC_BASE_URL", []string{"http(s) URL"}},
		{"base url with query", map[string]string{"GOOGLE_AI_BASE_URL": "https://x.example/?a=b"}, "GOOGLE_AI_BASE_URL", []string{"without a query"}},
		{"user_token without ADMIN_KEY", map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": ""}, "ADMIN_KEY", []string{"required when GATEKEEPER=user_token"}},
		{"user_token with blank ADMIN_KEY", map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": "  "}, "ADMIN_KEY", []string{"required"}},
		{"proxy_key without PROXY_KEY", map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": ""}, "PROXY_KEY", []string{"required when GATEKEEPER=proxy_key"}},
		{"firebase without URL", map[string]string{"GATEKEEPER_STORE": "firebase_rtdb"}, "FIREBASE_RTDB_URL", []string{"required when GATEKEEPER_STORE=firebase_rtdb"}},
		{"K_SERVICE without URL", map[string]string{"K_SERVICE": "proxy"}, "FIREBASE_RTDB_URL", []string{"required when GATEKEEPER_STORE=firebase_rtdb"}},
		{"firebase URL not a URL", map[string]string{"GATEKEEPER_STORE": "firebase_rtdb", "FIREBASE_RTDB_URL": "my-db"}, "FIREBASE_RTDB_URL", []string{"http(s) URL"}},
		{"users ref with a dot", map[string]string{"FIREBASE_USERS_REF_NAME": "users.v2"}, "FIREBASE_USERS_REF_NAME", []string{". $ # [ ]"}},
		{"users ref only slashes", map[string]string{"FIREBASE_USERS_REF_NAME": "//"}, "FIREBASE_USERS_REF_NAME", []string{"database path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, withSecrets := range []bool{false, true} {
				env := maps.Clone(tt.env)
				if withSecrets {
					// A variable the case sets, even to "", stays as set.
					for k, v := range secretEnv {
						if _, set := env[k]; !set {
							env[k] = v
						}
					}
				}
				c, err := config.FromMap(env)
				if err == nil {
					t.Fatalf("FromMap(%v) = %+v, want an error", env, c)
				}
				if c != nil {
					t.Errorf("FromMap returned a config with its error")
				}
				var ce *config.Error
				if !errors.As(err, &ce) {
					t.Fatalf("error %T %v is not a *config.Error", err, err)
				}
				if ce.Var != tt.wantVar {
					t.Errorf("Var = %q, want %q (%v)", ce.Var, tt.wantVar, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, tt.wantVar) {
					t.Errorf("message %q does not name %s", msg, tt.wantVar)
				}
				for _, w := range tt.want {
					if !strings.Contains(msg, w) {
						t.Errorf("message %q does not contain %q", msg, w)
					}
				}
				if strings.Count(msg, "\n") != 0 {
					t.Errorf("message is not one line: %q", msg)
				}
				for k, v := range secretEnv {
					for _, part := range strings.Split(v, ",") {
						if strings.Contains(msg, part) {
							t.Errorf("message %q leaks the value of %s", msg, k)
						}
					}
				}
			}
		})
	}
}

// Several bad variables still give exactly one error: the first met.
func TestOneErrorForSeveralBadValues(t *testing.T) {
	_, err := config.FromMap(map[string]string{"GATEKEEPER": "foo", "LOG_LEVEL": "loud", "TRUSTED_PROXIES": "x"})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "GATEKEEPER" {
		t.Fatalf("err = %v, want one *config.Error for GATEKEEPER", err)
	}
	if errors.Unwrap(err) != nil {
		t.Errorf("error wraps another: %v", err)
	}
}

func TestLoadEnviron(t *testing.T) {
	c, err := config.Load([]string{
		"GATEKEEPER=user_token",
		"ADMIN_KEY=a=b==", // values may hold '='
		"NOEQUALS",
		"TOKEN_QUOTA_GPT4O=10",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminKey != "a=b==" || c.TokenQuota["gpt4o"] != 10 {
		t.Errorf("AdminKey = %q, TokenQuota = %v", c.AdminKey, c.TokenQuota)
	}
	// A later duplicate wins, as with os.Setenv: cmd/local appends defaults.
	c, err = config.Load([]string{"GATEKEEPER=", "GATEKEEPER=user_token", "ADMIN_KEY=x"})
	if err != nil || c.Gatekeeper != config.ModeUserToken {
		t.Errorf("duplicate: %v %v", c, err)
	}
}

func TestQuotaRefreshPeriod(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec     string
		from     string
		wantNext string
	}{
		{"hourly", "2026-03-01T10:30:00Z", "2026-03-01T11:00:00Z"},
		{"hourly", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"}, // a boundary is not its own next
		{"HOURLY", "2026-03-01T23:59:59Z", "2026-03-02T00:00:00Z"},
		{"daily", "2026-03-01T10:30:00Z", "2026-03-02T00:00:00Z"},
		{"daily", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00Z"},
		{"*/15 * * * *", "2026-03-01T10:31:00Z", "2026-03-01T10:45:00Z"},
		{"0 6 * * 1", "2026-03-01T10:00:00Z", "2026-03-02T06:00:00Z"}, // Sunday → Monday 06:00 UTC
		{"0 0 1 * *", "2026-02-15T00:00:00Z", "2026-03-01T00:00:00Z"},
		// Times in other zones are still read in UTC.
		{"daily", "2026-03-01T23:30:00-05:00", "2026-03-03T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.spec+"@"+tt.from, func(t *testing.T) {
			c := load(t, map[string]string{"QUOTA_REFRESH_PERIOD": tt.spec})
			if c.QuotaRefresh == nil || c.QuotaRefreshSpec != tt.spec {
				t.Fatalf("QuotaRefresh = %v, spec %q", c.QuotaRefresh, c.QuotaRefreshSpec)
			}
			got := c.QuotaRefresh.Next(at(tt.from).UTC())
			if want := at(tt.wantNext); !got.Equal(want) {
				t.Errorf("Next(%s) = %s, want %s", tt.from, got, want)
			}
		})
	}
}

func TestSecretValuesApplySecretsRoundTrip(t *testing.T) {
	c := load(t, map[string]string{
		"GATEKEEPER":     "user_token",
		"ADMIN_KEY":      "sm://admin-key",
		"OPENAI_KEY":     "sm://openai-keys",
		"ANTHROPIC_KEY":  "sk-ant-1, sk-ant-2",
		"GOOGLE_AI_KEY":  "projects/p/secrets/google/versions/3",
		"MISTRAL_AI_KEY": "sm://mistral",
	})
	got := c.SecretValues()
	want := map[string]string{
		"ADMIN_KEY":      "sm://admin-key",
		"OPENAI_KEY":     "sm://openai-keys",
		"ANTHROPIC_KEY":  "sk-ant-1,sk-ant-2",
		"GOOGLE_AI_KEY":  "projects/p/secrets/google/versions/3",
		"MISTRAL_AI_KEY": "sm://mistral",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("SecretValues = %v, want %v (unset secrets left out)", got, want)
	}
	for k := range got {
		if !slices.Contains(config.SecretVars(), k) {
			t.Errorf("SecretValues names %s, not in SecretVars %v", k, config.SecretVars())
		}
	}

	resolved := maps.Clone(got)
	resolved["ADMIN_KEY"] = "the-admin-key\n"
	resolved["OPENAI_KEY"] = "sk-a, sk-b,sk-c" // one secret holding a comma list
	resolved["GOOGLE_AI_KEY"] = "g-key"        // a single key
	resolved["MISTRAL_AI_KEY"] = " , "         // holds no key at all
	resolved["PROXY_KEY"] = "pk"               // names SecretValues did not give
	resolved["SIGNING_KEY"] = "sig"            //
	resolved["FIREBASE_KEY"] = "e30="          //
	resolved["UNRELATED"] = "ignored"          // unknown names are ignored
	c.ApplySecrets(resolved)

	if c.AdminKey != "the-admin-key" {
		t.Errorf("AdminKey = %q", c.AdminKey)
	}
	if c.ProxyKey != "pk" || c.SigningKey != "sig" || c.FirebaseKey != "e30=" {
		t.Errorf("ProxyKey %q SigningKey %q FirebaseKey %q", c.ProxyKey, c.SigningKey, c.FirebaseKey)
	}
	wantKeys := map[models.Provider][]string{
		models.OpenAI:      {"sk-a", "sk-b", "sk-c"},
		models.OpenAIImage: {"sk-a", "sk-b", "sk-c"}, // OpenAI's keys
		models.Anthropic:   {"sk-ant-1", "sk-ant-2"},
		models.GoogleAI:    {"g-key"},
	}
	if !maps.EqualFunc(c.ProviderKeys, wantKeys, slices.Equal) {
		t.Errorf("ProviderKeys = %v, want %v", c.ProviderKeys, wantKeys)
	}
	if c.Served(models.MistralAI) {
		t.Error("Mistral is served with its unresolved reference as the key")
	}
	// And back: what SecretValues gives now is what was applied.
	again := c.SecretValues()
	if again["OPENAI_KEY"] != "sk-a,sk-b,sk-c" || again["ADMIN_KEY"] != "the-admin-key" {
		t.Errorf("SecretValues after apply = %v", again)
	}
	if _, ok := again["MISTRAL_AI_KEY"]; ok {
		t.Errorf("MISTRAL_AI_KEY still present: %q", again["MISTRAL_AI_KEY"])
	}
}

func TestSecretVars(t *testing.T) {
	want := []string{"PROXY_KEY", "ADMIN_KEY", "FIREBASE_KEY", "SIGNING_KEY", "OPENAI_KEY", "ANTHROPIC_KEY", "GOOGLE_AI_KEY", "MISTRAL_AI_KEY", "AWS_CREDENTIALS", "GCP_CREDENTIALS", "AZURE_CREDENTIALS"}
	if got := config.SecretVars(); !slices.Equal(got, want) {
		t.Errorf("SecretVars = %v, want %v", got, want)
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  *config.Error
		want string
	}{
		{&config.Error{Var: "LOG_LEVEL", Value: "loud", Accepted: "accepted values: info"}, `invalid configuration: LOG_LEVEL="loud": accepted values: info`},
		{&config.Error{Var: "ADMIN_KEY", Accepted: "required"}, `invalid configuration: ADMIN_KEY: required`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
