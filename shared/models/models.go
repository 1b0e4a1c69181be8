// Package models maps model names to the model families that quotas, rate
// limits and the allow-list are kept by. The whole table is this file.
package models

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
)

// Provider names an upstream API; it is also the proxy's mount path.
type Provider string

const (
	OpenAI    Provider = "openai"
	Anthropic Provider = "anthropic"
	GoogleAI  Provider = "google-ai"
	MistralAI Provider = "mistral-ai"
	// Cloud providers, mounted as the original mounts them.
	AWSClaude   Provider = "aws/claude"   // Claude on AWS Bedrock
	AWSMistral  Provider = "aws/mistral"  // Mistral on AWS Bedrock
	GCPClaude   Provider = "gcp/claude"   // Claude on Google Vertex AI
	GCPGemini   Provider = "gcp/gemini"   // Gemini on Google Vertex AI
	AzureOpenAI Provider = "azure/openai" // OpenAI models on Azure
	// OpenAI's image models on a mount of their own, as the original
	// mounts them; counted in OpenAI's families.
	OpenAIImage Provider = "openai-image"
)

// countedAs are the mounts whose models count in another provider's
// families.
var countedAs = map[Provider]Provider{OpenAIImage: OpenAI}

func familiesOf(p Provider) Provider {
	if q, ok := countedAs[p]; ok {
		return q
	}
	return p
}

// Providers lists every provider in a stable order.
var Providers = []Provider{OpenAI, Anthropic, GoogleAI, MistralAI, AWSClaude, AWSMistral, GCPClaude, GCPGemini, AzureOpenAI}

// Family is a group of models sharing one quota.
type Family struct {
	Name     string
	Provider Provider
	Image    bool // image generation: IMAGE_MODEL_RATE_LIMIT, not allowed by default
}

// Families lists every family: the original's names where they exist, plus
// families for newer models.
var Families = []Family{
	{"turbo", OpenAI, false},
	{"gpt4", OpenAI, false},
	{"gpt4-32k", OpenAI, false},
	{"gpt4-turbo", OpenAI, false},
	{"gpt4o", OpenAI, false},
	{"gpt41", OpenAI, false},
	{"gpt41-mini", OpenAI, false},
	{"gpt41-nano", OpenAI, false},
	{"gpt45", OpenAI, false},
	{"gpt5", OpenAI, false},
	{"gpt5-mini", OpenAI, false},
	{"gpt5-nano", OpenAI, false},
	{"gpt5-pro", OpenAI, false},
	{"o1", OpenAI, false},
	{"o1-mini", OpenAI, false},
	{"o1-pro", OpenAI, false},
	{"o3", OpenAI, false},
	{"o3-mini", OpenAI, false},
	{"o3-pro", OpenAI, false},
	{"o4-mini", OpenAI, false},
	{"dall-e", OpenAI, true},
	{"gpt-image", OpenAI, true},
	{"claude", Anthropic, false},
	{"claude-opus", Anthropic, false},
	{"gemini-flash", GoogleAI, false},
	{"gemini-pro", GoogleAI, false},
	{"gemini-ultra", GoogleAI, false},
	{"gemini-image", GoogleAI, true},
	{"mistral-tiny", MistralAI, false},
	{"mistral-small", MistralAI, false},
	{"mistral-medium", MistralAI, false},
	{"mistral-large", MistralAI, false},
	{"aws-claude", AWSClaude, false},
	{"aws-claude-opus", AWSClaude, false},
	{"aws-mistral-tiny", AWSMistral, false},
	{"aws-mistral-small", AWSMistral, false},
	{"aws-mistral-medium", AWSMistral, false},
	{"aws-mistral-large", AWSMistral, false},
	{"gcp-claude", GCPClaude, false},
	{"gcp-claude-opus", GCPClaude, false},
	{"gcp-gemini-flash", GCPGemini, false},
	{"gcp-gemini-pro", GCPGemini, false},
	{"gcp-gemini-image", GCPGemini, true},
	{"azure-turbo", AzureOpenAI, false},
	{"azure-gpt4", AzureOpenAI, false},
	{"azure-gpt4-32k", AzureOpenAI, false},
	{"azure-gpt4-turbo", AzureOpenAI, false},
	{"azure-gpt4o", AzureOpenAI, false},
	{"azure-gpt41", AzureOpenAI, false},
	{"azure-gpt41-mini", AzureOpenAI, false},
	{"azure-gpt41-nano", AzureOpenAI, false},
	{"azure-gpt45", AzureOpenAI, false},
	{"azure-gpt5", AzureOpenAI, false},
	{"azure-gpt5-mini", AzureOpenAI, false},
	{"azure-gpt5-nano", AzureOpenAI, false},
	{"azure-gpt5-pro", AzureOpenAI, false},
	{"azure-o1", AzureOpenAI, false},
	{"azure-o1-mini", AzureOpenAI, false},
	{"azure-o1-pro", AzureOpenAI, false},
	{"azure-o3", AzureOpenAI, false},
	{"azure-o3-mini", AzureOpenAI, false},
	{"azure-o3-pro", AzureOpenAI, false},
	{"azure-o4-mini", AzureOpenAI, false},
	{"azure-dall-e", AzureOpenAI, true},
	{"azure-gpt-image", AzureOpenAI, true},
}

// DefaultFamily is where a provider's unknown models are counted.
var DefaultFamily = map[Provider]string{
	OpenAI:      "gpt4o",
	Anthropic:   "claude",
	GoogleAI:    "gemini-flash",
	MistralAI:   "mistral-small",
	AWSClaude:   "aws-claude",
	AWSMistral:  "aws-mistral-small",
	GCPClaude:   "gcp-claude",
	GCPGemini:   "gcp-gemini-flash",
	AzureOpenAI: "azure-gpt4o",
}

type rule struct {
	pattern string // a regexp
	family  string
	// alts is the pattern as alternatives that mostly need no regexp:
	// every request maps its model, an alternation of anchored prefixes
	// makes the regexp engine try every position of the name, and
	// compiling every pattern would cost each cold start a millisecond.
	alts []matcher
}

func r(pattern, family string) rule {
	return rule{pattern: pattern, family: family, alts: compileAlts(pattern)}
}

func (rl *rule) match(model string) bool {
	for i := range rl.alts {
		if rl.alts[i].match(model) {
			return true
		}
	}
	return false
}

// matcher is one alternative of a rule: a literal prefix (anchored) or
// substring (unanchored), then, unless the literal is the whole pattern,
// the alternative's own regexp.
type matcher struct {
	lit      string
	anchored bool
	re       *regexp.Regexp // nil: the literal is the whole pattern
}

func (m *matcher) match(s string) bool {
	if m.anchored {
		if !strings.HasPrefix(s, m.lit) {
			return false
		}
	} else if !strings.Contains(s, m.lit) {
		return false
	}
	return m.re == nil || m.re.MatchString(s)
}

// compileAlts splits a pattern into its top-level alternatives, each with
// its leading literal. The split is exact: the alternatives match what
// the pattern matches (TestMatchersAgreeWithPatterns checks it).
func compileAlts(pattern string) []matcher {
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		panic(err) // the table's patterns are constants
	}
	var out []matcher
	var walk func(re *syntax.Regexp, anchored bool)
	walk = func(re *syntax.Regexp, anchored bool) {
		switch {
		case re.Op == syntax.OpAlternate:
			for _, sub := range re.Sub {
				walk(sub, anchored)
			}
			return
		case re.Op == syntax.OpConcat && len(re.Sub) > 0 && re.Sub[0].Op == syntax.OpBeginText:
			rest := &syntax.Regexp{Op: syntax.OpConcat, Sub: re.Sub[1:]}
			if len(rest.Sub) == 1 {
				rest = rest.Sub[0]
			}
			walk(rest, true)
			return
		}
		m := matcher{anchored: anchored}
		lit, whole := literalPrefix(re)
		m.lit = lit
		if !whole {
			src := re.String()
			if anchored {
				src = `^(?:` + src + `)`
			}
			m.re = regexp.MustCompile(src)
		}
		out = append(out, m)
	}
	walk(tree, false)
	return out
}

// literalPrefix is the case-sensitive literal re starts with, and whether
// it is all of re.
func literalPrefix(re *syntax.Regexp) (string, bool) {
	isLit := func(r *syntax.Regexp) bool { return r.Op == syntax.OpLiteral && r.Flags&syntax.FoldCase == 0 }
	switch {
	case isLit(re):
		return string(re.Rune), true
	case re.Op == syntax.OpConcat && len(re.Sub) > 0 && isLit(re.Sub[0]):
		return string(re.Sub[0].Rune), false
	}
	return "", false
}

// rules are tried in order; the first match wins.
var rules = map[Provider][]rule{
	OpenAI: openAIRules(""),
	// Azure deployments run OpenAI's models; their families are OpenAI's
	// with a prefix, as the original names them.
	AzureOpenAI: openAIRules("azure-"),
	Anthropic: {
		r(`opus`, "claude-opus"),
		r(`^claude`, "claude"),
	},
	// Bedrock and Vertex name Claude models with a vendor prefix and a
	// version suffix (us.anthropic.claude-…-v1:0, claude-…@20240620).
	AWSClaude: {
		r(`opus`, "aws-claude-opus"),
		r(`claude`, "aws-claude"),
	},
	GCPClaude: {
		r(`opus`, "gcp-claude-opus"),
		r(`claude`, "gcp-claude"),
	},
	// Gemini's image models (gemini-2.5-flash-image, …-image-preview,
	// …-image-generation) generate images: image families, whatever
	// flash or pro they name; so do they under their code name
	// (nano-banana-pro-preview is Gemini 3 Pro Image), which names no image.
	GoogleAI: {
		r(`image|nano-banana`, "gemini-image"),
		r(`ultra`, "gemini-ultra"),
		// Gemini 2.5 Computer Use is Gemini 2.5 Pro, priced as it.
		r(`pro|computer-use`, "gemini-pro"),
		r(`flash|^gemini|^gemma`, "gemini-flash"),
	},
	GCPGemini: {
		r(`image|nano-banana`, "gcp-gemini-image"),
		r(`pro|computer-use`, "gcp-gemini-pro"),
		r(`flash|gemini|gemma`, "gcp-gemini-flash"),
	},
	MistralAI: {
		r(`^mistral-tiny|^open-mistral-7b`, "mistral-tiny"),
		r(`^mistral-small|^open-mixtral|^open-mistral-nemo|^ministral|^codestral|^pixtral-12b|^devstral-small|^magistral-small`, "mistral-small"),
		// Devstral 2 (devstral-2512, devstral-latest) succeeds Devstral
		// Medium at its price.
		r(`^mistral-medium|^magistral-medium|^devstral-medium|^devstral-\d|^devstral-latest`, "mistral-medium"),
		r(`^mistral-large|^pixtral-large`, "mistral-large"),
	},
	// Bedrock's Mistral model IDs: mistral.mistral-7b-instruct-v0:2,
	// mistral.mixtral-8x7b-instruct-v0:1, mistral.mistral-large-2402-v1:0.
	AWSMistral: {
		r(`mistral-7b|tiny`, "aws-mistral-tiny"),
		r(`mixtral|small|ministral|nemo`, "aws-mistral-small"),
		r(`medium`, "aws-mistral-medium"),
		r(`large`, "aws-mistral-large"),
	},
}

// openAIRules are OpenAI's model families, named with prefix.
func openAIRules(prefix string) []rule {
	p := func(pattern, family string) rule { return r(pattern, prefix+family) }
	return []rule{
		p(`^gpt-image|^chatgpt-image`, "gpt-image"),
		p(`^dall-e`, "dall-e"),
		p(`^gpt-5(\.\d+)?(-codex)?-nano`, "gpt5-nano"),
		p(`^gpt-5(\.\d+)?(-codex)?-mini`, "gpt5-mini"),
		p(`^gpt-5(\.\d+)?-pro`, "gpt5-pro"),
		p(`^gpt-5`, "gpt5"),
		p(`^gpt-4\.1-nano`, "gpt41-nano"),
		p(`^gpt-4\.1-mini`, "gpt41-mini"),
		p(`^gpt-4\.1`, "gpt41"),
		p(`^gpt-4\.5`, "gpt45"),
		p(`^(chatgpt-)?gpt-4o|^chatgpt-4o`, "gpt4o"),
		p(`^gpt-4-turbo|^gpt-4-\d{4}-preview|^gpt-4-vision`, "gpt4-turbo"),
		p(`^gpt-4-32k`, "gpt4-32k"),
		p(`^gpt-4`, "gpt4"),
		p(`^gpt-3\.5|^gpt-35|^text-embedding|^babbage|^davinci|^(omni|text)-moderation`, "turbo"),
		p(`^o1-mini`, "o1-mini"),
		p(`^o1-pro`, "o1-pro"),
		p(`^o1`, "o1"),
		p(`^o3-mini`, "o3-mini"),
		p(`^o3-pro`, "o3-pro"),
		p(`^o3`, "o3"),
		p(`^o4-mini|^codex-mini`, "o4-mini"),
	}
}

// FamilyOf returns the family of model on provider; unknown models map to
// the provider's default family.
func FamilyOf(p Provider, model string) string {
	p = familiesOf(p)
	if f, ok := ruleFamily(p, model); ok {
		return f
	}
	return DefaultFamily[p]
}

// ruleFamily is the family a rule of p's gives model; ok is false for a
// model no rule knows.
func ruleFamily(p Provider, model string) (family string, ok bool) {
	m := strings.ToLower(strings.TrimPrefix(model, "models/"))
	if rest, ok := strings.CutPrefix(m, "ft:"); ok {
		// A fine-tune (ft:<base>:<org>:<name>:<id>) counts in its base
		// model's family.
		m, _, _ = strings.Cut(rest, ":")
	}
	rs := rules[p]
	for i := range rs {
		if rs[i].match(m) {
			return rs[i].family, true
		}
	}
	return "", false
}

// Kind is what a route generates, which decides the families its models
// can count in.
type Kind int

const (
	Text  Kind = iota // chat, completions, embeddings, token counts
	Image             // image generation
)

// DefaultImageFamily is where a provider's image routes count a model
// that is not an image model. Providers without image routes have none.
var DefaultImageFamily = map[Provider]string{
	OpenAI:      "dall-e",
	AzureOpenAI: "azure-dall-e",
}

// ImageFamilyOf returns the family of model on an image route of
// provider: its own family when that is an image family, else the
// provider's default image family. An unknown (or text) model named on
// an image route must not be counted under a text family's quota and
// rate limit. A provider with no image family answers FamilyOf.
func ImageFamilyOf(p Provider, model string) string {
	p = familiesOf(p)
	def, ok := DefaultImageFamily[p]
	if !ok {
		return FamilyOf(p, model)
	}
	if f, found := byName[FamilyOf(p, model)]; found && f.Image {
		return f.Name
	}
	return def
}

// FamilyFor is FamilyOf on text routes and ImageFamilyOf on image routes.
func FamilyFor(p Provider, model string, k Kind) string {
	if k == Image {
		return ImageFamilyOf(p, model)
	}
	return FamilyOf(p, model)
}

// Reachable lists the families a route of kind k on provider can count a
// request in, whatever model the request names: what FamilyFor can
// answer. The gatekeeper checks them before the request's body is read.
// The slice is shared: callers must not change it.
func Reachable(p Provider, k Kind) []string {
	p = familiesOf(p)
	if _, ok := DefaultImageFamily[p]; k == Image && !ok {
		k = Text // ImageFamilyOf answers FamilyOf
	}
	// Every admitted request asks: the lists are built once, on first use.
	return reachable()[reachKey{p, k}]
}

type reachKey struct {
	p Provider
	k Kind
}

var reachable = sync.OnceValue(func() map[reachKey][]string {
	out := map[reachKey][]string{}
	for _, f := range Families {
		// On a text route an image model's name still maps to its family.
		out[reachKey{f.Provider, Text}] = append(out[reachKey{f.Provider, Text}], f.Name)
		if f.Image {
			out[reachKey{f.Provider, Image}] = append(out[reachKey{f.Provider, Image}], f.Name)
		}
	}
	return out
})

// byName indexes Families, which every admitted request looks up.
var byName = func() map[string]Family {
	m := make(map[string]Family, len(Families))
	for _, f := range Families {
		m[f.Name] = f
	}
	return m
}()

// Lookup returns the family named name.
func Lookup(name string) (Family, bool) {
	f, ok := byName[name]
	return f, ok
}

// TextFamilies lists the names of every non-image family: the default
// ALLOWED_MODEL_FAMILIES.
func TextFamilies() []string {
	var out []string
	for _, f := range Families {
		if !f.Image {
			out = append(out, f.Name)
		}
	}
	return out
}

// Names lists every family name.
func Names() []string {
	out := make([]string, len(Families))
	for i, f := range Families {
		out[i] = f.Name
	}
	return out
}

// reasoningFamilies think before they answer whatever the request says,
// and are billed for it: an answer cut short may have cost up to its
// whole output limit.
var reasoningFamilies = map[string]bool{
	"o1": true, "o1-mini": true, "o1-pro": true, "o3": true, "o3-mini": true, "o3-pro": true, "o4-mini": true,
	"gpt5": true, "gpt5-mini": true, "gpt5-nano": true, "gpt5-pro": true, "gemini-pro": true,
	"azure-o1": true, "azure-o1-mini": true, "azure-o1-pro": true, "azure-o3": true, "azure-o3-mini": true,
	"azure-o3-pro": true, "azure-o4-mini": true, "azure-gpt5": true, "azure-gpt5-mini": true,
	"azure-gpt5-nano": true, "azure-gpt5-pro": true, "gcp-gemini-pro": true,
}

// Reasoning reports whether family's models always reason.
func Reasoning(family string) bool { return reasoningFamilies[family] }
