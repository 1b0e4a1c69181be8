package models

// prices are US dollars per million tokens by family, one blended rate for
// prompt and output (usage is counted as one number per family), for the
// self-service page with SHOW_TOKEN_COSTS. The original's rates where it
// had them; list prices of the newer models otherwise. Operators override
// any with TOKEN_COST_<FAMILY>. A family missing here costs 0 (not shown).
var prices = map[string]float64{
	"turbo": 1, "gpt4": 30, "gpt4-32k": 60, "gpt4-turbo": 10, "gpt4o": 5,
	"gpt41": 2, "gpt41-mini": 0.4, "gpt41-nano": 0.1, "gpt45": 75,
	"gpt5": 1.25, "gpt5-mini": 0.25, "gpt5-nano": 0.05, "gpt5-pro": 15,
	"o1": 15, "o1-mini": 1.1, "o1-pro": 150, "o3": 2, "o3-mini": 1.1, "o3-pro": 20, "o4-mini": 1.1,
	"dall-e": 10, "gpt-image": 10,
	"claude": 8, "claude-opus": 15,
	"gemini-flash": 0.3, "gemini-pro": 1.25, "gemini-ultra": 5, "gemini-image": 30,
	"mistral-tiny": 0.31, "mistral-small": 1.32, "mistral-medium": 5.5, "mistral-large": 8,
}

// Prices returns a fresh copy of the price table (US dollars per million
// tokens by family). Cloud families cost what their direct counterpart
// does: aws-claude as claude, azure-gpt4o as gpt4o.
func Prices() map[string]float64 {
	out := make(map[string]float64, len(Families))
	for _, f := range Families {
		if p, ok := prices[f.Name]; ok {
			out[f.Name] = p
			continue
		}
		if p, ok := prices[counterpart(f.Name)]; ok {
			out[f.Name] = p
		}
	}
	return out
}

// counterpart is the direct provider's family of a cloud family.
func counterpart(name string) string {
	for _, prefix := range []string{"aws-", "gcp-", "azure-"} {
		if len(name) > len(prefix) && name[:len(prefix)] == prefix {
			return name[len(prefix):]
		}
	}
	return name
}
