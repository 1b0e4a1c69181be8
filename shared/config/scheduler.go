package config

import (
	"net"
	"net/url"
	"regexp"
	"strings"
)

// GoogleCertsURL is where Google publishes the keys that sign its ID tokens.
const GoogleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"

// Scheduler says who may call the maintenance endpoints without the admin
// key: Cloud Scheduler, with a Google OIDC ID token for one service
// account. The zero value (no service account) accepts no such token.
type Scheduler struct {
	// ServiceAccount is SCHEDULER_SERVICE_ACCOUNT: the token's email.
	ServiceAccount string
	// Audience is SCHEDULER_AUDIENCE: the token's aud, the URL the jobs'
	// --oidc-token-audience names (the admin function's URL).
	Audience string
	// CertsURL is SCHEDULER_CERTS_URL: the JSON Web Key Set the token's
	// signature is checked against; Google's unless tests serve their own.
	CertsURL string
}

// Enabled reports whether scheduler tokens are accepted at all.
func (s Scheduler) Enabled() bool { return s.ServiceAccount != "" }

// serviceAccountEmail is a Google service account's address.
var serviceAccountEmail = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com$`)

// scheduler reads SCHEDULER_SERVICE_ACCOUNT, SCHEDULER_AUDIENCE and
// SCHEDULER_CERTS_URL; the first two go together.
func (p *parser) scheduler() Scheduler {
	s := Scheduler{
		ServiceAccount: p.str("SCHEDULER_SERVICE_ACCOUNT", ""),
		Audience:       p.str("SCHEDULER_AUDIENCE", ""),
		CertsURL:       p.str("SCHEDULER_CERTS_URL", GoogleCertsURL),
	}
	switch {
	case s.ServiceAccount != "" && !serviceAccountEmail.MatchString(s.ServiceAccount):
		p.fail(&Error{Var: "SCHEDULER_SERVICE_ACCOUNT", Value: s.ServiceAccount,
			Accepted: "must be a service account's email in lower case, such as tollgate-scheduler@my-project.iam.gserviceaccount.com"})
	case s.ServiceAccount != "" && s.Audience == "":
		p.fail(&Error{Var: "SCHEDULER_AUDIENCE", Accepted: "required with SCHEDULER_SERVICE_ACCOUNT: the admin function's URL, as the jobs' --oidc-token-audience, such as https://europe-west1-my-project.cloudfunctions.net/admin"})
	case s.ServiceAccount == "" && s.Audience != "":
		p.fail(&Error{Var: "SCHEDULER_SERVICE_ACCOUNT", Accepted: "required with SCHEDULER_AUDIENCE: the email of the service account the scheduler's jobs run as"})
	case s.Audience != "" && !absoluteURL(s.Audience, false):
		p.fail(&Error{Var: "SCHEDULER_AUDIENCE", Value: s.Audience,
			Accepted: "must be an http(s) URL without a fragment: the admin function's URL, such as https://europe-west1-my-project.cloudfunctions.net/admin"})
	case !absoluteURL(s.CertsURL, true):
		p.fail(&Error{Var: "SCHEDULER_CERTS_URL", Value: s.CertsURL,
			Accepted: "must be an https URL (http only on a loopback address), default " + GoogleCertsURL})
	}
	return s
}

// absoluteURL accepts http(s)://host/...; with httpsOnly, plain http only
// for loopback hosts.
func absoluteURL(raw string, httpsOnly bool) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		if !httpsOnly {
			return true
		}
		h := strings.ToLower(u.Hostname())
		ip := net.ParseIP(h)
		return h == "localhost" || (ip != nil && ip.IsLoopback())
	}
	return false
}
