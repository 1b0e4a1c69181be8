package ui_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

func (e *env) mem() *memory.Store { return e.deps.Store.(*memory.Store) }

func (e *env) event(token string, ago time.Duration, family string, in, out int64) {
	e.t.Helper()
	at := e.clock.Now().Add(-ago).UnixMilli()
	if err := e.mem().AddEvent(context.Background(), token, users.Event{At: at, Family: family, Model: family + "-m", Input: in, Output: out, IPTail: "….4", Status: 200}); err != nil {
		e.t.Fatal(err)
	}
}

func TestAbuseListsThroughTheUI(t *testing.T) {
	e := newEnv(t, map[string]string{"ADMIN_WHITELIST": "127.0.0.0/8", "IP_BLACKLIST": "198.51.100.1"})
	c := e.loggedIn()
	page := c.get("/admin/manage/abuse").body
	form := formValues(t, page, `<form method="post" action="/admin/manage/abuse/lists"`)
	form.Set("whitelist", "203.0.113.0/24\n2001:db8::1")
	form.Set("blacklist", "192.0.2.7, 192.0.2.8")
	res := c.post("/admin/manage/abuse/lists", form)
	if res.status != http.StatusSeeOther || res.location() != "/admin/manage/abuse?done=lists&n=4" {
		t.Fatalf("save: %d %q %s", res.status, res.location(), res.body)
	}
	l, _ := e.mem().IPLists(context.Background())
	if strings.Join(l.Whitelist, ",") != "203.0.113.0/24,2001:db8::1" || strings.Join(l.Blacklist, ",") != "192.0.2.7,192.0.2.8" {
		t.Fatalf("stored %+v", l)
	}
	page = c.get("/admin/manage/abuse?done=lists&n=4").body
	for _, want := range []string{
		`value="ADMIN_WHITELIST=127.0.0.0/8,203.0.113.0/24,2001:db8::1"`,
		`value="IP_BLACKLIST=198.51.100.1,192.0.2.7,192.0.2.8"`,
		"IP lists saved (4 entries in all)",
		">203.0.113.0/24\n2001:db8::1</textarea>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("abuse page lacks %q", want)
		}
	}

	// A bad entry is refused, naming it, and what was typed stays.
	form = formValues(t, page, `<form method="post" action="/admin/manage/abuse/lists"`)
	form.Set("blacklist", "192.0.2.7\nnot-an-address")
	res = c.post("/admin/manage/abuse/lists", form)
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "&#34;not-an-address&#34; is not an IP address") || !strings.Contains(res.body, "192.0.2.7\nnot-an-address</textarea>") {
		t.Errorf("bad entry: %d\n%s", res.status, res.body)
	}
	// So is a list that would shut the admin out.
	form.Set("blacklist", "127.0.0.1")
	res = c.post("/admin/manage/abuse/lists", form)
	if res.status != http.StatusBadRequest || !strings.Contains(res.body, "your own address") {
		t.Errorf("own address: %d\n%s", res.status, res.body)
	}
	if l2, _ := e.mem().IPLists(context.Background()); strings.Join(l2.Blacklist, ",") != "192.0.2.7,192.0.2.8" {
		t.Errorf("a refused edit was written: %+v", l2)
	}
}

// Two admins open the anti-abuse page and both save the lists: the second
// save was made from lists that are gone, so it is refused, nothing is
// written, and the page shows what the first admin saved beside the
// second one's text; saved again from that page, it goes through.
func TestAbuseListsStaleSaveRefused(t *testing.T) {
	e := newEnv(t, map[string]string{"ADMIN_WHITELIST": "127.0.0.0/8"})
	const marker = `<form method="post" action="/admin/manage/abuse/lists"`
	stored := func() string {
		l, err := e.mem().IPLists(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(l.Whitelist, ",") + " | " + strings.Join(l.Blacklist, ",")
	}
	alice, bob := e.loggedIn(), e.loggedIn()
	aliceForm := formValues(t, alice.get("/admin/manage/abuse").body, marker)
	bobForm := formValues(t, bob.get("/admin/manage/abuse").body, marker)
	if aliceForm.Get("version") == "" {
		t.Fatalf("the lists form carries no version: %v", aliceForm)
	}

	aliceForm.Set("whitelist", "203.0.113.0/24")
	if res := alice.post("/admin/manage/abuse/lists", aliceForm); res.status != http.StatusSeeOther {
		t.Fatalf("alice's save: %d %s", res.status, res.body)
	}
	bobForm.Set("blacklist", "192.0.2.7\n192.0.2.8")
	res := bob.post("/admin/manage/abuse/lists", bobForm)
	if res.status != http.StatusConflict {
		t.Fatalf("bob's save over the lists alice replaced: %d %s", res.status, res.body)
	}
	for _, want := range []string{
		"Someone else saved the IP lists after you opened this page, so your save was not applied: nothing was written.",
		`<pre class="pre" id="whitelist-now">203.0.113.0/24</pre>`, // alice's lists
		`<pre class="pre" id="blacklist-now">(empty)</pre>`,
		">192.0.2.7\n192.0.2.8</textarea>", // bob's text, kept
	} {
		if !strings.Contains(res.body, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, res.body)
		}
	}
	if got := stored(); got != "203.0.113.0/24 | " {
		t.Fatalf("the refused save changed the lists: %s", got)
	}

	// Bob has now seen alice's lists: saving from this page goes through.
	bobForm = formValues(t, res.body, marker)
	bobForm.Set("whitelist", bobForm.Get("whitelist")+"\n203.0.113.0/24")
	if res := bob.post("/admin/manage/abuse/lists", bobForm); res.status != http.StatusSeeOther {
		t.Fatalf("bob's save after seeing alice's: %d %s", res.status, res.body)
	}
	if got := stored(); got != "203.0.113.0/24 | 192.0.2.7,192.0.2.8" {
		t.Fatalf("after bob's fresh save: %s", got)
	}

	// A save refused for a bad entry does not bring its page up to date:
	// fixed and sent again, it is still made from the lists alice loaded.
	aliceForm = formValues(t, alice.get("/admin/manage/abuse").body, marker)
	if res := bob.post("/admin/manage/abuse/lists", formValues(t, bob.get("/admin/manage/abuse").body, marker)); res.status != http.StatusSeeOther {
		t.Fatalf("bob's second save: %d %s", res.status, res.body)
	}
	aliceForm.Set("blacklist", "not-an-address")
	res = alice.post("/admin/manage/abuse/lists", aliceForm)
	if res.status != http.StatusBadRequest {
		t.Fatalf("bad entry: %d %s", res.status, res.body)
	}
	aliceForm = formValues(t, res.body, marker)
	aliceForm.Set("blacklist", "198.51.100.1")
	if res := alice.post("/admin/manage/abuse/lists", aliceForm); res.status != http.StatusConflict {
		t.Fatalf("fixed save from before bob's: %d %s", res.status, res.body)
	}
	// And a form without a version (a page from before versions) is stale.
	aliceForm.Del("version")
	if res := alice.post("/admin/manage/abuse/lists", aliceForm); res.status != http.StatusConflict {
		t.Fatalf("save without a version: %d %s", res.status, res.body)
	}
	if got := stored(); got != "203.0.113.0/24 | 192.0.2.7,192.0.2.8" {
		t.Fatalf("refused saves changed the lists: %s", got)
	}
}

func TestAbuseTemporaryReportAndForceExpire(t *testing.T) {
	e := newEnv(t, nil)
	exp := e.clock.Now().Add(time.Hour).UnixMilli()
	e.put("tmp-a", `{"type":"temporary","expiresAt":`+itoa(exp)+`,"ip":["203.0.113.5","203.0.113.9"],"meta":{"refreshable":true}}`)
	e.put("tmp-b", `{"type":"temporary","expiresAt":`+itoa(exp)+`,"ip":["203.0.113.77","2001:db8:1:2::5"]}`)
	e.put("tmp-c", `{"type":"temporary","expiresAt":`+itoa(exp)+`,"ip":["198.51.100.3"]}`)
	e.put("normal-1", `{"ip":["203.0.113.6"]}`)
	c := e.loggedIn()
	page := c.get("/admin/manage/abuse").body
	rows := regexp.MustCompile(`<tr><td><code>([^<]+)</code></td><td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">(\d+)</td></tr>`).FindAllStringSubmatch(page, -1)
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r[1:], " "))
	}
	if want := "203.0.113.0/24 2 2 3|198.51.100.0/24 1 1 1|2001:db8:1::/48 1 1 1"; strings.Join(got, "|") != want {
		t.Errorf("subnet report = %q, want %q", strings.Join(got, "|"), want)
	}
	if !strings.Contains(page, `<strong id="temp-active">3</strong>`) {
		t.Error("active temporary count missing")
	}
	form := formValues(t, page, `<form method="post" action="/admin/manage/maintenance/expire-all-temporary"`)
	res := c.post("/admin/manage/maintenance/expire-all-temporary", url.Values{"csrf": form["csrf"], "back": {"abuse"}})
	if res.status != http.StatusSeeOther || res.location() != "/admin/manage/abuse?done=maintained&action=expire-all-temporary&n=3" {
		t.Fatalf("force-expire: %d %q", res.status, res.location())
	}
	for _, tok := range []string{"tmp-a", "tmp-b", "tmp-c"} {
		if u := e.get(tok); !u.Disabled() || u.Refreshable() || u.DisabledReason != users.ForceExpiredReason {
			t.Errorf("%s after force-expire: %+v", tok, u)
		}
	}
	if e.get("normal-1").Disabled() {
		t.Error("a normal user was expired")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

var barRe = regexp.MustCompile(`<rect class="bar" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)" fill="[^"]+" data-family="([^"]+)" data-day="([^"]+)" data-tokens="(\d+)"`)

func TestUserPageEventsAndChart(t *testing.T) {
	e := newEnv(t, map[string]string{"EVENT_LOGGING": "true"})
	e.put("ev-user", `{"nickname":"eve"}`)
	e.event("ev-user", 0, "gpt4o", 300, 100)         // today: 400
	e.event("ev-user", time.Hour, "claude", 150, 50) // today: 200
	e.event("ev-user", 48*time.Hour, "gpt4o", 100, 100)
	e.event("ev-user", 40*24*time.Hour, "gpt4o", 9999, 1) // outside the chart
	c := e.loggedIn()
	page := c.get("/admin/manage/users/ev-user").body
	bars := barRe.FindAllStringSubmatch(page, -1)
	if len(bars) != 3 {
		t.Fatalf("%d bars, want 3 (two families today, one two days ago):\n%s", len(bars), page)
	}
	if bars[0][3] != "gpt4o" || bars[0][5] != "200" || bars[1][5] != "400" || bars[2][3] != "claude" || bars[2][5] != "200" {
		t.Errorf("bars = %v", bars)
	}
	// Heights are in proportion to the tallest day (600 tokens: 180 px).
	if bars[0][2] != "60" || bars[1][2] != "120" || bars[2][2] != "60" {
		t.Errorf("bar heights %s, %s, %s; want 60, 120, 60", bars[0][2], bars[1][2], bars[2][2])
	}
	if n := strings.Count(page, "<tr><td class=\"nowrap\">"); n < 4 {
		t.Errorf("events table has %d rows, want the 4 latest", n)
	}
	if !strings.Contains(page, "<td>gpt4o-m</td>") || !strings.Contains(page, "<code>….4</code>") {
		t.Error("event columns missing")
	}
	off := newEnv(t, nil)
	off.put("ev-user", `{}`)
	if body := off.loggedIn().get("/admin/manage/users/ev-user").body; !strings.Contains(body, "Set <code>EVENT_LOGGING=true</code>") || strings.Contains(body, `class="bar"`) {
		t.Error("without EVENT_LOGGING the page should say how to turn events on")
	}
}

func TestDashboardTotalsAndTopUsers(t *testing.T) {
	e := newEnv(t, map[string]string{"EVENT_LOGGING": "true"})
	e.put("top-a", `{"nickname":"alpha"}`)
	e.put("top-b", `{}`)
	e.event("top-a", 0, "gpt4o", 50, 50)
	e.event("top-b", 0, "gpt4o", 100, 100)
	e.event("top-b", 24*time.Hour, "claude", 10, 0)
	e.event("top-a", 24*time.Hour, "claude", 90, 0)
	c := e.loggedIn()
	page := c.get("/admin/manage/dashboard").body
	bars := barRe.FindAllStringSubmatch(page, -1)
	var got []string
	for _, b := range bars {
		got = append(got, b[3]+"="+b[5]+"@"+b[2])
	}
	// Yesterday: claude 100 of the 300 max (60 px); today: gpt4o 300 (180 px).
	if strings.Join(got, " ") != "claude=100@60 gpt4o=300@180" {
		t.Errorf("dashboard bars = %v", got)
	}
	top := regexp.MustCompile(`<tr data-token="([^"]+)"><td class="num">(\d+)</td>.*?<td class="num">(\d+)</td><td class="num">([\d,]+)</td></tr>`).FindAllStringSubmatch(page, -1)
	// top-b used 210 tokens, top-a 190, in 2 requests each.
	if len(top) != 2 || top[0][1] != "top-b" || top[0][2] != "1" || top[0][3] != "2" || top[0][4] != "210" ||
		top[1][1] != "top-a" || top[1][2] != "2" || top[1][4] != "190" {
		t.Errorf("top users = %v", top)
	}
	if !strings.Contains(page, ">alpha</a>") {
		t.Error("the top list does not show nicknames")
	}
}

func TestStatsDownload(t *testing.T) {
	e := newEnv(t, nil)
	e.put("stats-1", `{"nickname":"big|pipe","promptCount":5,"tokenCounts":{"gpt4o":9000,"claude":1000}}`)
	e.put("stats-2", `{"nickname":"chatty","promptCount":50,"tokenCounts":{"gpt4o":20}}`)
	e.put("stats-3", `{"promptCount":1,"tokenCounts":{"claude":15000}}`)
	c := e.loggedIn()
	res := c.get("/admin/manage/stats?top=2&sort=tokens&format=table")
	if res.status != http.StatusOK || res.header.Get("Content-Disposition") != `attachment; filename="stats.md"` || !strings.HasPrefix(res.header.Get("Content-Type"), "text/markdown") {
		t.Fatalf("stats: %d %v", res.status, res.header)
	}
	want := "| # | User | Prompts | Tokens | Families |\n|---|---|--:|--:|---|\n| 1 | stats-3 | 1 | 15000 | claude 15.0k |\n| 2 | big\\|pipe | 5 | 10000 | gpt4o 9000, claude 1000 |\n"
	if !strings.HasSuffix(res.body, want) || !strings.Contains(res.body, "3 users, 56 prompts, 25.0k tokens in all; top 2 by tokens") {
		t.Errorf("table:\n%s\nwant it to end with:\n%s", res.body, want)
	}
	res = c.get("/admin/manage/stats?top=3&sort=prompts&format=code&anonymise=on")
	wantCode := "```\n#  User    Prompts  Tokens  Families\n1  User 1       50      20  gpt4o 20\n2  User 2        5   10000  gpt4o 9000, claude 1000\n3  User 3        1   15000  claude 15.0k\n```\n"
	if !strings.HasSuffix(res.body, wantCode) || strings.Contains(res.body, "chatty") {
		t.Errorf("code block:\n%s\nwant:\n%s", res.body, wantCode)
	}
	for _, bad := range []string{"?top=0", "?top=x", "?sort=name", "?format=pdf"} {
		if res := c.get("/admin/manage/stats" + bad); res.status != http.StatusBadRequest {
			t.Errorf("stats%s: %d", bad, res.status)
		}
	}
	if res := e.client().get("/admin/manage/stats"); res.status != http.StatusSeeOther {
		t.Errorf("stats without a session: %d", res.status)
	}
}

func TestKeysRecheckNow(t *testing.T) {
	up := upstreamfake.Start(t, upstreamfake.OpenAI)
	up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-flaky-key-0002": 401}})
	e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-good-key-0001,sk-flaky-key-0002", "OPENAI_BASE_URL": up.URL})
	c := e.loggedIn()
	page := c.get("/admin/manage/maintenance").body
	if !strings.Contains(page, "<tr><td>OpenAI</td><td>1</td><td>1</td></tr>") {
		t.Fatalf("before: %s", page)
	}
	up.Set(upstreamfake.Behavior{}) // the key works again
	if !strings.Contains(c.get("/admin/manage/maintenance").body, "<tr><td>OpenAI</td><td>1</td><td>1</td></tr>") {
		t.Fatal("a page view within five minutes checked again")
	}
	checks := up.Count()
	res := c.post("/admin/manage/keys/recheck", url.Values{"csrf": {csrfOf(t, page, "/admin/manage/keys/recheck")}})
	if res.status != http.StatusSeeOther || res.location() != "/admin/manage/maintenance?done=rechecked" {
		t.Fatalf("recheck: %d %q", res.status, res.location())
	}
	if up.Count() != checks+2 {
		t.Errorf("recheck made %d checks, want 2", up.Count()-checks)
	}
	if page := c.get("/admin/manage/maintenance?done=rechecked").body; !strings.Contains(page, "<tr><td>OpenAI</td><td>2</td><td>0</td></tr>") || !strings.Contains(page, "Upstream keys rechecked.") {
		t.Errorf("after recheck:\n%s", page)
	}
}

func TestRowActionsStayOnTheList(t *testing.T) {
	e := newEnv(t, nil)
	e.put("row-user-1", `{"nickname":"one"}`)
	e.put("row-user-2", `{"nickname":"two","disabledAt":1,"disabledReason":"old"}`)
	c := e.loggedIn()
	list := "/admin/manage/users?sort=nickname&per=10"
	page := c.get(list).body
	form := formValues(t, page, `<form method="post" action="/admin/manage/users/row-user-1/disable"`)
	if form.Get("back") != "/manage/users?sort=nickname&per=10" {
		t.Fatalf("row form back = %q", form.Get("back"))
	}
	res := c.post("/admin/manage/users/row-user-1/disable", url.Values{"csrf": form["csrf"], "back": {"/manage/users?per=10&sort=nickname&done=old"}})
	if res.status != http.StatusSeeOther || res.location() != "/admin/manage/users?per=10&sort=nickname&done=disabled" {
		t.Fatalf("row disable: %d %q", res.status, res.location())
	}
	if !e.get("row-user-1").Disabled() {
		t.Error("not disabled")
	}
	form = formValues(t, page, `<form method="post" action="/admin/manage/users/row-user-2/reactivate"`)
	res = c.post("/admin/manage/users/row-user-2/reactivate", url.Values{"csrf": form["csrf"], "back": {"/manage/users"}})
	if res.location() != "/admin/manage/users?done=reactivated" || e.get("row-user-2").Disabled() {
		t.Errorf("row reactivate: %q", res.location())
	}
	// Only the list is a place to go back to.
	for _, back := range []string{"https://evil.example/manage/users", "//evil.example/manage/users", "/manage/users/row-user-1/edit", "/logout"} {
		page = c.get(list).body
		form = formValues(t, page, `<form method="post" action="/admin/manage/users/row-user-2/disable"`)
		res = c.post("/admin/manage/users/row-user-2/disable", url.Values{"csrf": form["csrf"], "back": {back}})
		if res.location() != "/admin/manage/users/row-user-2?done=disabled" {
			t.Errorf("back=%q went to %q", back, res.location())
		}
		_, _ = e.svc().Reactivate(context.Background(), "row-user-2")
	}
}

func TestEditDisabledReason(t *testing.T) {
	e := newEnv(t, nil)
	e.put("reason-user", `{"type":"temporary","expiresAt":99999999999999,"meta":{"refreshable":true}}`)
	c := e.loggedIn()
	page := c.get("/admin/manage/users/reason-user").body
	res := c.post("/admin/manage/users/reason-user/disable", url.Values{"csrf": {csrfOf(t, page, "/admin/manage/users/reason-user/disable")}, "reason": {"spam"}})
	if res.status != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.status)
	}
	if u := e.get("reason-user"); u.Refreshable() {
		t.Error("disabling a temporary user left it refreshable")
	}
	page = c.get("/admin/manage/users/reason-user").body
	csrf := csrfOf(t, page, "/admin/manage/users/reason-user/reason")
	res = c.post("/admin/manage/users/reason-user/reason", url.Values{"csrf": {csrf}, "reason": {"  sharing the token  "}})
	if res.status != http.StatusSeeOther || res.location() != "/admin/manage/users/reason-user?done=reason" {
		t.Fatalf("reason: %d %q", res.status, res.location())
	}
	if u := e.get("reason-user"); u.DisabledReason != "sharing the token" || !u.Disabled() {
		t.Errorf("after edit: %+v", u)
	}
	for _, bad := range []string{"", strings.Repeat("x", users.MaxTextLen+1)} {
		if res := c.post("/admin/manage/users/reason-user/reason", url.Values{"csrf": {csrf}, "reason": {bad}}); res.status != http.StatusBadRequest {
			t.Errorf("reason %d chars: %d", len(bad), res.status)
		}
	}
	_, _ = e.svc().Reactivate(context.Background(), "reason-user")
	if res := c.post("/admin/manage/users/reason-user/reason", url.Values{"csrf": {csrf}, "reason": {"x"}}); res.status != http.StatusConflict {
		t.Errorf("reason of an active user: %d", res.status)
	}
}

// The dashboard reads at most 5,000 events of a user, and says so.
func TestDashboardBoundsItsRead(t *testing.T) {
	e := newEnv(t, map[string]string{"EVENT_LOGGING": "true"})
	e.put("busy", `{}`)
	for i := range 5001 {
		e.event("busy", time.Duration(i)*time.Second, "gpt4o", 1, 0)
	}
	page := e.loggedIn().get("/admin/manage/dashboard").body
	if !strings.Contains(page, `<p class="hint" id="partial">1 very busy user is counted from their 5,000 latest requests only.</p>`) {
		t.Errorf("no note of the partial count:\n%s", page)
	}
	if !strings.Contains(page, `<td class="num">5000</td><td class="num">5,000</td>`) {
		t.Error("the top list does not count the 5,000 events read")
	}
}
