package models

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestFamilyOf(t *testing.T) {
	cases := []struct {
		p     Provider
		model string
		want  string
	}{
		// OpenAI: the original's families.
		{OpenAI, "gpt-3.5-turbo", "turbo"},
		{OpenAI, "gpt-3.5-turbo-0125", "turbo"},
		{OpenAI, "text-embedding-3-small", "turbo"},
		{OpenAI, "omni-moderation-latest", "turbo"},
		{OpenAI, "gpt-4", "gpt4"},
		{OpenAI, "gpt-4-0613", "gpt4"},
		{OpenAI, "gpt-4-32k", "gpt4-32k"},
		{OpenAI, "gpt-4-turbo", "gpt4-turbo"},
		{OpenAI, "gpt-4-turbo-2024-04-09", "gpt4-turbo"},
		{OpenAI, "gpt-4-1106-preview", "gpt4-turbo"},
		{OpenAI, "gpt-4o", "gpt4o"},
		{OpenAI, "gpt-4o-2024-11-20", "gpt4o"},
		{OpenAI, "gpt-4o-mini", "gpt4o"},
		{OpenAI, "chatgpt-4o-latest", "gpt4o"},
		// OpenAI: newer models.
		{OpenAI, "gpt-4.1", "gpt41"},
		{OpenAI, "gpt-4.1-2025-04-14", "gpt41"},
		{OpenAI, "gpt-4.1-mini", "gpt41-mini"},
		{OpenAI, "gpt-4.1-nano", "gpt41-nano"},
		{OpenAI, "gpt-4.5-preview", "gpt45"},
		{OpenAI, "gpt-5", "gpt5"},
		{OpenAI, "gpt-5-2025-08-07", "gpt5"},
		{OpenAI, "gpt-5-chat-latest", "gpt5"},
		{OpenAI, "gpt-5-codex", "gpt5"},
		{OpenAI, "gpt-5.1", "gpt5"},
		{OpenAI, "gpt-5-mini", "gpt5-mini"},
		{OpenAI, "gpt-5.1-codex-mini", "gpt5-mini"},
		{OpenAI, "gpt-5-nano", "gpt5-nano"},
		{OpenAI, "gpt-5-pro", "gpt5-pro"},
		{OpenAI, "gpt-5.2-pro", "gpt5-pro"},
		{OpenAI, "o1", "o1"},
		{OpenAI, "o1-2024-12-17", "o1"},
		{OpenAI, "o1-mini", "o1-mini"},
		{OpenAI, "o1-pro", "o1-pro"},
		{OpenAI, "o3", "o3"},
		{OpenAI, "o3-deep-research", "o3"},
		{OpenAI, "o3-mini", "o3-mini"},
		{OpenAI, "o3-pro", "o3-pro"},
		{OpenAI, "o4-mini", "o4-mini"},
		{OpenAI, "codex-mini-latest", "o4-mini"},
		{OpenAI, "dall-e-3", "dall-e"},
		{OpenAI, "gpt-image-1", "gpt-image"},
		{OpenAI, "GPT-4O", "gpt4o"}, // case-insensitive
		{OpenAI, "some-future-model", "gpt4o"},
		{OpenAI, "", "gpt4o"},
		// Anthropic.
		{Anthropic, "claude-opus-4-1-20250805", "claude-opus"},
		{Anthropic, "claude-opus-4-5", "claude-opus"},
		{Anthropic, "claude-3-opus-20240229", "claude-opus"},
		{Anthropic, "claude-sonnet-4-5-20250929", "claude"},
		{Anthropic, "claude-sonnet-4-0", "claude"},
		{Anthropic, "claude-haiku-4-5", "claude"},
		{Anthropic, "claude-3-7-sonnet-latest", "claude"},
		{Anthropic, "claude-3-5-haiku-20241022", "claude"},
		{Anthropic, "unknown", "claude"},
		// Google AI.
		{GoogleAI, "gemini-2.5-flash", "gemini-flash"},
		{GoogleAI, "gemini-2.5-flash-lite", "gemini-flash"},
		{GoogleAI, "gemini-2.0-flash-001", "gemini-flash"},
		{GoogleAI, "gemini-3-flash-preview", "gemini-flash"},
		{GoogleAI, "models/gemini-2.5-pro", "gemini-pro"},
		{GoogleAI, "gemini-3-pro-preview", "gemini-pro"},
		{GoogleAI, "gemini-1.0-ultra", "gemini-ultra"},
		{GoogleAI, "gemma-3-27b-it", "gemini-flash"},
		{GoogleAI, "learnlm-2.0", "gemini-flash"},
		// Gemini 2.5 Computer Use is Gemini 2.5 Pro, at its prices.
		{GoogleAI, "gemini-2.5-computer-use-preview-10-2025", "gemini-pro"},
		// Image models: whatever pro or flash they name, and under their
		// code name (Nano Banana Pro is served as nano-banana-pro-preview).
		{GoogleAI, "gemini-2.5-flash-image", "gemini-image"},
		{GoogleAI, "gemini-3-pro-image-preview", "gemini-image"},
		{GoogleAI, "nano-banana-pro-preview", "gemini-image"},
		{GoogleAI, "models/nano-banana-pro-preview", "gemini-image"},
		{GoogleAI, "Nano-Banana-2", "gemini-image"},
		// Mistral AI.
		{MistralAI, "mistral-tiny", "mistral-tiny"},
		{MistralAI, "open-mistral-7b", "mistral-tiny"},
		{MistralAI, "mistral-small-latest", "mistral-small"},
		{MistralAI, "open-mistral-nemo", "mistral-small"},
		{MistralAI, "ministral-8b-latest", "mistral-small"},
		{MistralAI, "codestral-latest", "mistral-small"},
		{MistralAI, "mistral-medium-2508", "mistral-medium"},
		{MistralAI, "magistral-medium-latest", "mistral-medium"},
		{MistralAI, "mistral-large-latest", "mistral-large"},
		{MistralAI, "pixtral-large-latest", "mistral-large"},
		{MistralAI, "mistral-saba-latest", "mistral-small"},
		// Devstral 2 (devstral-2512, devstral-latest) is Devstral Medium's
		// successor, at its price; Devstral Small 2 is small.
		{MistralAI, "devstral-2512", "mistral-medium"},
		{MistralAI, "devstral-latest", "mistral-medium"},
		{MistralAI, "devstral-medium-latest", "mistral-medium"},
		{MistralAI, "devstral-small-2507", "mistral-small"},
		{MistralAI, "labs-devstral-small-2512", "mistral-small"},
		{MistralAI, "ft:devstral-2512:587a6b29:20251210:7e773925", "mistral-medium"},
		// Cloud providers: the original's families, from the model IDs each
		// service uses.
		{AWSClaude, "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws-claude"},
		{AWSClaude, "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "aws-claude"},
		{AWSClaude, "us.anthropic.claude-opus-4-20250514-v1:0", "aws-claude-opus"},
		{AWSClaude, "claude-3-opus-20240229", "aws-claude-opus"},
		{AWSMistral, "mistral.mistral-7b-instruct-v0:2", "aws-mistral-tiny"},
		{AWSMistral, "mistral.mixtral-8x7b-instruct-v0:1", "aws-mistral-small"},
		{AWSMistral, "mistral.mistral-small-2402-v1:0", "aws-mistral-small"},
		{AWSMistral, "mistral.mistral-large-2407-v1:0", "aws-mistral-large"},
		{GCPClaude, "claude-3-5-sonnet@20240620", "gcp-claude"},
		{GCPClaude, "claude-opus-4@20250514", "gcp-claude-opus"},
		{GCPGemini, "gemini-2.5-pro", "gcp-gemini-pro"},
		{GCPGemini, "gemini-2.0-flash-001", "gcp-gemini-flash"},
		{GCPGemini, "nano-banana-pro-preview", "gcp-gemini-image"},
		{GCPGemini, "gemini-2.5-computer-use-preview-10-2025", "gcp-gemini-pro"},
		{AzureOpenAI, "gpt-35-turbo", "azure-turbo"},
		{AzureOpenAI, "gpt-4-32k", "azure-gpt4-32k"},
		{AzureOpenAI, "gpt-4o-2024-08-06", "azure-gpt4o"},
		{AzureOpenAI, "o3-mini", "azure-o3-mini"},
		{AzureOpenAI, "gpt-4.1", "azure-gpt41"},
		{AzureOpenAI, "dall-e-3", "azure-dall-e"},
		{AzureOpenAI, "my-deployment", "azure-gpt4o"},
		// The image mount counts in OpenAI's families.
		{OpenAIImage, "dall-e-3", "dall-e"},
		{OpenAIImage, "gpt-image-1", "gpt-image"},
	}
	if got := ImageFamilyOf(OpenAIImage, "gpt-4o"); got != "dall-e" {
		t.Errorf("ImageFamilyOf(openai-image, gpt-4o) = %q, want dall-e", got)
	}
	if got := Reachable(OpenAIImage, Image); !slices.Equal(got, Reachable(OpenAI, Image)) || len(got) == 0 {
		t.Errorf("Reachable(openai-image) = %v", got)
	}
	for _, tc := range cases {
		if got := FamilyOf(tc.p, tc.model); got != tc.want {
			t.Errorf("FamilyOf(%s, %q) = %q, want %q", tc.p, tc.model, got, tc.want)
		}
	}
}

// Every rule and default must name a family of the right provider, or a
// model would be counted in a family the allow-list and quotas do not know.
func TestTableConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Families {
		if seen[f.Name] {
			t.Errorf("family %q listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.Name != strings.ToLower(f.Name) {
			t.Errorf("family %q is not lower case", f.Name)
		}
	}
	for _, p := range Providers {
		def, ok := Lookup(DefaultFamily[p])
		if !ok || def.Provider != p || def.Image {
			t.Errorf("default family of %s is %q: want a text family of %s", p, DefaultFamily[p], p)
		}
		for _, rl := range rules[p] {
			f, ok := Lookup(rl.family)
			if !ok || f.Provider != p {
				t.Errorf("rule %s → %q: not a family of %s", rl.pattern, rl.family, p)
			}
		}
	}
	for _, name := range TextFamilies() {
		if f, _ := Lookup(name); f.Image {
			t.Errorf("TextFamilies lists image family %q", name)
		}
	}
	if len(Names()) != len(Families) {
		t.Errorf("Names() has %d entries, want %d", len(Names()), len(Families))
	}
}

// The fast matchers FamilyOf uses must agree with the table's patterns on
// every name: the known models, near misses, and names built from every
// literal in the table.
func TestMatchersAgreeWithPatterns(t *testing.T) {
	names := []string{"", "gpt", "gpt-5", "gpt-5.1-codex-mini", "gpt-5.12-nano", "gpt-5.-nano", "gpt-5-codex-nano",
		"chatgpt-4o-latest", "chatgpt-gpt-4o", "chatgpt-", "gpt-4-0125-preview", "gpt-4-012-preview", "gpt-4-vision-preview",
		"omni-moderation-x", "text-moderation-007", "moderation", "xopus", "ultrapro", "pro", "gemma-3", "models/gemini",
		"open-mistral-7b", "open-mistral-nemo", "mistral-tiny-2", "GPT-4O", "o1", "o10", "codex-mini-latest", "ft:gpt-4o:org"}
	for _, rs := range rules {
		for _, rl := range rs {
			for _, m := range rl.alts {
				names = append(names, m.lit, m.lit+"-x", "x"+m.lit, m.lit[:len(m.lit)/2])
			}
		}
	}
	for p, rs := range rules {
		for _, rl := range rs {
			re := regexp.MustCompile(rl.pattern)
			for _, name := range names {
				if got, want := rl.match(name), re.MatchString(name); got != want {
					t.Errorf("%s rule %s on %q: fast %v, regexp %v", p, rl.pattern, name, got, want)
				}
			}
		}
	}
}

func TestMaxOutput(t *testing.T) {
	for _, c := range []struct {
		p     Provider
		model string
		want  int64
	}{
		{OpenAI, "gpt-4o-mini", 16_384},
		{OpenAI, "ft:gpt-4o-mini-2024-07-18:org::abc", 16_384},
		{OpenAI, "gpt-5.2-pro", 272_000},
		{OpenAI, "o4-mini", 100_000},
		{AzureOpenAI, "gpt-4.1", 32_768},
		{AWSMistral, "mistral.mistral-7b-instruct-v0:2", 32_768},
		{OpenAIImage, "gpt-4o", 16_384},
		// Unknown models, and families the table leaves to the provider.
		{OpenAI, "gpt-7-preview", 0},
		{GoogleAI, "gemini-2.5-flash", 0},
		{MistralAI, "mistral-large-latest", 0},
		{Anthropic, "claude-sonnet-4-5", 0},
	} {
		if got := MaxOutput(c.p, c.model); got != c.want {
			t.Errorf("MaxOutput(%s, %q) = %d, want %d", c.p, c.model, got, c.want)
		}
	}
}
