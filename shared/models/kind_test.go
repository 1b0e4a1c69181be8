package models

import (
	"slices"
	"testing"
)

func TestFamilyForImageRoutes(t *testing.T) {
	cases := []struct {
		p     Provider
		model string
		k     Kind
		want  string
	}{
		{OpenAI, "dall-e-3", Image, "dall-e"},
		{OpenAI, "dall-e-2", Image, "dall-e"},
		{OpenAI, "gpt-image-1", Image, "gpt-image"},
		{OpenAI, "gpt-image-1-mini", Image, "gpt-image"},
		// Not image models: on an image route they count as images,
		// never under a text family's quota.
		{OpenAI, "totally-new-image-model", Image, "dall-e"},
		{OpenAI, "", Image, "dall-e"},
		{OpenAI, "gpt-4o", Image, "dall-e"},
		{OpenAI, "models/o3", Image, "dall-e"},
		// Text routes are unchanged.
		{OpenAI, "totally-new-image-model", Text, "gpt4o"},
		{OpenAI, "gpt-4o", Text, "gpt4o"},
		{OpenAI, "dall-e-3", Text, "dall-e"},
		// A provider without image families keeps FamilyOf.
		{Anthropic, "claude-opus-4", Image, "claude-opus"},
		{GoogleAI, "gemini-2.0-flash", Image, "gemini-flash"},
		// Gemini's image models are images wherever they are named.
		{GoogleAI, "gemini-2.5-flash-image", Text, "gemini-image"},
		{GoogleAI, "gemini-3-pro-image-preview", Text, "gemini-image"},
		{GCPGemini, "gemini-2.0-flash-preview-image-generation", Text, "gcp-gemini-image"},
		{GoogleAI, "imagen-4.0-generate-001", Text, "gemini-image"},
		// OpenAI's GPT Image alias for the Images API.
		{OpenAI, "chatgpt-image-latest", Image, "gpt-image"},
	}
	for _, c := range cases {
		if got := FamilyFor(c.p, c.model, c.k); got != c.want {
			t.Errorf("FamilyFor(%s, %q, %v) = %q, want %q", c.p, c.model, c.k, got, c.want)
		}
		if c.k == Image {
			if got := ImageFamilyOf(c.p, c.model); got != c.want {
				t.Errorf("ImageFamilyOf(%s, %q) = %q, want %q", c.p, c.model, got, c.want)
			}
		}
	}
}

func TestReachable(t *testing.T) {
	cases := []struct {
		p    Provider
		k    Kind
		want []string
	}{
		{OpenAI, Image, []string{"dall-e", "gpt-image"}},
		{Anthropic, Text, []string{"claude", "claude-opus"}},
		{Anthropic, Image, []string{"claude", "claude-opus"}},
		{MistralAI, Text, []string{"mistral-tiny", "mistral-small", "mistral-medium", "mistral-large"}},
	}
	for _, c := range cases {
		if got := Reachable(c.p, c.k); !slices.Equal(got, c.want) {
			t.Errorf("Reachable(%s, %v) = %v, want %v", c.p, c.k, got, c.want)
		}
	}
	// Whatever model a request names, its family is among the reachable
	// ones: the pre-body checks rely on it.
	names := []string{"", "gpt-4o", "dall-e-3", "gpt-image-1", "o3-pro", "claude-3-opus", "gemini-2.5-pro", "mistral-large-latest", "x"}
	for _, p := range Providers {
		for _, k := range []Kind{Text, Image} {
			reach := Reachable(p, k)
			for _, m := range names {
				if f := FamilyFor(p, m, k); !slices.Contains(reach, f) {
					t.Errorf("FamilyFor(%s, %q, %v) = %q, not in Reachable %v", p, m, k, f, reach)
				}
			}
		}
	}
}

// Fine-tuned models ("ft:<base>:<org>::<id>", as OpenAI and Mistral name
// them) count in their base
// model's family, not in the provider's default one.
func TestFineTunedModelsCountInTheirBaseFamily(t *testing.T) {
	cases := []struct {
		p           Provider
		model, want string
	}{
		{OpenAI, "ft:o4-mini-2025-04-16:acme::BXyz123", "o4-mini"},
		{OpenAI, "ft:gpt-4.1-2025-04-14:acme::BXyz123", "gpt41"},
		{OpenAI, "ft:gpt-3.5-turbo-0125:acme::BXyz123", "turbo"},
		{MistralAI, "ft:mistral-large-latest:587a6b29:20240514:7e773925", "mistral-large"},
		{MistralAI, "ft:mistral-medium-latest:587a6b29:20240514:7e773925", "mistral-medium"},
	}
	for _, c := range cases {
		if got := FamilyOf(c.p, c.model); got != c.want {
			t.Errorf("FamilyOf(%s, %q) = %q, want %q", c.p, c.model, got, c.want)
		}
	}
	if f := FamilyOf(OpenAI, "ft:o4-mini-2025-04-16:acme::BXyz123"); !Reasoning(f) {
		t.Errorf("a fine-tuned o4-mini counts in %q, not a reasoning family: a cut stream is charged without its hidden thinking", f)
	}
}
