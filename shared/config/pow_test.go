package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
)

// powEnv is a user_token gatekeeper with proof of work on, plus extra.
func powEnv(extra map[string]string) map[string]string {
	env := map[string]string{"GATEKEEPER": "user_token", "ADMIN_KEY": "admin-key", "CAPTCHA_MODE": "proof_of_work"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestPoWDefaults(t *testing.T) {
	got := load(t, map[string]string{}).PoW
	want := config.PoW{
		Mode:             config.CaptchaNone,
		Difficulty:       "low",
		Work:             200,
		ChallengeTimeout: 30 * time.Minute,
		TokenLifetime:    24 * time.Hour,
		TokenMaxIPs:      2,
		RefreshWindow:    48 * time.Hour,
	}
	if got != want {
		t.Errorf("PoW = %+v, want the original's defaults %+v", got, want)
	}
	if got.Enabled() {
		t.Error("enabled by default")
	}
}

func TestPoWValidValues(t *testing.T) {
	tests := []struct {
		env   map[string]string
		check func(p config.PoW) bool
	}{
		{map[string]string{}, func(p config.PoW) bool { return p.Enabled() && p.Mode == config.CaptchaProofOfWork }},
		{map[string]string{"CAPTCHA_MODE": "NONE", "GATEKEEPER": "none"}, func(p config.PoW) bool { return !p.Enabled() }},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "medium"}, func(p config.PoW) bool { return p.Work == 900 && p.Difficulty == "medium" }},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "High"}, func(p config.PoW) bool { return p.Work == 1900 }},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "extreme"}, func(p config.PoW) bool { return p.Work == 4000 }},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "1"}, func(p config.PoW) bool { return p.Work == 1 && p.Difficulty == "1" }},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "12345"}, func(p config.PoW) bool { return p.Work == 12345 }},
		{map[string]string{"POW_CHALLENGE_TIMEOUT": "5"}, func(p config.PoW) bool { return p.ChallengeTimeout == 5*time.Minute }},
		{map[string]string{"POW_TOKEN_HOURS": "0.5"}, func(p config.PoW) bool { return p.TokenLifetime == 30*time.Minute }},
		{map[string]string{"POW_TOKEN_MAX_IPS": "0"}, func(p config.PoW) bool { return p.TokenMaxIPs == 0 }},
		{map[string]string{"POW_TOKEN_MAX_IPS": "5"}, func(p config.PoW) bool { return p.TokenMaxIPs == 5 }},
		{map[string]string{"POW_TOKEN_PURGE_HOURS": "0"}, func(p config.PoW) bool { return p.RefreshWindow == 0 }},
		{map[string]string{"POW_TOKEN_PURGE_HOURS": "72"}, func(p config.PoW) bool { return p.RefreshWindow == 72*time.Hour }},
		{map[string]string{"POW_MAX_TOKENS_PER_IP": "3"}, func(p config.PoW) bool { return p.MaxTokensPerIP == 3 }},
		{map[string]string{"POW_TOKEN_MAX_REFRESHES": "4"}, func(p config.PoW) bool { return p.MaxRefreshes == 4 }},
	}
	for _, tc := range tests {
		p := load(t, powEnv(tc.env)).PoW
		if !tc.check(p) {
			t.Errorf("%v: PoW = %+v", tc.env, p)
		}
	}
}

func TestPoWInvalidValues(t *testing.T) {
	tests := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"CAPTCHA_MODE": "recaptcha"}, "CAPTCHA_MODE"},
		{map[string]string{"GATEKEEPER": "proxy_key", "PROXY_KEY": "k"}, "CAPTCHA_MODE"},
		{map[string]string{"GATEKEEPER": "none"}, "CAPTCHA_MODE"},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "insane"}, "POW_DIFFICULTY_LEVEL"},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "0"}, "POW_DIFFICULTY_LEVEL"},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "-5"}, "POW_DIFFICULTY_LEVEL"},
		{map[string]string{"POW_DIFFICULTY_LEVEL": "1.5"}, "POW_DIFFICULTY_LEVEL"},
		{map[string]string{"POW_CHALLENGE_TIMEOUT": "0"}, "POW_CHALLENGE_TIMEOUT"},
		{map[string]string{"POW_CHALLENGE_TIMEOUT": "30m"}, "POW_CHALLENGE_TIMEOUT"},
		{map[string]string{"POW_CHALLENGE_TIMEOUT": "NaN"}, "POW_CHALLENGE_TIMEOUT"},
		{map[string]string{"POW_TOKEN_HOURS": "-1"}, "POW_TOKEN_HOURS"},
		{map[string]string{"POW_TOKEN_HOURS": "1e9"}, "POW_TOKEN_HOURS"},
		{map[string]string{"POW_TOKEN_MAX_IPS": "two"}, "POW_TOKEN_MAX_IPS"},
		{map[string]string{"POW_TOKEN_PURGE_HOURS": "-1"}, "POW_TOKEN_PURGE_HOURS"},
		{map[string]string{"POW_MAX_TOKENS_PER_IP": "101"}, "POW_MAX_TOKENS_PER_IP"},
		{map[string]string{"POW_TOKEN_MAX_REFRESHES": "-1"}, "POW_TOKEN_MAX_REFRESHES"},
	}
	for _, tc := range tests {
		_, err := config.FromMap(powEnv(tc.env))
		var ce *config.Error
		if !errors.As(err, &ce) {
			t.Errorf("%v: err = %v, want a *config.Error", tc.env, err)
			continue
		}
		if ce.Var != tc.wantVar || !strings.Contains(err.Error(), tc.wantVar) {
			t.Errorf("%v: error %q names %s, want %s", tc.env, err, ce.Var, tc.wantVar)
		}
	}
}
