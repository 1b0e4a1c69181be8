package proxy

import (
	"net/http"

	"tollgate.dev/tollgate/functions/proxy/captcha"
	"tollgate.dev/tollgate/shared/gatekeeper"
)

// captchaHandler serves /user/captcha, where visitors earn temporary
// tokens by proof of work (CAPTCHA_MODE=proof_of_work; else 404). It
// refuses IP_BLACKLIST from the gatekeeper's copy of the live lists.
func captchaHandler(d Deps, clientIP func(*http.Request) string, ips *gatekeeper.LiveIPs) http.Handler {
	h, err := captcha.New(captcha.Options{Config: d.Config, Store: d.Store, Log: d.Log, Now: d.Now, ClientIP: clientIP, IPs: ips})
	if err != nil {
		// Config validation leaves only a store without marks here.
		d.Log.Error().Err(err).Msg("proof-of-work tokens are unavailable")
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "Proof-of-work tokens are unavailable.", http.StatusServiceUnavailable)
		})
	}
	return h
}
