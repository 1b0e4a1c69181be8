package admin

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
)

// TestOpenAPIDocumentsEveryResponse walks real requests through New(d) so
// that every operation of openapi.yaml answers every status it documents,
// and every answer is validated against the document (helpers_test.go's
// check, with undocumented statuses refused). Together they keep the
// document and the code from drifting apart in either direction.
func TestOpenAPIDocumentsEveryResponse(t *testing.T) {
	const tok = "openapi-walk-user-0001"
	seen := map[string]bool{}
	run := func(e *env, r req) int {
		t.Helper()
		rec, op := e.doRaw(r)
		if op != "" {
			seen[op+" "+strconv.Itoa(rec.Code)] = true
		}
		return rec.Code
	}
	setup := func(e *env) {
		t.Helper()
		if _, err := e.store.Modify(t.Context(), tok, true, func(u *users.User, _ bool) error {
			*u = *users.New(tok, users.Normal, e.clock.Now(), nil)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	// One well-formed request per operation.
	samples := map[string]req{
		"GET /users":                        {path: "/admin/users?sort=-createdAt&limit=10&offset=0"},
		"POST /users":                       {method: http.MethodPost, path: "/admin/users", body: map[string]any{"type": "special"}},
		"PUT /users":                        {method: http.MethodPut, path: "/admin/users", body: map[string]any{"users": []any{map[string]any{"token": "openapi-walk-user-0002", "maxIps": 2}}}},
		"GET /users/{token}":                {path: "/admin/users/" + tok},
		"PUT /users/{token}":                {method: http.MethodPut, path: "/admin/users/" + tok, body: map[string]any{"nickname": "n", "adminNote": nil}},
		"DELETE /users/{token}":             {method: http.MethodDelete, path: "/admin/users/" + tok + "?disabledReason=abuse"},
		"POST /users/{token}/reactivate":    {method: http.MethodPost, path: "/admin/users/" + tok + "/reactivate"},
		"POST /users/{token}/refresh-quota": {method: http.MethodPost, path: "/admin/users/" + tok + "/refresh-quota"},
		"POST /maintenance/{action}":        {method: http.MethodPost, path: "/admin/maintenance/refresh-quotas"},
		"GET /openapi.yaml":                 {path: "/admin/openapi.yaml", noAuth: true},
		"GET /events/{token}":               {path: "/admin/events/" + tok + "?limit=5"},
		"GET /ip-lists":                     {path: "/admin/ip-lists"},
		"GET /stats":                        {path: "/admin/stats?top=3&sort=prompts&format=code&anonymise=true"},
		"GET /keys":                         {path: "/admin/keys"},
		"POST /keys/recheck":                {method: http.MethodPost, path: "/admin/keys/recheck"},
		"PUT /ip-lists":                     {method: http.MethodPut, path: "/admin/ip-lists", body: map[string]any{"whitelist": []string{"192.0.2.0/24"}, "blacklist": []string{"203.0.113.9"}}},
	}
	public := func(op string) bool { return op == "GET /openapi.yaml" }

	events := map[string]string{"EVENT_LOGGING": "true"}
	ok := newEnv(t, map[string]string{"TOKEN_QUOTA_GPT4": "100", "EVENT_LOGGING": "true"})
	setup(ok)
	outside := newEnv(t, map[string]string{"ADMIN_WHITELIST": "10.0.0.0/8"})
	failing := newEnv(t, events, withStore(errStore{err: errors.New("rtdb: boom")}))
	down := newEnv(t, events, withStore(errStore{err: users.Errorf(users.CodeUnavailable, "The user database is unreachable.")}))
	locked := newEnv(t, nil)
	for range ratelimit.KeyLockoutMax {
		run(locked, req{path: "/admin/users", key: "wrong"})
	}

	for op, r := range samples {
		if code := run(ok, r); code >= 300 {
			t.Errorf("%s: %d", op, code)
		}
		if code := run(outside, r); code != http.StatusForbidden {
			t.Errorf("%s from outside the whitelist: %d", op, code)
		}
		if public(op) {
			continue
		}
		noKey := r
		noKey.noAuth = true
		run(ok, noKey)
		run(locked, r)
		run(failing, r)
		run(down, r)
	}
	ok.do(req{method: http.MethodPost, path: "/admin/maintenance/reset-counts"}) // the other actions,
	ok.do(req{method: http.MethodPost, path: "/admin/maintenance/expire-temporary"})
	ok.do(req{method: http.MethodPost, path: "/admin/maintenance/purge-temporary"})

	// The statuses only some operations have.
	big := `{"nickname":"` + strings.Repeat("a", maxImportBody) + `"}`
	missing := "/admin/users/openapi-walk-missing-01"
	for _, r := range []req{
		{path: "/admin/users?sort=nope"},
		{method: http.MethodPost, path: "/admin/users", body: map[string]any{"type": "temporary"}},
		{method: http.MethodPost, path: "/admin/users", body: big},
		{method: http.MethodPost, path: "/admin/users", body: "{}", contentType: "text/plain"},
		{method: http.MethodPut, path: "/admin/users", body: map[string]any{"users": []any{map[string]any{"maxIps": -1}}}},
		{method: http.MethodPut, path: "/admin/users", body: `{"users":[` + big + `]}`},
		{method: http.MethodPut, path: "/admin/users", body: `{"users":[]}`, contentType: "application/xml"},
		{method: http.MethodPut, path: "/admin/users/" + tok, body: map[string]any{"maxIps": -1}},
		{method: http.MethodPut, path: "/admin/users/" + tok, body: big},
		{method: http.MethodPut, path: "/admin/users/" + tok, body: "{}", contentType: "text/json"},
		{method: http.MethodDelete, path: "/admin/users/" + tok + "?disabledReason=" + strings.Repeat("r", 2001)},
		{path: missing},
		{method: http.MethodDelete, path: missing},
		{method: http.MethodPost, path: missing + "/reactivate"},
		{method: http.MethodPost, path: missing + "/refresh-quota"},
		{method: http.MethodPost, path: "/admin/maintenance/defragment"},
		{path: "/admin/events/" + tok + "?cursor=nope"},
		{path: "/admin/events/a.b"},
		{path: "/admin/stats?top=0"},
		{method: http.MethodPut, path: "/admin/ip-lists", body: map[string]any{"whitelist": []string{}, "blacklist": []string{"not-an-ip"}}},
		{method: http.MethodPut, path: "/admin/ip-lists", body: `{"whitelist":[],"blacklist":["` + strings.Repeat("1", maxUserBody) + `"]}`},
		{method: http.MethodPut, path: "/admin/ip-lists", body: "{}", contentType: "text/plain"},
		{method: http.MethodPut, path: "/admin/ip-lists", header: map[string]string{"If-Match": `"stale"`}, body: samples["PUT /ip-lists"].body},
	} {
		run(ok, r)
	}
	conflict := newEnv(t, nil, withStore(errStore{err: users.Errorf(users.CodeConflict, "Token collision; try again.")}))
	run(conflict, samples["POST /users"])

	// Every documented operation and status was answered for real.
	spec := ok.spec
	var want []string
	for path, item := range spec.doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			if _, ok := samples[key]; !ok {
				t.Errorf("operation %s (%s) has no sample request", key, op.OperationID)
			}
			for status := range op.Responses.Map() {
				want = append(want, key+" "+status)
			}
		}
	}
	slices.Sort(want)
	for _, w := range want {
		if !seen[w] {
			t.Errorf("documented but never answered: %s", w)
		}
	}
	for s := range seen {
		if !slices.Contains(want, s) {
			t.Errorf("answered but not documented: %s", s)
		}
	}
	if len(want) < 60 {
		t.Errorf("only %d documented responses: the walk is not checking much", len(want))
	}
}
