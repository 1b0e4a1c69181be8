package admin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"google.golang.org/api/idtoken"
	"google.golang.org/api/option"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/users"
)

// maintenancePattern is the one route a scheduler token opens.
const maintenancePattern = "POST /maintenance/{action}"

// Google signs its ID tokens with one of these issuers.
var googleIssuers = map[string]bool{"https://accounts.google.com": true, "accounts.google.com": true}

// certsTimeout bounds one fetch of Google's signing keys (they are cached
// as long as Google's Cache-Control says).
const certsTimeout = 10 * time.Second

// schedulerAuth verifies Cloud Scheduler's OIDC ID tokens: signed by Google
// (idtoken), for SCHEDULER_AUDIENCE, from SCHEDULER_SERVICE_ACCOUNT.
type schedulerAuth struct {
	cfg       config.Scheduler
	once      sync.Once
	validator *idtoken.Validator
	err       error
}

// newSchedulerAuth returns nil when no scheduler is configured.
func newSchedulerAuth(cfg config.Scheduler) *schedulerAuth {
	if !cfg.Enabled() {
		return nil
	}
	return &schedulerAuth{cfg: cfg}
}

// errSchedulerUnavailable is a token that could not be checked: the keys
// could not be fetched.
var errSchedulerUnavailable = &users.Error{Code: users.CodeUnavailable, Message: "Cannot verify the scheduler token now; try again shortly."}

// looksLikeJWT tells a token from an admin key without verifying it.
func looksLikeJWT(s string) bool {
	_, err := idtoken.ParsePayload(s)
	return strings.Count(s, ".") == 2 && err == nil
}

// verify checks tok; the error says which check failed (never the
// token). An outage fetching the keys is errSchedulerUnavailable. The
// signature is checked first, so that a forged token learns nothing about
// the expected audience or account.
func (s *schedulerAuth) verify(ctx context.Context, tok string) error {
	v, err := s.getValidator()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, certsTimeout)
	defer cancel()
	// No audience here: idtoken would compare it before the signature.
	claims, err := v.Validate(ctx, tok, "")
	if err != nil {
		var netErr *url.Error
		switch {
		case errors.As(err, &netErr), strings.Contains(err.Error(), "unable to retrieve cert"):
			// The keys could not be fetched: not the caller's fault.
			return &users.Error{Code: errSchedulerUnavailable.Code, Message: errSchedulerUnavailable.Message, Err: err}
		case strings.Contains(err.Error(), "token expired"):
			return errors.New("expired")
		}
		return errors.New("bad signature") // or not a well-formed RS256 token
	}
	switch {
	case !googleIssuers[claims.Issuer]:
		return errors.New("wrong issuer")
	case claims.Audience != s.cfg.Audience:
		return errors.New("wrong audience")
	case claims.Claims["email"] != s.cfg.ServiceAccount:
		return errors.New("wrong service account")
	case claims.Claims["email_verified"] != true:
		return errors.New("email not verified")
	}
	return nil
}

// getValidator builds the validator once: Google's keys by default, or
// SCHEDULER_CERTS_URL's (tests) fetched in their place.
func (s *schedulerAuth) getValidator() (*idtoken.Validator, error) {
	s.once.Do(func() {
		client := &http.Client{Timeout: certsTimeout}
		if s.cfg.CertsURL != config.GoogleCertsURL {
			client.Transport = certsRedirect{to: s.cfg.CertsURL}
		}
		v, err := idtoken.NewValidator(context.Background(), option.WithHTTPClient(client))
		if err != nil {
			s.err = &users.Error{Code: users.CodeInternal, Message: "Internal error.", Err: err}
			return
		}
		s.validator = v
	})
	return s.validator, s.err
}

// certsRedirect sends the validator's fetch of Google's keys to another
// JSON Web Key Set URL, and nothing else anywhere.
type certsRedirect struct{ to string }

func (c certsRedirect) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.String() != config.GoogleCertsURL {
		return nil, errors.New("scheduler: unexpected request to " + r.URL.Host)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, c.to, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultTransport.RoundTrip(req)
}
