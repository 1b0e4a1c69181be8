package providers

import "testing"

// Only a provider's own signals say a key is bad; what a request provokes
// never does.
func TestKeyDead(t *testing.T) {
	cases := []struct {
		p      *Provider
		status int
		body   string
		dead   bool
	}{
		{openAI, 401, `{"error":{"code":"invalid_api_key"}}`, true},
		{openAI, 429, `{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}`, true},
		{openAI, 429, `{"error":{"code":"rate_limit_exceeded"}}`, false},
		{openAI, 403, `{"error":{"type":"permission_error","message":"You are not allowed to sample from this model"}}`, false},
		{openAI, 404, `{"error":{"code":"model_not_found"}}`, false},
		{anthropic, 401, `{"type":"error","error":{"type":"authentication_error"}}`, true},
		{anthropic, 400, anthropicLowCredit, true},
		// Validation errors quote the request: the phrase is not the error.
		{anthropic, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages.0.content.0: Input tag 'Your credit balance is too low' found using 'type' does not match any of the expected tags"}}`, false},
		{anthropic, 400, `{"type":"error","error":{"type":"invalid_request_error","message":"model: Your credit balance is too low to access the Anthropic API."}}`, false},
		{anthropic, 400, `{"type":"error","error":{"type":"not_an_error","message":"x"},"note":{"type":"invalid_request_error","message":"Your credit balance is too low"}}`, false},
		{openAI, 429, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded","param":"insufficient_quota"}}`, false},
		{anthropic, 403, `{"type":"error","error":{"type":"permission_error"}}`, false},
		{anthropic, 404, `{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}`, false},
		{googleAI, 400, `{"error":{"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}`, true},
		{googleAI, 403, `{"error":{"status":"PERMISSION_DENIED","details":[{"reason":"CONSUMER_SUSPENDED"}]}}`, true},
		{googleAI, 403, `{"error":{"status":"PERMISSION_DENIED","message":"You do not have permission to access the CachedContent abc"}}`, false},
		{googleAI, 400, `{"error":{"status":"INVALID_ARGUMENT","message":"Invalid JSON payload"}}`, false},
		{googleAI, 400, googleKeyInvalid, true},
		{googleAI, 400, `[` + googleKeyInvalid + `]`, true},
		{googleAI, 400, `{"error":{"code":400,"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"API_KEY_INVALID","description":"Cannot find field."}]}]}}`, false},
		{mistralAI, 401, `{"message":"Unauthorized"}`, true},
		{mistralAI, 403, `{"message":"model not available on your plan"}`, false},
	}
	for _, tc := range cases {
		if got := tc.p.KeyDead(tc.status, []byte(tc.body)); got != tc.dead {
			t.Errorf("%s %d %s: dead %v, want %v", tc.p.Name, tc.status, tc.body, got, tc.dead)
		}
	}
}

// What the providers answer (request ids elided).
const (
	anthropicLowCredit = `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."},"request_id":"req_011C"}`
	googleKeyInvalid   = `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}`
)
