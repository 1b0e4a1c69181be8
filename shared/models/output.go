package models

// maxOutput is the most output the models of a family write for a
// request that names no limit (their own maximum, as their documentation
// gives it), by direct family; a cloud family's is its counterpart's.
// Families whose models differ widely from their provider's largest are
// listed; the others take the provider's figure.
var maxOutput = map[string]int64{
	"turbo": 16_384, "gpt4": 8_192, "gpt4-32k": 32_768, "gpt4-turbo": 4_096, "gpt4o": 16_384,
	"gpt41": 32_768, "gpt41-mini": 32_768, "gpt41-nano": 32_768, "gpt45": 16_384,
	"gpt5": 128_000, "gpt5-mini": 128_000, "gpt5-nano": 128_000, "gpt5-pro": 272_000,
	"o1": 100_000, "o1-mini": 65_536, "o1-pro": 100_000, "o3": 100_000, "o3-mini": 100_000, "o3-pro": 100_000, "o4-mini": 100_000,
	// Mistral 7B's context window, which alone bounds its output.
	"mistral-tiny": 32_768,
}

// MaxOutput is the most output model writes on p for a request naming no
// limit, when its family is listed and a rule of the table names the
// model; 0 otherwise (an unknown model, counted in its provider's
// default family, may be a newer one that writes more).
func MaxOutput(p Provider, model string) int64 {
	f, ok := ruleFamily(familiesOf(p), model)
	if !ok {
		return 0
	}
	return maxOutput[counterpart(f)]
}
