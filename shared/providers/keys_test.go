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
		{anthropic, 400, `{"type":"error","error":{"message":"Your credit balance is too low to access the Anthropic API."}}`, true},
		{anthropic, 403, `{"type":"error","error":{"type":"permission_error"}}`, false},
		{anthropic, 404, `{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}`, false},
		{googleAI, 400, `{"error":{"status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}`, true},
		{googleAI, 403, `{"error":{"status":"PERMISSION_DENIED","details":[{"reason":"CONSUMER_SUSPENDED"}]}}`, true},
		{googleAI, 403, `{"error":{"status":"PERMISSION_DENIED","message":"You do not have permission to access the CachedContent abc"}}`, false},
		{googleAI, 400, `{"error":{"status":"INVALID_ARGUMENT","message":"Invalid JSON payload"}}`, false},
		{mistralAI, 401, `{"message":"Unauthorized"}`, true},
		{mistralAI, 403, `{"message":"model not available on your plan"}`, false},
	}
	for _, tc := range cases {
		if got := tc.p.KeyDead(tc.status, []byte(tc.body)); got != tc.dead {
			t.Errorf("%s %d %s: dead %v, want %v", tc.p.Name, tc.status, tc.body, got, tc.dead)
		}
	}
}
