package config

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"tollgate.dev/tollgate/shared/models"
)

// Policies are the original's request policies, checked once a request's
// body is known.
type Policies struct {
	// MaxContext is MAX_CONTEXT_TOKENS_OPENAI / _ANTHROPIC by provider:
	// estimated prompt plus requested output above it is refused (0: no
	// limit). OpenAI's applies to Azure too, Anthropic's to Claude on AWS
	// and GCP, as the original applied them by API format.
	MaxContext map[models.Provider]int64
	// VisionServices are ALLOWED_VISION_SERVICES: the services (a
	// provider's first mount segment: openai, aws, gcp, …) that may be sent
	// images. Others refuse image inputs.
	VisionServices map[string]bool
	// AllowTools is ALLOW_OPENAI_TOOL_USAGE: OpenAI and Azure requests with
	// tools or functions are refused without it.
	AllowTools bool
	// AllowPaid is ALLOW_PAID_FEATURES: without it, requests for what the
	// upstream bills beyond the tokens the quotas count are refused:
	// server-side tools (web search and fetch, code execution, file
	// search, grounding), search models, and options that raise the price
	// per token (a priority or fast tier, the long-context beta, US-only
	// inference).
	AllowPaid bool
	// RejectPhrases (REJECT_PHRASES) are matched case-insensitively
	// against a prompt's text; a match is refused with RejectMessage.
	RejectPhrases Phrases
	RejectMessage string
	// BlockedOrigins (BLOCKED_ORIGINS) are matched as substrings of the
	// Origin and Referer headers; a match is refused with BlockMessage, and
	// a browser page is sent on to BlockRedirect.
	BlockedOrigins []string
	BlockMessage   string
	BlockRedirect  string
}

// SelfService are the options of the /user/lookup page.
type SelfService struct {
	// AllowNicknameChanges is ALLOW_NICKNAME_CHANGES (default true).
	AllowNicknameChanges bool
	// ShowTokenCosts is SHOW_TOKEN_COSTS: the page shows what each
	// family's usage cost at Prices.
	ShowTokenCosts bool
	// Prices are US dollars per million tokens by family: models.Prices,
	// overridden by TOKEN_COST_<FAMILY>.
	Prices map[string]float64
}

// VisionService is the ALLOWED_VISION_SERVICES name of a provider.
func VisionService(p models.Provider) string {
	s, _, _ := strings.Cut(string(p), "/")
	return s
}

// visionServices are the original's service names.
var visionServices = []string{"openai", "anthropic", "google-ai", "mistral-ai", "aws", "gcp", "azure"}

// original reads the variables tollgate took over from oai-reverse-proxy
// beyond its own: request policies, self-service options, deprecated
// aliases, and the variables tollgate accepts but treats differently (one
// warning each). It runs after the rest of the configuration is read.
func (p *parser) original(c *Config) {
	p.aliases(c)
	c.Policies = Policies{
		MaxContext: map[models.Provider]int64{},
		AllowTools: p.bool("ALLOW_OPENAI_TOOL_USAGE", false),
		AllowPaid:  p.bool("ALLOW_PAID_FEATURES", false),
		// The original's defaults.
		RejectMessage:  p.message("REJECT_MESSAGE", "This content violates /aicg/'s acceptable use policy."),
		BlockMessage:   p.message("BLOCK_MESSAGE", "You must be over the age of majority in your country to use this service."),
		BlockRedirect:  p.message("BLOCK_REDIRECT", "https://www.9gag.com"),
		BlockedOrigins: splitList(p.message("BLOCKED_ORIGINS", "")),
	}
	oai := int64(p.int("MAX_CONTEXT_TOKENS_OPENAI", 0, 0, 100_000_000))
	ant := int64(p.int("MAX_CONTEXT_TOKENS_ANTHROPIC", 0, 0, 100_000_000))
	for _, prov := range []models.Provider{models.OpenAI, models.AzureOpenAI} {
		c.Policies.MaxContext[prov] = oai
	}
	for _, prov := range []models.Provider{models.Anthropic, models.AWSClaude, models.GCPClaude} {
		c.Policies.MaxContext[prov] = ant
	}
	c.Policies.VisionServices = p.vision(c)
	c.Policies.RejectPhrases = p.phrases(c, "REJECT_PHRASES")
	if u := c.Policies.BlockRedirect; u != "" && !absoluteURL(u, false) {
		p.fail(&Error{Var: "BLOCK_REDIRECT", Value: u, Accepted: "must be an http(s) URL such as https://example.com/"})
	}
	c.SelfService = SelfService{
		AllowNicknameChanges: p.bool("ALLOW_NICKNAME_CHANGES", true),
		ShowTokenCosts:       p.bool("SHOW_TOKEN_COSTS", false),
		Prices:               p.prices(),
	}
	p.differences(c)
}

// aliases honours the original's deprecated names, as the original did.
func (p *parser) aliases(c *Config) {
	if raw := p.str("MODEL_RATE_LIMIT", ""); raw != "" {
		// The original: the text limit is MODEL_RATE_LIMIT (0 keeps
		// TEXT_MODEL_RATE_LIMIT), the image limit half of it, at least 1.
		if n := p.int("MODEL_RATE_LIMIT", 0, 0, 1_000_000); n > 0 {
			c.TextRateLimit = n
		}
		c.ImageRateLimit = max(c.TextRateLimit/2, 1)
		c.warn("MODEL_RATE_LIMIT is deprecated: honoured as the original did (TEXT_MODEL_RATE_LIMIT=%d, IMAGE_MODEL_RATE_LIMIT=%d); set those instead", c.TextRateLimit, c.ImageRateLimit)
	}
	if raw := p.str("MAX_OUTPUT_TOKENS", ""); raw != "" {
		n := int64(p.int("MAX_OUTPUT_TOKENS", 0, 0, 10_000_000))
		var set []string
		for _, v := range []struct {
			prov models.Provider
			name string
		}{{models.OpenAI, "MAX_OUTPUT_TOKENS_OPENAI"}, {models.Anthropic, "MAX_OUTPUT_TOKENS_ANTHROPIC"}} {
			if p.str(v.name, "") == "" {
				c.MaxOutputTokens[v.prov] = n
				set = append(set, fmt.Sprintf("%s=%d", v.name, n))
			}
		}
		c.warn("MAX_OUTPUT_TOKENS is deprecated: honoured as the original did, for OpenAI and Anthropic only (%s); set MAX_OUTPUT_TOKENS_<PROVIDER> instead", listOr(set, "both set explicitly"))
	}
	if v, ok := p.lookup("COOKIE_SECRET"); ok && strings.TrimSpace(v) != "" {
		// The original preferred COOKIE_SECRET to SIGNING_KEY.
		c.SigningKey = strings.TrimSpace(v)
		c.warn("COOKIE_SECRET is deprecated: used as SIGNING_KEY, as the original did; rename it SIGNING_KEY")
	}
}

func listOr(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	return strings.Join(s, ", ")
}

// vision reads ALLOWED_VISION_SERVICES (and its deprecated predecessor
// ALLOW_IMAGE_PROMPTS=true, which meant openai and anthropic).
func (p *parser) vision(c *Config) map[string]bool {
	out := map[string]bool{}
	raw := p.str("ALLOWED_VISION_SERVICES", "")
	for _, s := range splitList(raw) {
		s = strings.ToLower(s)
		if !slices.Contains(visionServices, s) {
			p.fail(&Error{Var: "ALLOWED_VISION_SERVICES", Value: raw, Accepted: fmt.Sprintf("unknown service %q; known: %s", s, strings.Join(visionServices, ", "))})
			continue
		}
		out[s] = true
	}
	if p.bool("ALLOW_IMAGE_PROMPTS", false) {
		if len(out) == 0 {
			out["openai"], out["anthropic"] = true, true
		}
		c.warn("ALLOW_IMAGE_PROMPTS is deprecated: images are allowed to %s, as the original did; set ALLOWED_VISION_SERVICES instead", strings.Join(sortedKeys(out), ","))
	}
	return out
}

// csvItem is one item of the original's quoted comma lists: "a, b" keeps
// its comma.
var csvItem = regexp.MustCompile(`"[^"]*"|[^",]+`)

// Phrases are REJECT_PHRASES: plain words are looked for as lower-case
// text (a regular expression with (?i) reads a long prompt far slower),
// the others in one case-insensitive expression.
type Phrases struct {
	literals []string // lower case
	re       *regexp.Regexp
}

// Empty reports whether there is no phrase to look for.
func (ph Phrases) Empty() bool { return len(ph.literals) == 0 && ph.re == nil }

// Match reports whether text contains any of the phrases, read as
// normalised (see normalize).
func (ph Phrases) Match(text string) bool {
	text = normalize(text)
	if len(ph.literals) > 0 {
		lower := strings.ToLower(text)
		for _, l := range ph.literals {
			if strings.Contains(lower, l) {
				return true
			}
		}
	}
	return ph.re != nil && ph.re.MatchString(text)
}

// normalize makes every Unicode space ' ' and takes out format
// characters (zero-width spaces and joiners, U+FEFF, bidi controls). The
// phrases are the original's JavaScript expressions, whose \s matches
// every Unicode space where Go's matches ASCII only, and an invisible
// character splits a phrase for a matcher, not for the model. Text
// without them (ASCII, most of every script) is returned as it is.
func normalize(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf && s[i] != '\v' {
		i++
	}
	if i == len(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\v':
			return ' '
		case r < utf8.RuneSelf, r > 0x3000 && r < 0xfeff: // CJK and others: neither
			return r
		case unicode.IsSpace(r):
			return ' '
		case unicode.Is(unicode.Cf, r):
			return -1
		}
		return r
	}, s)
}

// phrases reads REJECT_PHRASES as the original did: a comma list (quotes
// keep commas), each item a case-insensitive regular expression. An item
// Go's regexp syntax cannot read (a JavaScript look-around) is matched as
// plain text, with a warning.
func (p *parser) phrases(c *Config, name string) Phrases {
	var ph Phrases
	var alts []string
	for _, item := range csvItem.FindAllString(p.raw(name), -1) {
		item = strings.TrimSpace(strings.Trim(strings.TrimSpace(item), `"`))
		if item == "" {
			continue
		}
		re, err := regexp.Compile(item)
		if err != nil {
			c.warn("%s: %q is not a regular expression Go can read (%v); it is matched as plain text", name, item, err)
			ph.literals = append(ph.literals, normalize(strings.ToLower(item)))
			continue
		}
		if prefix, complete := re.LiteralPrefix(); complete {
			ph.literals = append(ph.literals, normalize(strings.ToLower(prefix)))
			continue
		}
		alts = append(alts, "(?:"+item+")")
	}
	if len(alts) > 0 {
		// Items that each compile can still make one expression too
		// large or too deeply nested for Go's limits.
		re, err := regexp.Compile("(?i)" + strings.Join(alts, "|"))
		if err != nil {
			reason := err.Error()
			if se, ok := errors.AsType[*syntax.Error](err); ok {
				reason = se.Code.String() // without the expression, which may be megabytes
			}
			p.fail(&Error{Var: name, Accepted: fmt.Sprintf("the phrases together make a regular expression Go cannot compile (%s); use fewer or simpler phrases", reason)})
			return ph
		}
		ph.re = re
	}
	return ph
}

// prices reads TOKEN_COST_<FAMILY> (US dollars per million tokens) over
// the built-in table.
func (p *parser) prices() map[string]float64 {
	out := models.Prices()
	known := map[string]bool{}
	for _, f := range models.Names() {
		known["TOKEN_COST_"+envFamily(f)] = true
	}
	for k := range p.env {
		if strings.HasPrefix(k, "TOKEN_COST_") && !known[k] {
			p.fail(&Error{Var: k, Accepted: "unknown model family; known: " + strings.Join(models.Names(), ", ")})
		}
	}
	for _, f := range models.Names() {
		name := "TOKEN_COST_" + envFamily(f)
		raw := p.str(name, "")
		if raw == "" {
			continue
		}
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || v < 0 || v > 1e6 || v != v {
			p.fail(&Error{Var: name, Value: raw, Accepted: "must be a price in US dollars per million tokens, from 0 to 1000000, such as 2.5"})
			continue
		}
		out[f] = v
	}
	return out
}

// envFamily is a family's part of a variable name: gpt4-turbo is GPT4_TURBO.
func envFamily(f string) string { return strings.ToUpper(strings.ReplaceAll(f, "-", "_")) }

// message reads a free-text value; the original read values as JSON where
// they parse, so a quoted "text" loses its quotes.
func (p *parser) message(name, def string) string {
	v := p.str(name, def)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if u, err := strconv.Unquote(v); err == nil {
			return u
		}
		return v[1 : len(v)-1]
	}
	return v
}

// differences warns, once each, of the original's variables tollgate
// accepts but does not apply as the original did.
func (p *parser) differences(c *Config) {
	set := func(name string) (string, bool) {
		v, ok := p.lookup(name)
		return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
	}
	if _, ok := set("SERVICE_INFO_PASSWORD"); ok {
		c.warn("SERVICE_INFO_PASSWORD is not applied: tollgate's service info (GET /) is public and shows only the providers served (with how many keys are in service), gatekeeper mode, families and endpoints, never usage statistics or a key")
	}
	if v, ok := set("STATIC_SERVICE_INFO"); ok && !isTrue(v) {
		c.warn("STATIC_SERVICE_INFO=%s is not applied: tollgate's service info is always static (no traffic, prompt or queue statistics)", v)
	}
	if v, ok := set("USE_INSECURE_COOKIES"); ok && isTrue(v) {
		c.warn("USE_INSECURE_COOKIES is not applied: admin cookies are Secure except when the admin UI is reached as localhost, where plain HTTP works without it")
	}
	if v, ok := set("CHECK_KEYS"); ok {
		c.warn("CHECK_KEYS=%s is not applied: tollgate checks no key ahead of use; a key an upstream refuses as invalid, revoked or out of credit is set aside and rechecked in the background", v)
	}
	if v, ok := set("SHOW_RECENT_IMAGES"); ok && isTrue(v) {
		c.warn("SHOW_RECENT_IMAGES is not applied: tollgate keeps no generated images")
	}
	if v, ok := set("PROXY_ENDPOINT_ROUTE"); ok && v != "/proxy" {
		c.warn("PROXY_ENDPOINT_ROUTE=%s is not applied: the proxy is served at its function's root and, behind Firebase Hosting, under /proxy", v)
	}
	if v, ok := set("ALLOW_AWS_LOGGING"); ok {
		c.warn("ALLOW_AWS_LOGGING=%s is not applied: tollgate does not look at AWS model-invocation logging; every AWS credential given is used", v)
	}
	if v, ok := set("PROMPT_LOGGING"); ok && isTrue(v) {
		c.warn("PROMPT_LOGGING is not applied: tollgate never logs prompts or answers (PROMPT_LOGGING_BACKEND and GOOGLE_SHEETS_* are unused)")
	}
	if v, ok := set("EVENT_LOGGING_TRIM"); ok {
		c.warn("EVENT_LOGGING_TRIM=%s is not applied: tollgate's events record no conversation hashes (EVENT_LOGGING records each charged request; EVENT_RETENTION_DAYS bounds how long)", v)
	}
	if _, ok := set("SQLITE_DATA_PATH"); ok {
		c.warn("SQLITE_DATA_PATH is not applied: tollgate keeps everything in GATEKEEPER_STORE")
	}
	p.quotasLeftBehind(c)
}

// originalFamilies are the original's families: a quota it read for one
// of them reached every model it counted there.
var originalFamilies = map[string]bool{
	"turbo": true, "gpt4": true, "gpt4-32k": true, "gpt4-turbo": true, "gpt4o": true, "dall-e": true,
	"claude": true, "claude-opus": true, "gemini-pro": true,
	"mistral-tiny": true, "mistral-small": true, "mistral-medium": true, "mistral-large": true,
	"aws-claude": true, "aws-claude-opus": true, "gcp-claude": true, "gcp-claude-opus": true,
	"azure-turbo": true, "azure-gpt4": true, "azure-gpt4-32k": true, "azure-gpt4-turbo": true, "azure-gpt4o": true, "azure-dall-e": true,
}

// quotasLeftBehind warns when a quota of the original's family that took
// in the models it did not know (gpt4, azure-gpt4) or every Gemini
// (gemini-pro) is set while the text families tollgate counts those
// models in have none: they would be unlimited where the original
// limited them.
func (p *parser) quotasLeftBehind(c *Config) {
	for _, o := range []struct {
		parent string
		prov   models.Provider
		what   string
	}{
		{"gpt4", models.OpenAI, "the OpenAI models it did not know (GPT-4.1, GPT-4.5, GPT-5, the o-series)"},
		{"azure-gpt4", models.AzureOpenAI, "the Azure models it did not know (GPT-4.1, GPT-4.5, GPT-5, the o-series)"},
		{"gemini-pro", models.GoogleAI, "every Gemini model"},
	} {
		if c.TokenQuota[o.parent] == 0 {
			continue
		}
		var unset []string
		for _, f := range models.Families {
			if f.Provider == o.prov && !f.Image && !originalFamilies[f.Name] && c.TokenQuota[f.Name] == 0 {
				unset = append(unset, "TOKEN_QUOTA_"+envFamily(f.Name))
			}
		}
		if len(unset) > 0 {
			c.warn("TOKEN_QUOTA_%s=%d does not limit all the models the original limited with it: the original counted %s in %s, tollgate counts them in families of their own, which are unlimited without a quota of their own: %s",
				envFamily(o.parent), c.TokenQuota[o.parent], o.what, o.parent, strings.Join(unset, ", "))
		}
	}
}

func isTrue(v string) bool {
	b, err := strconv.ParseBool(strings.Trim(v, `"`))
	return err == nil && b
}

func (c *Config) warn(format string, args ...any) {
	c.Warnings = append(c.Warnings, fmt.Sprintf(format, args...))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
