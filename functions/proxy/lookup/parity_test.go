package lookup_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func (e *env) rename(nick string) response {
	e.t.Helper()
	csrf := csrfIn(e.t, e.lookup(tok).body)
	return e.do(http.MethodPost, "/proxy/user/lookup", url.Values{"action": {"nickname"}, "token": {tok}, "csrf": {csrf}, "nickname": {nick}})
}

func TestNicknameChangesOff(t *testing.T) {
	e := newEnv(t, map[string]string{"ALLOW_NICKNAME_CHANGES": "false"})
	e.put(tok, nightOwl)
	e.put(tok, `{"ip":["127.0.0.1"]}`)
	page := e.lookup(tok)
	if strings.Contains(page.body, `id="save-nickname"`) {
		t.Error("the nickname form is shown")
	}
	// A form kept from before is refused too.
	on := newEnv(t, nil)
	on.put(tok, nightOwl)
	csrf := csrfIn(t, on.lookup(tok).body)
	res := e.do(http.MethodPost, "/proxy/user/lookup", url.Values{"action": {"nickname"}, "token": {tok}, "csrf": {csrf}, "nickname": {"x"}})
	if res.status != http.StatusForbidden || !strings.Contains(res.body, "Nickname changes are not allowed") {
		t.Errorf("%d\n%s", res.status, res.body)
	}
	if e.user(tok).Nickname != "night owl" {
		t.Error("renamed")
	}
}

// Only an address the token was used from may rename it, as in the
// original, unless MAX_IPS_AUTO_BAN is on.
func TestRenameOnlyFromRegisteredAddress(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, nightOwl) // used from 203.0.113.7 and 2001:db8::42; the test client is 127.0.0.1
	res := e.rename("thief")
	if res.status != http.StatusForbidden || !strings.Contains(res.body, "only allowed from an address this token has been used from") {
		t.Fatalf("%d\n%s", res.status, res.body)
	}
	if e.user(tok).Nickname != "night owl" {
		t.Error("renamed from a foreign address")
	}
	e.put(tok, `{"ip":["203.0.113.7","127.0.0.1"]}`)
	if res := e.rename("owner"); res.status != http.StatusOK || e.user(tok).Nickname != "owner" {
		t.Errorf("from a registered address: %d", res.status)
	}
	ban := newEnv(t, map[string]string{"MAX_IPS_AUTO_BAN": "true"})
	ban.put(tok, nightOwl)
	if res := ban.rename("anyone"); res.status != http.StatusOK || ban.user(tok).Nickname != "anyone" {
		t.Errorf("with MAX_IPS_AUTO_BAN: %d", res.status)
	}
	fresh := newEnv(t, nil)
	fresh.put(tok, `{"type":"normal","nickname":"new"}`)
	if res := fresh.rename("first"); res.status != http.StatusOK || fresh.user(tok).Nickname != "first" {
		t.Errorf("a token never used: %d", res.status)
	}
}

func TestRedactedIPList(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, nightOwl)
	e.put(tok, `{"ip":["203.0.113.7","2001:db8::42","risusecretid-198.51.100.23"]}`)
	body := html.UnescapeString(e.lookup(tok).body)
	for _, want := range []string{"<li><code>203.0.x.x</code></li>", "<li><code>2001:db8:…</code></li>", "<li><code>RisuAI user at 198.51.x.x</code></li>", "3 of 3"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, leak := range []string{"113.7", "::42", "secretid", "100.23"} {
		if strings.Contains(body, leak) {
			t.Errorf("page shows %q", leak)
		}
	}
}

func TestNextQuotaRefresh(t *testing.T) {
	tests := []struct {
		vars map[string]string
		doc  string
		want string // "" when none is shown
	}{
		{map[string]string{"QUOTA_REFRESH_PERIOD": "daily"}, nightOwl, "2025-03-15 00:00:00 UTC"},
		{map[string]string{"QUOTA_REFRESH_PERIOD": "daily", "QUOTA_REFRESH_TZ": "Europe/Berlin"}, nightOwl, "2025-03-14 23:00:00 UTC"},
		{map[string]string{"QUOTA_REFRESH_PERIOD": "*/45 * * * * *"}, nightOwl, "2025-03-14 12:00:45 UTC"},
		{nil, nightOwl, ""},
		{map[string]string{"QUOTA_REFRESH_PERIOD": "daily"}, `{"type":"temporary","expiresAt":1900000000000}`, ""},
	}
	for _, tt := range tests {
		e := newEnv(t, tt.vars)
		e.put(tok, tt.doc)
		body := e.lookup(tok).body
		got := ""
		if i := strings.Index(body, `id="next-refresh">`); i >= 0 {
			got = body[i+len(`id="next-refresh">`):]
			got = got[:strings.Index(got, "<")]
		}
		if got != tt.want {
			t.Errorf("%v %s: next refresh %q, want %q", tt.vars, tt.doc[:20], got, tt.want)
		}
	}
}

func TestTokenCosts(t *testing.T) {
	e := newEnv(t, nil)
	e.put(tok, nightOwl)
	if body := e.lookup(tok).body; strings.Contains(body, "Cost") || strings.Contains(body, "$") {
		t.Error("costs shown without SHOW_TOKEN_COSTS")
	}
	e = newEnv(t, map[string]string{"SHOW_TOKEN_COSTS": "true"})
	e.put(tok, nightOwl)
	body := e.lookup(tok).body
	// gpt4o 910,233 at $5/M, claude 402,211 at $8/M, aws-claude 5 at $8/M.
	for _, want := range []string{`<th scope="col" class="num">Cost</th>`, `910,233</td><td class="num cost">$4.55</td>`,
		`402,211</td><td class="num cost">$3.22</td>`, `<td class="num cost">$0.00</td>`, `id="total-cost">$7.77<`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// The table is overridable per family.
	e = newEnv(t, map[string]string{"SHOW_TOKEN_COSTS": "true", "TOKEN_COST_GPT4O": "10"})
	e.put(tok, nightOwl)
	if body := e.lookup(tok).body; !strings.Contains(body, `<td class="num cost">$9.10</td>`) {
		t.Errorf("override not applied:\n%s", body)
	}
}
