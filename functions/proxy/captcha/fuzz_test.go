package captcha_test

import (
	"net/http"
	"testing"
)

// FuzzRequests sends arbitrary bodies to both endpoints: every answer is a
// client error or a challenge, and no user is ever issued without a
// solved challenge.
func FuzzRequests(f *testing.F) {
	f.Add("challenge", `{"action":"new"}`)
	f.Add("challenge", `{"action":"refresh","token":"abc"}`)
	f.Add("verify", `{"challenge":"e30.AAAA","solution":"1"}`)
	f.Add("verify", `{"challenge":"","solution":""}`)
	f.Add("verify", `{"challenge":1}`)
	f.Fuzz(func(t *testing.T, endpoint, body string) {
		if endpoint != "challenge" {
			endpoint = "verify"
		}
		e := newEnv(t, nil)
		r := do(t, e.h, http.MethodPost, "/user/captcha/"+endpoint, ipA, body)
		switch {
		case r.status >= 500:
			t.Fatalf("%s %q: %d %s", endpoint, body, r.status, r.body)
		case r.status == http.StatusOK && endpoint == "verify":
			t.Fatalf("verify %q issued a token: %s", body, r.body)
		case r.status != http.StatusOK:
			r.errorText(t)
		}
		if list, _ := e.store.List(ctx(t)); len(list) != 0 {
			t.Fatalf("%s %q created %d users", endpoint, body, len(list))
		}
	})
}
