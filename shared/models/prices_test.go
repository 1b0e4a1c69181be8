package models_test

import (
	"testing"

	"tollgate.dev/tollgate/shared/models"
)

func TestPrices(t *testing.T) {
	p := models.Prices()
	// The original's rates (dollars per million tokens), and cloud
	// families at their direct counterpart's.
	for f, want := range map[string]float64{
		"gpt4o": 5, "azure-gpt4o": 5, "gpt4": 30, "turbo": 1, "claude": 8, "aws-claude": 8, "gcp-claude": 8,
		"claude-opus": 15, "gcp-claude-opus": 15, "mistral-medium": 5.5, "aws-mistral-medium": 5.5, "gcp-gemini-pro": p["gemini-pro"],
	} {
		if p[f] != want || want <= 0 {
			t.Errorf("price of %s = %v, want %v", f, p[f], want)
		}
	}
	for _, f := range models.Families {
		if p[f.Name] <= 0 {
			t.Errorf("family %s has no price", f.Name)
		}
	}
	p["gpt4o"] = 999
	if models.Prices()["gpt4o"] != 5 {
		t.Error("Prices shares its table with callers")
	}
}
