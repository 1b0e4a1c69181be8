package models

import "testing"

// benchModels are typical requests, including late matches in the rule
// lists and unknown models that fall through to the default.
var benchModels = []struct {
	p     Provider
	model string
}{
	{OpenAI, "gpt-4o-mini"},
	{OpenAI, "gpt-4.1-nano"},
	{OpenAI, "o3-mini"},
	{OpenAI, "gpt-3.5-turbo"},
	{OpenAI, "my-fine-tune"},
	{Anthropic, "claude-sonnet-4-5"},
	{Anthropic, "claude-opus-4-1"},
	{GoogleAI, "models/gemini-2.5-flash"},
	{GoogleAI, "gemini-2.5-pro"},
	{MistralAI, "mistral-large-latest"},
}

// BenchmarkFamilyOf maps a model to its family, as every admitted request
// does once.
func BenchmarkFamilyOf(b *testing.B) {
	for _, m := range benchModels {
		b.Run(string(m.p)+"/"+m.model, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if FamilyOf(m.p, m.model) == "" {
					b.Fatal("no family")
				}
			}
		})
	}
}

// BenchmarkLookup finds a family's properties (image or text), as the
// rate limiter does for every admitted request.
func BenchmarkLookup(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Lookup("mistral-large"); !ok {
			b.Fatal("not found")
		}
	}
}
