package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// CaptchaMode is how visitors may earn a temporary token (CAPTCHA_MODE).
type CaptchaMode string

const (
	CaptchaNone        CaptchaMode = "none"
	CaptchaProofOfWork CaptchaMode = "proof_of_work"
)

// PowLevels are the work factors (expected hashes per solve) of the named
// POW_DIFFICULTY_LEVEL values, the original's.
var PowLevels = map[string]int64{"low": 200, "medium": 900, "high": 1900, "extreme": 4000}

// PoW is the proof-of-work token issuance at /user/captcha.
type PoW struct {
	Mode CaptchaMode
	// Difficulty is POW_DIFFICULTY_LEVEL as given (lower case); Work is
	// its work factor.
	Difficulty string
	Work       int64
	// ChallengeTimeout is how long a challenge may take (POW_CHALLENGE_TIMEOUT, minutes).
	ChallengeTimeout time.Duration
	// TokenLifetime is an issued or refreshed token's validity (POW_TOKEN_HOURS).
	TokenLifetime time.Duration
	// TokenMaxIPs is an issued token's maxIps (POW_TOKEN_MAX_IPS; 0: unlimited).
	TokenMaxIPs int64
	// RefreshWindow is how long after expiry a token may still be
	// refreshed (POW_TOKEN_PURGE_HOURS).
	RefreshWindow time.Duration
	// MaxTokensPerIP caps tokens issued to one address per TokenLifetime
	// (POW_MAX_TOKENS_PER_IP; 0: no cap beyond the per-minute one).
	MaxTokensPerIP int
	// MaxRefreshes caps refreshes of one token (POW_TOKEN_MAX_REFRESHES; 0: unlimited).
	MaxRefreshes int
}

// PurgeAfter is how long purge-temporary keeps a disabled temporary user:
// RefreshWindow, as the original purged after powTokenPurgeHours, so that
// no token is deleted while it may still be extended; 0 hours is a
// millisecond (right away), since a zero users.Service.PurgeAfter means
// its default.
func (p PoW) PurgeAfter() time.Duration { return max(p.RefreshWindow, time.Millisecond) }

// Enabled reports whether /user/captcha issues tokens.
func (p PoW) Enabled() bool { return p.Mode == CaptchaProofOfWork }

// pow reads CAPTCHA_MODE and the POW_* variables.
func (p *parser) pow(gk Mode) PoW {
	c := PoW{Mode: CaptchaMode(p.oneOf("CAPTCHA_MODE", "none", "none", "proof_of_work"))}
	c.Difficulty, c.Work = p.powDifficulty("POW_DIFFICULTY_LEVEL")
	c.ChallengeTimeout = p.powSpan("POW_CHALLENGE_TIMEOUT", 30, time.Minute, false, 24*60, "minutes")
	c.TokenLifetime = p.powSpan("POW_TOKEN_HOURS", 24, time.Hour, false, 24*365, "hours")
	c.TokenMaxIPs = int64(p.int("POW_TOKEN_MAX_IPS", 2, 0, 1_000_000))
	c.RefreshWindow = p.powSpan("POW_TOKEN_PURGE_HOURS", 48, time.Hour, true, 24*365, "hours")
	c.MaxTokensPerIP = p.int("POW_MAX_TOKENS_PER_IP", 0, 0, 100)
	c.MaxRefreshes = p.int("POW_TOKEN_MAX_REFRESHES", 0, 0, 1_000_000)
	if c.Enabled() && gk != ModeUserToken {
		p.fail(&Error{Var: "CAPTCHA_MODE", Value: string(c.Mode), Accepted: "proof_of_work issues user tokens: it requires GATEKEEPER=user_token"})
	}
	return c
}

// powDifficulty reads a named level or a whole number of expected hashes.
func (p *parser) powDifficulty(name string) (string, int64) {
	raw := strings.ToLower(p.str(name, "low"))
	if w, ok := PowLevels[raw]; ok {
		return raw, w
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 1 || n > 1_000_000_000 {
		p.fail(&Error{Var: name, Value: p.env[name], Accepted: "must be low, medium, high, extreme, or a whole number of expected hashes from 1 to 1000000000"})
		return "low", PowLevels["low"]
	}
	return raw, n
}

// powSpan reads a number of units (fractions allowed, as the original's
// JSON numbers were) up to max; zero only when zeroOK.
func (p *parser) powSpan(name string, def float64, unit time.Duration, zeroOK bool, max float64, units string) time.Duration {
	raw := p.str(name, "")
	v := def
	if raw != "" {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || f < 0 || (f == 0 && !zeroOK) || f > max {
			low := "above 0"
			if zeroOK {
				low = "from 0"
			}
			p.fail(&Error{Var: name, Value: raw, Accepted: fmt.Sprintf("must be a number of %s %s up to %g", units, low, max)})
		} else {
			v = f
		}
	}
	return time.Duration(v * float64(unit))
}
