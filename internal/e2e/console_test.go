package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// With EVENT_LOGGING each charged request is an event in the database:
// requests served by instance A, whole and streamed, are listed by
// instance B's admin API, each matching what was charged.
func TestEventsAcrossInstances(t *testing.T) {
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := startFakes(t)
	vars := map[string]string{"EVENT_LOGGING": "true"}
	a := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	b := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	tok := a.createUser("")

	openai, anthropic := provCases[0], provCases[1]
	hdr := openai.auth(tok)
	hdr["X-Forwarded-For"] = "203.0.113.57"
	if r := a.do(http.MethodPost, a.proxy.URL+openai.path, openai.body, hdr); r.status != 200 {
		t.Fatalf("openai: %d %s", r.status, r.body)
	}
	if r := a.do(http.MethodPost, a.proxy.URL+anthropic.path, anthropic.stream, anthropic.auth(tok)); r.status != 200 {
		t.Fatalf("anthropic stream: %d %s", r.status, r.body)
	}
	var page users.EventPage
	waitFor(t, "both events in the database", func() bool {
		r := b.do(http.MethodGet, b.admin.URL+"/admin/events/"+tok, "", bearer(adminKey))
		if r.status != 200 {
			t.Fatalf("events on b: %d %s", r.status, r.body)
		}
		page = users.EventPage{}
		_ = json.Unmarshal(r.body, &page)
		return len(page.Events) == 2
	})
	u := b.user(tok)
	newest, oldest := page.Events[0], page.Events[1]
	if newest.Family != "claude" || newest.Model != "claude-sonnet-4-5" || newest.Status != 200 || newest.Tokens() != u.TokenCounts["claude"] || newest.Input == 0 || newest.Output == 0 {
		t.Errorf("stream's event %+v; charged %d", newest, u.TokenCounts["claude"])
	}
	if oldest.Family != "gpt4o" || oldest.Model != "gpt-4o" || oldest.Tokens() != u.TokenCounts["gpt4o"] || oldest.IPTail != "….57" || oldest.Input == 0 || oldest.Output == 0 {
		t.Errorf("openai's event %+v; charged %d", oldest, u.TokenCounts["gpt4o"])
	}
	// A page of one gives the next cursor; it leads to the other event.
	r := b.do(http.MethodGet, b.admin.URL+"/admin/events/"+tok+"?limit=1", "", bearer(adminKey))
	var first users.EventPage
	if err := json.Unmarshal(r.body, &first); err != nil || len(first.Events) != 1 || first.Next == "" {
		t.Fatalf("page of 1: %s", r.body)
	}
	r = b.do(http.MethodGet, b.admin.URL+"/admin/events/"+tok+"?limit=1&cursor="+first.Next, "", bearer(adminKey))
	var second users.EventPage
	if err := json.Unmarshal(r.body, &second); err != nil || len(second.Events) != 1 || second.Events[0].ID != oldest.ID || second.Next != "" {
		t.Fatalf("second page: %s", r.body)
	}
}

// The live lists set through one instance's admin are enforced by the
// other instance's proxy and admin within USER_CACHE_TTL.
func TestLiveListsAcrossInstances(t *testing.T) {
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := startFakes(t)
	vars := map[string]string{"USER_CACHE_TTL": "1s", "ADMIN_WHITELIST": "127.0.0.1"}
	a := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	b := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	tok := a.createUser("")
	pc := provCases[0]
	from := func(ip string, h map[string]string) map[string]string {
		h["X-Forwarded-For"] = ip
		return h
	}
	const pest, partner = "203.0.113.66", "198.51.100.4"
	if r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, from(pest, pc.auth(tok))); r.status != 200 {
		t.Fatalf("before: %d %s", r.status, r.body)
	}
	if r := b.do(http.MethodGet, b.admin.URL+"/admin/users", "", from(partner, bearer(adminKey))); r.status != 403 {
		t.Fatalf("partner's admin before: %d", r.status)
	}
	r := a.do(http.MethodPut, a.admin.URL+"/admin/ip-lists", `{"whitelist":["198.51.100.0/24"],"blacklist":["`+pest+`"]}`, bearer(adminKey))
	if r.status != 200 {
		t.Fatalf("PUT /ip-lists on a: %d %s", r.status, r.body)
	}
	start := time.Now()
	waitFor(t, "b's proxy refusing the blacklisted address", func() bool {
		return b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, from(pest, pc.auth(tok))).status == 403
	})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the blacklist took %s to reach b (USER_CACHE_TTL=1s)", took)
	}
	if r := b.do(http.MethodPost, b.proxy.URL+pc.path, pc.body, from("192.0.2.1", pc.auth(tok))); r.status != 200 {
		t.Errorf("another address: %d %s", r.status, r.body)
	}
	waitFor(t, "b's admin admitting the whitelisted partner", func() bool {
		return b.do(http.MethodGet, b.admin.URL+"/admin/users", "", from(partner, bearer(adminKey))).status == 200
	})
	if r := b.do(http.MethodGet, b.admin.URL+"/admin/users", "", from(pest, bearer(adminKey))); r.status != 403 {
		t.Errorf("blacklisted address on b's admin: %d", r.status)
	}
}

// Two admins on two instances sharing the database read the lists and
// both save them with the ETag they read: the second save is refused with
// 412 and leaves the first one's lists; with the new ETag it goes through.
func TestLiveListsStaleSaveAcrossInstances(t *testing.T) {
	clearEmulatorEnv(t)
	srv := rtdbfake.Start(t)
	fakes := startFakes(t)
	vars := map[string]string{"ADMIN_WHITELIST": "127.0.0.1"}
	a := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	b := newStack(t, stackOptions{vars: vars, fakes: fakes, store: rtdbStore(t, srv, time.Hour, 2*time.Second, &syncBuffer{})})
	get := func(s *stack) reply {
		t.Helper()
		r := s.do(http.MethodGet, s.admin.URL+"/admin/ip-lists", "", bearer(adminKey))
		if r.status != 200 || r.header.Get("ETag") == "" {
			t.Fatalf("GET /ip-lists: %d, ETag %q %s", r.status, r.header.Get("ETag"), r.body)
		}
		return r
	}
	put := func(s *stack, etag, body string) reply {
		t.Helper()
		h := bearer(adminKey)
		h["If-Match"] = etag
		return s.do(http.MethodPut, s.admin.URL+"/admin/ip-lists", body, h)
	}
	lists := func(r reply) string {
		t.Helper()
		var l struct{ Whitelist, Blacklist []string }
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatalf("%v: %s", err, r.body)
		}
		return fmt.Sprint(l.Whitelist, l.Blacklist)
	}

	aRead, bRead := get(a).header.Get("ETag"), get(b).header.Get("ETag")
	if aRead != bRead {
		t.Fatalf("one database, two ETags: %q, %q", aRead, bRead)
	}
	if r := put(a, aRead, `{"whitelist":["198.51.100.0/24"],"blacklist":[]}`); r.status != 200 {
		t.Fatalf("a's save: %d %s", r.status, r.body)
	}
	if r := put(b, bRead, `{"whitelist":[],"blacklist":["203.0.113.66"]}`); r.status != http.StatusPreconditionFailed {
		t.Fatalf("b's save over the lists a replaced: %d %s", r.status, r.body)
	}
	now := get(b)
	if got := lists(now); got != "[198.51.100.0/24] []" {
		t.Fatalf("after b's refused save the lists are %s", got)
	}
	if r := put(b, now.header.Get("ETag"), `{"whitelist":["198.51.100.0/24"],"blacklist":["203.0.113.66"]}`); r.status != 200 {
		t.Fatalf("b's save over the current lists: %d %s", r.status, r.body)
	}
	if got := lists(get(a)); got != "[198.51.100.0/24] [203.0.113.66]" {
		t.Errorf("after b's fresh save a reads %s", got)
	}
}
