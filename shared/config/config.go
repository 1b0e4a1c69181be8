// Package config reads and validates every environment variable once, into
// one typed Config passed down to the rest of tollgate.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // QUOTA_REFRESH_TZ: the platform may have no zone files

	"github.com/robfig/cron/v3"

	"tollgate.dev/tollgate/shared/models"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/secrets"
	"tollgate.dev/tollgate/shared/users"
)

// Mode is the gatekeeper mode.
type Mode string

const (
	ModeNone      Mode = "none"
	ModeProxyKey  Mode = "proxy_key"
	ModeUserToken Mode = "user_token"
)

// StoreKind selects the users store.
type StoreKind string

const (
	StoreMemory   StoreKind = "memory"
	StoreFirebase StoreKind = "firebase_rtdb"
)

// LimitsScope says where rate and concurrency limits are kept.
type LimitsScope string

const (
	// LimitsInstance: in each instance (N instances give N× the limits).
	LimitsInstance LimitsScope = "instance"
	// LimitsCluster: in the store, enforced across instances.
	LimitsCluster LimitsScope = "cluster"
)

// ErrorFormat selects how proxy-made errors are shown.
type ErrorFormat string

const (
	ErrorsNative     ErrorFormat = "native"
	ErrorsCompletion ErrorFormat = "completion"
)

// Config is every setting, validated. Secret-valued fields may still hold a
// Secret Manager reference until ResolveSecrets has run.
type Config struct {
	Gatekeeper     Mode
	Store          StoreKind
	ProxyKey       string
	AdminKey       string
	AdminWhitelist netutil.IPSet
	IPBlacklist    netutil.IPSet
	TrustedProxies int

	FirebaseRTDBURL  string
	FirebaseKey      string // base64 service-account JSON; empty: ADC
	FirebaseUsersRef string

	MaxIPsPerUser int64
	MaxIPsAutoBan bool
	// TokenQuota is the default quota by family (TOKEN_QUOTA_*).
	TokenQuota map[string]int64
	// QuotaRefresh is nil when quotas are never refreshed.
	QuotaRefresh     users.Schedule
	QuotaRefreshSpec string

	TextRateLimit    int
	ImageRateLimit   int
	ConcurrencyLimit int
	// BodyMemoryMB is the proxy's memory budget for bodies in flight on
	// one instance, in MiB (BODY_MEMORY_LIMIT_MB); 0 sizes it from the Go
	// memory limit.
	BodyMemoryMB int
	// LimitsScope is where rate and concurrency limits are kept.
	LimitsScope     LimitsScope
	AllowedFamilies map[string]bool

	MaxOutputTokens map[models.Provider]int64
	ProviderKeys    map[models.Provider][]string
	BaseURLs        map[models.Provider]string
	// ProviderSettings are the providers' other variables (GCP_REGION),
	// by name, defaults filled in.
	ProviderSettings map[string]string

	SigningKey   string
	ErrorFormat  ErrorFormat
	UserCacheTTL time.Duration
	LogLevel     string
	PoW          PoW       // CAPTCHA_MODE and POW_*
	Scheduler    Scheduler // SCHEDULER_*: Cloud Scheduler's OIDC token on the maintenance routes
	// EventLogging records each charged request as a user event;
	// EventRetention is how long the maintenance endpoint keeps them.
	EventLogging   bool
	EventRetention time.Duration

	Policies    Policies    // the original's request policies (original.go)
	SelfService SelfService // the /user/lookup page's options
	// Warnings are one line each about the original's variables that are
	// accepted but applied differently; the caller logs them once at start.
	Warnings []string

	// Environment of the platform.
	Project              string // GOOGLE_CLOUD_PROJECT
	SecretEmulatorHost   string // SECRET_MANAGER_EMULATOR_HOST
	OnCloud              bool   // K_SERVICE is set
	FirebaseEmulatorHost string // FIREBASE_DATABASE_EMULATOR_HOST
}

// Error names the variable at fault and what it accepts.
type Error struct {
	Var      string
	Value    string // shown only for non-secret variables
	Accepted string
}

func (e *Error) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("invalid configuration: %s=%q: %s", e.Var, e.Value, e.Accepted)
	}
	return fmt.Sprintf("invalid configuration: %s: %s", e.Var, e.Accepted)
}

// SecretVars are the variables that may hold Secret Manager references.
func SecretVars() []string {
	vars := []string{"PROXY_KEY", "ADMIN_KEY", "FIREBASE_KEY", "SIGNING_KEY"}
	for _, p := range providers.All() {
		if !slices.Contains(vars, p.Env.Key) { // providers may share one
			vars = append(vars, p.Env.Key)
		}
	}
	return vars
}

// Load reads the configuration from environ (os.Environ's form).
func Load(environ []string) (*Config, error) {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return FromMap(env)
}

// FromMap reads the configuration from a variable map.
func FromMap(env map[string]string) (*Config, error) {
	return (&parser{env: env}).config()
}

// Names are the variables the configuration is read from, sorted
// (TOKEN_QUOTA_ and TOKEN_COST_ once per family): the deploy's list of
// application variables is checked against them.
func Names() []string {
	p := &parser{env: map[string]string{}, read: map[string]bool{}}
	p.config()
	return sortedKeys(p.read)
}

func (p *parser) config() (*Config, error) {
	c := &Config{
		OnCloud:              p.raw("K_SERVICE") != "",
		Project:              p.raw("GOOGLE_CLOUD_PROJECT"),
		SecretEmulatorHost:   p.raw("SECRET_MANAGER_EMULATOR_HOST"),
		FirebaseEmulatorHost: p.raw("FIREBASE_DATABASE_EMULATOR_HOST"),
	}
	c.Gatekeeper = Mode(p.oneOf("GATEKEEPER", "none", "none", "proxy_key", "user_token"))
	defStore := "memory"
	if c.OnCloud {
		defStore = "firebase_rtdb"
	}
	c.Store = StoreKind(p.oneOf("GATEKEEPER_STORE", defStore, "memory", "firebase_rtdb"))
	// Secrets are trimmed: clients' tokens are, so a stray newline from a
	// file or a YAML block would otherwise make a key that never matches.
	c.ProxyKey = strings.TrimSpace(p.raw("PROXY_KEY"))
	c.AdminKey = strings.TrimSpace(p.raw("ADMIN_KEY"))
	c.AdminWhitelist = p.ipSet("ADMIN_WHITELIST", "0.0.0.0/0,::/0")
	c.IPBlacklist = p.ipSet("IP_BLACKLIST", "")
	c.TrustedProxies = p.int("TRUSTED_PROXIES", 1, 0, 32)
	c.FirebaseRTDBURL = strings.TrimRight(p.raw("FIREBASE_RTDB_URL"), "/")
	c.FirebaseKey = strings.TrimSpace(p.raw("FIREBASE_KEY"))
	c.FirebaseUsersRef = p.str("FIREBASE_USERS_REF_NAME", "users")
	c.MaxIPsPerUser = int64(p.int("MAX_IPS_PER_USER", 0, 0, 1_000_000))
	c.MaxIPsAutoBan = p.bool("MAX_IPS_AUTO_BAN", false)
	c.TokenQuota = p.quotas()
	c.QuotaRefreshSpec, c.QuotaRefresh = p.schedule("QUOTA_REFRESH_PERIOD")
	c.TextRateLimit = p.int("TEXT_MODEL_RATE_LIMIT", 4, 0, 1_000_000)
	c.ImageRateLimit = p.int("IMAGE_MODEL_RATE_LIMIT", 4, 0, 1_000_000)
	c.ConcurrencyLimit = p.int("USER_CONCURRENCY_LIMIT", 1, 0, 10_000)
	c.BodyMemoryMB = p.int("BODY_MEMORY_LIMIT_MB", 0, 0, 1_000_000)
	c.LimitsScope = LimitsScope(p.oneOf("LIMITS_SCOPE", "instance", "instance", "cluster"))
	c.AllowedFamilies = p.families("ALLOWED_MODEL_FAMILIES")
	c.MaxOutputTokens = map[models.Provider]int64{}
	c.ProviderKeys = map[models.Provider][]string{}
	c.BaseURLs = map[models.Provider]string{}
	c.ProviderSettings = map[string]string{}
	for _, prov := range providers.All() {
		for _, st := range prov.Env.Settings {
			c.ProviderSettings[st.Name] = p.setting(st)
		}
		c.MaxOutputTokens[prov.ID] = int64(p.int(prov.Env.MaxOutput, 1024, 0, 10_000_000))
		if keys := splitList(p.raw(prov.Env.Key)); len(keys) > 0 {
			c.ProviderKeys[prov.ID] = keys
			p.keys(prov.Env, keys)
		}
		c.BaseURLs[prov.ID] = p.baseURL(prov.Env.BaseURL, prov.Env.DefaultBaseURL)
	}
	c.SigningKey = strings.TrimSpace(p.raw("SIGNING_KEY"))
	c.PoW = p.pow(c.Gatekeeper)
	c.ErrorFormat = ErrorFormat(p.oneOf("ERROR_FORMAT", "native", "native", "completion"))
	c.UserCacheTTL = p.duration("USER_CACHE_TTL", 5*time.Second, 0, time.Hour)
	c.Scheduler = p.scheduler()
	p.original(c)
	c.EventLogging = p.bool("EVENT_LOGGING", false)
	c.EventRetention = time.Duration(p.int("EVENT_RETENTION_DAYS", 30, 1, 3650)) * 24 * time.Hour
	c.LogLevel = p.oneOf("LOG_LEVEL", "info", "trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled")
	if p.err != nil {
		return nil, p.err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check validates rules that span variables.
func (c *Config) check() error {
	switch {
	case c.Gatekeeper == ModeProxyKey && c.ProxyKey == "":
		return &Error{Var: "PROXY_KEY", Accepted: "required when GATEKEEPER=proxy_key"}
	case c.Gatekeeper == ModeUserToken && c.AdminKey == "":
		return &Error{Var: "ADMIN_KEY", Accepted: "required when GATEKEEPER=user_token"}
	case c.Store == StoreFirebase && c.FirebaseRTDBURL == "":
		return &Error{Var: "FIREBASE_RTDB_URL", Accepted: "required when GATEKEEPER_STORE=firebase_rtdb (e.g. https://my-project-default-rtdb.firebaseio.com)"}
	}
	if c.FirebaseRTDBURL != "" {
		if u, err := url.Parse(c.FirebaseRTDBURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return &Error{Var: "FIREBASE_RTDB_URL", Value: c.FirebaseRTDBURL, Accepted: "must be an http(s) URL such as https://my-project-default-rtdb.firebaseio.com"}
		}
	}
	if strings.ContainsAny(c.FirebaseUsersRef, ".$#[]") || strings.Trim(c.FirebaseUsersRef, "/") == "" {
		return &Error{Var: "FIREBASE_USERS_REF_NAME", Value: c.FirebaseUsersRef, Accepted: "a database path without . $ # [ ]"}
	}
	return nil
}

// SecretValues returns the raw value of every secret-valued variable that
// is set, for Secret Manager resolution.
func (c *Config) SecretValues() map[string]string {
	out := map[string]string{}
	put := func(name, v string) {
		if v != "" {
			out[name] = v
		}
	}
	put("PROXY_KEY", c.ProxyKey)
	put("ADMIN_KEY", c.AdminKey)
	put("FIREBASE_KEY", c.FirebaseKey)
	put("SIGNING_KEY", c.SigningKey)
	for _, p := range providers.All() {
		keys := c.ProviderKeys[p.ID]
		if len(keys) > 1 && slices.ContainsFunc(keys, secrets.IsReference) {
			// Entries of a list may each be a reference (AWS_CREDENTIALS=
			// sm://aws-a,sm://aws-b): each is resolved as a variable of its own.
			for i, k := range keys {
				if secrets.IsReference(k) {
					put(fmt.Sprintf("%s[%d]", p.Env.Key, i+1), k)
				}
			}
			continue
		}
		put(p.Env.Key, strings.Join(keys, ","))
	}
	return out
}

// listEntry reads a name SecretValues gave one entry of a list: NAME[i].
func listEntry(name string) (string, int, bool) {
	base, rest, ok := strings.Cut(name, "[")
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "]"))
	if !ok || err != nil || n < 1 || !strings.HasSuffix(rest, "]") {
		return "", 0, false
	}
	return base, n - 1, true
}

// ApplySecrets stores resolved values (as SecretValues names them) back.
// A provider's secret may itself hold a comma list of keys.
func (c *Config) ApplySecrets(values map[string]string) {
	for name, v := range values {
		v = strings.TrimSpace(v)
		switch name {
		case "PROXY_KEY":
			c.ProxyKey = v
		case "ADMIN_KEY":
			c.AdminKey = v
		case "FIREBASE_KEY":
			c.FirebaseKey = v
		case "SIGNING_KEY":
			c.SigningKey = v
		default:
			if base, i, ok := listEntry(name); ok {
				for _, p := range providers.All() {
					if keys := c.ProviderKeys[p.ID]; p.Env.Key == base && i < len(keys) {
						keys[i] = v
					}
				}
				continue
			}
			for _, p := range providers.All() {
				if name != p.Env.Key {
					continue
				}
				// A secret holding no key leaves the provider unserved
				// rather than sending its reference upstream as a key.
				if keys := splitList(v); len(keys) > 0 {
					c.ProviderKeys[p.ID] = keys
				} else {
					delete(c.ProviderKeys, p.ID)
				}
			}
		}
	}
}

// Served reports whether provider p has upstream keys.
func (c *Config) Served(p models.Provider) bool { return len(c.ProviderKeys[p]) > 0 }

// FamilyAllowed reports whether family may be used.
func (c *Config) FamilyAllowed(family string) bool { return c.AllowedFamilies[family] }

// RateLimitFor is the per-minute limit of the family's kind (0: none).
func (c *Config) RateLimitFor(family string) int {
	if f, ok := models.Lookup(family); ok && f.Image {
		return c.ImageRateLimit
	}
	return c.TextRateLimit
}

type parser struct {
	env  map[string]string
	err  error
	read map[string]bool // when not nil, every name looked up (Names)
}

// lookup is env[name], noting that name is read.
func (p *parser) lookup(name string) (string, bool) {
	if p.read != nil {
		p.read[name] = true
	}
	v, ok := p.env[name]
	return v, ok
}

func (p *parser) raw(name string) string {
	v, _ := p.lookup(name)
	return v
}

func (p *parser) fail(e *Error) {
	if p.err == nil {
		p.err = e
	}
}

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.raw(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) oneOf(name, def string, accepted ...string) string {
	v := strings.ToLower(p.str(name, def))
	for _, a := range accepted {
		if v == a {
			return v
		}
	}
	p.fail(&Error{Var: name, Value: p.env[name], Accepted: "accepted values: " + strings.Join(accepted, ", ")})
	return def
}

func (p *parser) int(name string, def, min, max int) int {
	return inRange(p, name, def, min, max, strconv.Atoi, fmt.Sprintf("must be a whole number from %d to %d", min, max))
}

// inRange reads a variable as parse reads it, def when unset; a value
// parse refuses or outside [min, max] fails, saying what is accepted.
func inRange[T cmp.Ordered](p *parser, name string, def, min, max T, parse func(string) (T, error), accepted string) T {
	raw := p.str(name, "")
	if raw == "" {
		return def
	}
	v, err := parse(raw)
	if err != nil || v < min || v > max {
		p.fail(&Error{Var: name, Value: raw, Accepted: accepted})
		return def
	}
	return v
}

func (p *parser) bool(name string, def bool) bool {
	raw := p.str(name, "")
	if raw == "" {
		return def
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		p.fail(&Error{Var: name, Value: raw, Accepted: "must be true or false"})
	}
	return b
}

func (p *parser) duration(name string, def, min, max time.Duration) time.Duration {
	return inRange(p, name, def, min, max, time.ParseDuration, fmt.Sprintf("must be a duration such as 5s or 1m, from %s to %s", min, max))
}

func (p *parser) ipSet(name, def string) netutil.IPSet {
	raw := p.str(name, def)
	set, err := netutil.ParseIPSet(raw)
	if err != nil {
		p.fail(&Error{Var: name, Value: raw, Accepted: "must be a comma list of IPv4/IPv6 addresses and CIDR ranges: " + err.Error()})
	}
	return set
}

// baseURL reads a base URL; {placeholders} (a template the provider fills
// in per credential: {region}) stand for host or path characters.
func (p *parser) baseURL(name, def string) string {
	raw := p.str(name, def)
	u, err := url.Parse(placeholders.Replace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		p.fail(&Error{Var: name, Value: raw, Accepted: "must be an http(s) URL without a query, such as " + def})
		return def
	}
	return strings.TrimRight(raw, "/")
}

var placeholders = strings.NewReplacer("{", "", "}", "")

// keys validates a provider's key entries that are values, not Secret
// Manager references (resolved later); the error never shows the value.
func (p *parser) keys(e providers.Env, keys []string) {
	if e.CheckKey == nil {
		return
	}
	for i, k := range keys {
		if strings.HasPrefix(k, "sm://") || strings.HasPrefix(k, "projects/") {
			continue
		}
		if err := e.CheckKey(k); err != nil {
			p.fail(&Error{Var: e.Key, Accepted: fmt.Sprintf("entry %d: %v", i+1, err)})
			return
		}
	}
}

// CheckSecrets validates what ApplySecrets stored, as FromMap validates
// literal values: FromMap saw only the references. Errors name the
// variable, never the value.
func (c *Config) CheckSecrets() error {
	for _, prov := range providers.All() {
		for i, k := range c.ProviderKeys[prov.ID] {
			if k == "" {
				return &Error{Var: prov.Env.Key, Accepted: fmt.Sprintf("entry %d: its secret is empty", i+1)}
			}
			if prov.Env.CheckKey == nil {
				continue
			}
			if err := prov.Env.CheckKey(k); err != nil {
				return &Error{Var: prov.Env.Key, Accepted: fmt.Sprintf("entry %d (from Secret Manager): %v", i+1, err)}
			}
		}
	}
	if err := c.check(); err != nil {
		var e *Error
		if errors.As(err, &e) && (e.Var == "PROXY_KEY" || e.Var == "ADMIN_KEY") {
			e.Accepted += "; its secret is empty"
		}
		return err
	}
	return nil
}

func (p *parser) setting(st providers.Setting) string {
	v := p.str(st.Name, st.Default)
	if st.Check != nil {
		if err := st.Check(v); err != nil {
			p.fail(&Error{Var: st.Name, Value: v, Accepted: err.Error()})
		}
	}
	return v
}

// quotas reads TOKEN_QUOTA_<FAMILY>: gpt4-turbo is TOKEN_QUOTA_GPT4_TURBO.
func (p *parser) quotas() map[string]int64 {
	byEnv := map[string]string{}
	for _, f := range models.Names() {
		name := "TOKEN_QUOTA_" + envFamily(f)
		byEnv[name] = f
		p.lookup(name)
	}
	out := map[string]int64{}
	keys := make([]string, 0)
	for k := range p.env {
		if strings.HasPrefix(k, "TOKEN_QUOTA_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := byEnv[k]
		if !ok {
			p.fail(&Error{Var: k, Accepted: "unknown model family; known: " + strings.Join(models.Names(), ", ")})
			continue
		}
		if n := p.int(k, 0, 0, 1<<53); n > 0 {
			out[f] = int64(n)
		}
	}
	return out
}

func (p *parser) families(name string) map[string]bool {
	list := models.TextFamilies()
	if raw := p.str(name, ""); raw != "" {
		list = splitList(raw)
	}
	out := map[string]bool{}
	for _, f := range list {
		f = strings.ToLower(f)
		if _, ok := models.Lookup(f); !ok {
			p.fail(&Error{Var: name, Value: p.env[name], Accepted: fmt.Sprintf("unknown family %q; known: %s", f, strings.Join(models.Names(), ", "))})
			continue
		}
		out[f] = true
	}
	return out
}

// cronParser reads 5-field cron and, as the original's node-schedule did,
// 6-field cron whose first field is seconds.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// schedule reads QUOTA_REFRESH_PERIOD in the time zone QUOTA_REFRESH_TZ
// (default UTC; the original used the server's).
func (p *parser) schedule(name string) (string, users.Schedule) {
	raw := p.message(name, "")
	tz := p.str("QUOTA_REFRESH_TZ", "UTC")
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		p.fail(&Error{Var: "QUOTA_REFRESH_TZ", Value: tz, Accepted: "must be an IANA time zone such as UTC or Europe/Berlin"})
		loc = time.UTC
	}
	spec := raw
	switch strings.ToLower(raw) {
	case "":
		return "", nil
	case "hourly":
		spec = "0 * * * *"
	case "daily":
		spec = "0 0 * * *"
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		p.fail(&Error{Var: name, Value: raw, Accepted: "must be hourly, daily, or a cron expression of 5 fields (\"0 */6 * * *\") or 6 with seconds first (\"*/45 * * * * *\"), in QUOTA_REFRESH_TZ (default UTC)"})
		return "", nil
	}
	if spec, ok := s.(*cron.SpecSchedule); ok && !strings.Contains(raw, "TZ=") {
		spec.Location = loc
	}
	return raw, s
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
