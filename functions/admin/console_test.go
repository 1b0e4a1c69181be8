package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/functions/admin/upstreamkeys"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

func TestEventsPaging(t *testing.T) {
	e := newEnv(t, map[string]string{"EVENT_LOGGING": "true"})
	const tok = "events-user-0001"
	store := e.store.(*memory.Store)
	base := e.clock.Now()
	for i := range 5 {
		if err := store.AddEvent(t.Context(), tok, users.Event{At: base.Add(time.Duration(i) * time.Second).UnixMilli(), Family: "gpt4o", Model: "gpt-4o", Input: int64(i), Output: 1, IPTail: "….9", Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	var inputs []int64
	path := "/admin/events/" + tok + "?limit=2"
	for range 4 {
		rec := e.do(req{path: path})
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		page := decode[users.EventPage](t, rec)
		for _, ev := range page.Events {
			inputs = append(inputs, ev.Input)
		}
		if page.Next == "" {
			break
		}
		path = "/admin/events/" + tok + "?limit=2&cursor=" + page.Next
	}
	if want := []int64{4, 3, 2, 1, 0}; !slices.Equal(inputs, want) {
		t.Errorf("paged inputs %v, want %v", inputs, want)
	}
	for _, bad := range []string{"?cursor=x", "?limit=0", "?limit=501", "?limit=ten"} {
		wantError(t, e.do(req{path: "/admin/events/" + tok + bad}), http.StatusBadRequest, strings.TrimPrefix(strings.Split(bad, "=")[0], "?"))
	}
}

// Without EVENT_LOGGING the route answers an empty list, even when the
// store holds events.
func TestEventsWithoutLogging(t *testing.T) {
	e := newEnv(t, nil)
	_ = e.store.(*memory.Store).AddEvent(t.Context(), "tok-x", users.Event{At: 1, Family: "gpt4o"})
	rec := e.do(req{path: "/admin/events/tok-x"})
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"events":[]}` {
		t.Errorf("events without EVENT_LOGGING: %d %s", rec.Code, rec.Body)
	}
}

// A path segment that cannot be a token answers 404, as GET /users/{token}
// does, and as the document's token pattern says.
func TestEventsOfAnInvalidToken(t *testing.T) {
	e := newEnv(t, map[string]string{"EVENT_LOGGING": "true"})
	for _, bad := range []string{strings.Repeat("a", 129), "a.b"} {
		for _, p := range []string{"/admin/events/", "/admin/users/"} {
			if rec := e.do(req{path: p + bad}); rec.Code != http.StatusNotFound {
				t.Errorf("GET %s<%q>: %d %s, want 404", p, bad, rec.Code, rec.Body)
			}
		}
	}
}

type ipListsAnswer struct {
	Whitelist   []string          `json:"whitelist"`
	Blacklist   []string          `json:"blacklist"`
	UpdatedAt   int64             `json:"updatedAt"`
	Environment map[string]string `json:"environment"`
}

// The live lists are edited through the API and enforced by the admin
// function itself: on this instance at once, on another sharing the store
// once its copy is older than USER_CACHE_TTL.
func TestIPListsLive(t *testing.T) {
	vars := map[string]string{"ADMIN_WHITELIST": "192.0.2.0/24", "IP_BLACKLIST": "198.51.100.1", "USER_CACHE_TTL": "5s"}
	a := newEnv(t, vars)
	b := newEnv(t, vars, withStore(a.store))
	const stranger = "203.0.113.50:1000"
	const pest = "192.0.2.66:1000"
	if rec := b.do(req{path: "/admin/users", remote: stranger}); rec.Code != http.StatusForbidden {
		t.Fatalf("stranger before: %d", rec.Code)
	}
	if rec := b.do(req{path: "/admin/users", remote: pest}); rec.Code != http.StatusOK {
		t.Fatalf("pest before: %d", rec.Code)
	}
	rec := a.do(req{method: http.MethodPut, path: "/admin/ip-lists", body: map[string]any{
		"whitelist": []string{"203.0.113.50"}, "blacklist": []string{"192.0.2.66", "192.0.2.66/32", "10.1.2.3/8", "10.0.0.0/8"},
	}})
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT /ip-lists: %d %s", rec.Code, rec.Body)
	}
	got := decode[ipListsAnswer](t, rec)
	if !slices.Equal(got.Whitelist, []string{"203.0.113.50"}) || !slices.Equal(got.Blacklist, []string{"192.0.2.66", "192.0.2.66/32", "10.0.0.0/8"}) ||
		got.Environment["ADMIN_WHITELIST"] != "192.0.2.0/24" || got.Environment["IP_BLACKLIST"] != "198.51.100.1" || got.UpdatedAt != a.clock.Now().UnixMilli() {
		t.Errorf("PUT answered %+v", got)
	}
	// Instance a applies them at once.
	if rec := a.do(req{path: "/admin/users", remote: pest}); rec.Code != http.StatusForbidden {
		t.Errorf("a: pest after: %d", rec.Code)
	}
	if rec := a.do(req{path: "/admin/users", remote: stranger}); rec.Code != http.StatusOK {
		t.Errorf("a: whitelisted stranger: %d %s", rec.Code, rec.Body)
	}
	// Instance b once its copy is stale.
	b.clock.Advance(6 * time.Second)
	if rec := b.do(req{path: "/admin/users", remote: pest}); rec.Code != http.StatusForbidden {
		t.Errorf("b: pest after the TTL: %d", rec.Code)
	}
	if rec := b.do(req{path: "/admin/users", remote: stranger}); rec.Code != http.StatusOK {
		t.Errorf("b: whitelisted stranger after the TTL: %d", rec.Code)
	}
	// The environment's entries are the floor.
	if rec := b.do(req{path: "/admin/users", remote: "198.51.100.1:1"}); rec.Code != http.StatusForbidden {
		t.Errorf("IP_BLACKLIST entry: %d", rec.Code)
	}
	if rec := b.do(req{path: "/admin/ip-lists"}); rec.Code != http.StatusOK || !slices.Equal(decode[ipListsAnswer](t, rec).Whitelist, []string{"203.0.113.50"}) {
		t.Errorf("GET on b: %d %s", rec.Code, rec.Body)
	}
}

// Two admins read the lists and both save: the second save carries the
// ETag of a version that is gone, is refused with 412 and writes nothing;
// read again, it goes through. Without If-Match a save replaces whatever
// is stored, as before versions existed.
func TestIPListsIfMatch(t *testing.T) {
	e := newEnv(t, map[string]string{"ADMIN_WHITELIST": "192.0.2.0/24"})
	put := func(ifMatch string, body map[string]any) *httptest.ResponseRecorder {
		t.Helper()
		h := map[string]string{}
		if ifMatch != "" {
			h["If-Match"] = ifMatch
		}
		return e.do(req{method: http.MethodPut, path: "/admin/ip-lists", header: h, body: body})
	}
	stored := func() users.IPLists {
		t.Helper()
		l, err := e.store.(*memory.Store).IPLists(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	read := e.do(req{path: "/admin/ip-lists"})
	loaded := read.Header().Get("ETag")
	if read.Code != http.StatusOK || !strings.HasPrefix(loaded, `"`) {
		t.Fatalf("GET: %d, ETag %q", read.Code, loaded)
	}
	alice := map[string]any{"whitelist": []string{"203.0.113.0/24"}, "blacklist": []string{}}
	rec := put(loaded, alice)
	saved := rec.Header().Get("ETag")
	if rec.Code != http.StatusOK || saved == "" || saved == loaded {
		t.Fatalf("first save over the ETag read: %d, ETag %q (was %q) %s", rec.Code, saved, loaded, rec.Body)
	}
	if got := e.do(req{path: "/admin/ip-lists"}).Header().Get("ETag"); got != saved {
		t.Errorf("GET after the save: ETag %q, PUT answered %q", got, saved)
	}

	bob := map[string]any{"whitelist": []string{}, "blacklist": []string{"198.51.100.9"}}
	// `""` is an entity tag too (an empty one): no version matches it.
	for _, stale := range []string{loaded, "W/" + saved, `"made-up"`, `""`} {
		rec := put(stale, bob)
		if e := wantError(t, rec, http.StatusPreconditionFailed, ""); !strings.Contains(e.Error.Message, "changed by someone else") {
			t.Errorf("If-Match %s: message %q", stale, e.Error.Message)
		}
		if l := stored(); !slices.Equal(l.Whitelist, []string{"203.0.113.0/24"}) || len(l.Blacklist) != 0 {
			t.Fatalf("a save refused with 412 (If-Match %s) changed the lists: %+v", stale, l)
		}
	}
	for _, bad := range []string{"unquoted", `"a", "b"`, `"`} {
		wantError(t, put(bad, bob), http.StatusBadRequest, "If-Match")
	}
	// An If-Match sent empty (a client that found no ETag to send) is no
	// condition met, not a save without one.
	wantError(t, e.do(req{method: http.MethodPut, path: "/admin/ip-lists", header: map[string]string{"If-Match": ""}, body: bob}), http.StatusBadRequest, "If-Match")
	if l := stored(); len(l.Blacklist) != 0 {
		t.Fatalf("a save with an empty If-Match changed the lists: %+v", l)
	}

	// Bob reads again and saves over what he now sees.
	bob["whitelist"] = []string{"203.0.113.0/24"}
	if rec := put(saved, bob); rec.Code != http.StatusOK {
		t.Fatalf("save over the current ETag: %d %s", rec.Code, rec.Body)
	}
	if l := stored(); !slices.Equal(l.Whitelist, []string{"203.0.113.0/24"}) || !slices.Equal(l.Blacklist, []string{"198.51.100.9"}) {
		t.Fatalf("after the fresh save: %+v", l)
	}

	// Without If-Match, or with *, the lists are replaced whatever they are.
	for i, unconditional := range []string{"", "*"} {
		entry := "198.51.100." + strconv.Itoa(i+20)
		rec := put(unconditional, map[string]any{"whitelist": []string{}, "blacklist": []string{entry}})
		if rec.Code != http.StatusOK || !slices.Equal(stored().Blacklist, []string{entry}) {
			t.Errorf("save with If-Match %q: %d %s", unconditional, rec.Code, rec.Body)
		}
	}
}

func TestIPListsRefused(t *testing.T) {
	e := newEnv(t, map[string]string{"ADMIN_WHITELIST": "10.0.0.0/8"})
	const me = "203.0.113.7:1"
	if rec := e.do(req{method: http.MethodPut, path: "/admin/ip-lists", remote: "10.0.0.5:1", body: map[string]any{"whitelist": []string{me[:len(me)-2]}, "blacklist": []string{}}}); rec.Code != http.StatusOK {
		t.Fatalf("whitelisting: %d %s", rec.Code, rec.Body)
	}
	for name, c := range map[string]struct {
		body any
		path string
	}{
		"own address blacklisted": {map[string]any{"whitelist": []string{"203.0.113.0/24"}, "blacklist": []string{"203.0.113.0/28"}}, "blacklist"},
		"own address left out":    {map[string]any{"whitelist": []string{"198.51.100.0/24"}, "blacklist": []string{}}, "whitelist"},
		"bad entry":               {map[string]any{"whitelist": []string{"203.0.113.7"}, "blacklist": []string{"1.2.3.4", "nope"}}, "blacklist/1"},
		"missing list":            {map[string]any{"whitelist": []string{"203.0.113.7"}}, "blacklist"},
		"unknown field":           {map[string]any{"whitelist": []string{}, "blacklist": []string{}, "greylist": []string{}}, "greylist"},
		"not an array":            {map[string]any{"whitelist": "203.0.113.7", "blacklist": []string{}}, "whitelist"},
		"not strings":             {map[string]any{"whitelist": []any{"203.0.113.7"}, "blacklist": []any{1}}, "blacklist"},
		"not an object":           {[]string{"203.0.113.7"}, ""},
		"two objects":             {`{"whitelist":[],"blacklist":[]}{}`, ""},
		"malformed":               {`{"whitelist":[`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			rec := e.do(req{method: http.MethodPut, path: "/admin/ip-lists", remote: me, body: c.body})
			wantError(t, rec, http.StatusBadRequest, c.path)
			// The message names the field, in the API's words, never
			// the decoder's view of Go types.
			if body := rec.Body.String(); strings.Contains(body, "Go ") || strings.Contains(body, "ipListsInput") || strings.Contains(body, "json:") {
				t.Errorf("the error speaks of the code's internals: %s", body)
			}
		})
	}
	// Nothing refused was written: the caller still gets in.
	if rec := e.do(req{path: "/admin/users", remote: me}); rec.Code != http.StatusOK {
		t.Errorf("after refused edits: %d", rec.Code)
	}
}

func TestForceExpireTemporary(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(req{method: http.MethodPost, path: "/admin/users", body: map[string]any{"type": "temporary", "expiresAt": e.clock.Now().Add(time.Hour).UnixMilli(), "tokenLimits": map[string]int{"gpt4o": 10}}})
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	tok := decode[createdBody](t, rec).Token
	rec = e.do(req{method: http.MethodPost, path: "/admin/maintenance/expire-all-temporary"})
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"affected":1}` {
		t.Fatalf("expire-all-temporary: %d %s", rec.Code, rec.Body)
	}
	u := decode[users.User](t, e.do(req{path: "/admin/users/" + tok}))
	if !u.Disabled() || u.DisabledReason != users.ForceExpiredReason || u.ExpiresAt != e.clock.Now().UnixMilli() {
		t.Errorf("after force-expire: %+v", u)
	}
}

func TestKeysAndRecheck(t *testing.T) {
	up := upstreamfake.Start(t, upstreamfake.OpenAI)
	up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-flaky-key-0002": 401}})
	e := newEnv(t, map[string]string{"OPENAI_KEY": "sk-good-key-0001,sk-flaky-key-0002", "OPENAI_BASE_URL": up.URL})
	type answer struct {
		Providers []upstreamkeys.Provider `json:"providers"`
		CheckedAt int64                   `json:"checkedAt"`
	}
	rec := e.do(req{path: "/admin/keys"})
	got := decode[answer](t, rec)
	want := []upstreamkeys.Key{{Tail: "…0001", InService: true}, {Tail: "…0002", InService: false}}
	if rec.Code != http.StatusOK || len(got.Providers) != 1 || got.Providers[0].Provider != "OpenAI" || got.Providers[0].SetAside != 1 || !slices.Equal(got.Providers[0].Keys, want) {
		t.Fatalf("GET /keys: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "key-000") {
		t.Errorf("a key beyond its last 4 characters in %s", rec.Body)
	}
	up.Set(upstreamfake.Behavior{})
	if got := decode[answer](t, e.do(req{path: "/admin/keys"})); got.Providers[0].SetAside != 1 {
		t.Error("GET /keys checked again within five minutes")
	}
	checks := up.Count()
	rec = e.do(req{method: http.MethodPost, path: "/admin/keys/recheck"})
	if got := decode[answer](t, rec); rec.Code != http.StatusOK || got.Providers[0].SetAside != 0 || got.Providers[0].InService != 2 || up.Count() != checks+2 {
		t.Errorf("recheck: %d %s after %d checks", rec.Code, rec.Body, up.Count()-checks)
	}
}

func TestStatsAPI(t *testing.T) {
	e := newEnv(t, nil)
	for tok, doc := range map[string]string{
		"stats-user-1": `{"nickname":"heavy","promptCount":3,"tokenCounts":{"gpt4o":5000}}`,
		"stats-user-2": `{"nickname":"light","promptCount":9,"tokenCounts":{"claude":10}}`,
	} {
		if rec := e.do(req{method: http.MethodPut, path: "/admin/users/" + tok, body: doc}); rec.Code != http.StatusOK {
			t.Fatalf("put %s: %d", tok, rec.Code)
		}
	}
	rec := e.do(req{path: "/admin/stats?top=1&sort=prompts"})
	if rec.Code != http.StatusOK || !strings.HasSuffix(rec.Body.String(), "| 1 | light | 9 | 10 | claude 10 |\n") || strings.Contains(rec.Body.String(), "heavy") {
		t.Errorf("stats: %d\n%s", rec.Code, rec.Body)
	}
	rec = e.do(req{path: "/admin/stats?anonymise=true"})
	if !strings.Contains(rec.Body.String(), "| 1 | User 1 | 3 | 5000 | gpt4o 5000 |") || strings.Contains(rec.Body.String(), "light") {
		t.Errorf("anonymised stats:\n%s", rec.Body)
	}
	wantError(t, e.do(req{path: "/admin/stats?format=pdf"}), http.StatusBadRequest, "format")

	// A nickname is the user's own (the lookup page sets it) and the table
	// is published: it stays text, in one cell.
	for nick, want := range map[string]string{
		"[free keys](https://evil.example)": `\[free keys\]\(https://evil.example\)`,
		"![x](https://evil.example/x.png)":  `\!\[x\]\(https://evil.example/x.png\)`,
		`a\|b`:                              `a\\\|b`,
		"<b>hi</b> & **bold** `c`":          "&lt;b>hi&lt;/b> &amp; \\*\\*bold\\*\\* \\`c\\`",
	} {
		if rec := e.do(req{method: http.MethodPut, path: "/admin/users/stats-user-1", body: map[string]any{"nickname": nick, "promptCount": 100}}); rec.Code != http.StatusOK {
			t.Fatalf("put: %d", rec.Code)
		}
		body := e.do(req{path: "/admin/stats?top=1&sort=prompts"}).Body.String()
		if row := "| 1 | " + want + " | 100 | 5000 | gpt4o 5000 |\n"; !strings.HasSuffix(body, row) {
			t.Errorf("nickname %q: the table ends\n%s\nwant the row\n%s", nick, body[strings.LastIndex(body, "\n| 1"):], row)
		}
	}
}

// A user the single-user route refuses is refused by the import too: a
// meta over 64 KiB (else one entry of a 32 MiB import could swell a record
// every request of the user reads).
func TestImportRefusesWhatTheSingleRouteRefuses(t *testing.T) {
	e := newEnv(t, nil)
	entry := `{"token":"tok-big","meta":{"blob":"` + strings.Repeat("x", 100<<10) + `"}}`
	single := e.do(req{method: http.MethodPut, path: "/admin/users/tok-big", body: entry})
	bulk := e.do(req{method: http.MethodPut, path: "/admin/users", body: `{"users":[` + entry + `]}`})
	if single.Code != http.StatusBadRequest || bulk.Code != http.StatusBadRequest {
		t.Errorf("a 100 KiB meta: PUT /users/{token} answered %d, PUT /users %d; want 400 from both", single.Code, bulk.Code)
	}
}

// racingLists is the memory store where another admin's save lands just
// after each of this API's saves, before the API reads the lists back.
type racingLists struct {
	*memory.Store
	other users.IPLists
}

func (s *racingLists) SetIPLists(ctx context.Context, l users.IPLists) error {
	if err := s.Store.SetIPLists(ctx, l); err != nil {
		return err
	}
	return s.Store.SetIPLists(ctx, s.other)
}

// A PUT's ETag names the lists that PUT saved: when another save landed
// before they were read back, the answer carries no ETag, so that a
// client that keeps the lists it sent cannot save over the other admin's
// with it, having never seen them.
func TestIPListsPutETagIsItsOwnSave(t *testing.T) {
	st := &racingLists{Store: memory.New(), other: users.IPLists{Whitelist: []string{}, Blacklist: []string{"198.51.100.66"}}}
	e := newEnv(t, map[string]string{"ADMIN_WHITELIST": "192.0.2.0/24"}, withStore(st))
	read := e.do(req{path: "/admin/ip-lists"})
	rec := e.do(req{method: http.MethodPut, path: "/admin/ip-lists", header: map[string]string{"If-Match": read.Header().Get("ETag")},
		body: map[string]any{"whitelist": []string{"203.0.113.0/24"}, "blacklist": []string{}}})
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	if tag := rec.Header().Get("ETag"); tag != "" {
		// The client saves its next edit of what it sent over that ETag.
		next := e.do(req{method: http.MethodPut, path: "/admin/ip-lists", header: map[string]string{"If-Match": tag},
			body: map[string]any{"whitelist": []string{"203.0.113.0/24", "203.0.114.0/24"}, "blacklist": []string{}}})
		t.Fatalf("the PUT answered ETag %s, another admin's save; a save over it: %d, the other admin's blacklist %v undone", tag, next.Code, st.other.Blacklist)
	}
	if !strings.Contains(rec.Body.String(), "198.51.100.66") {
		t.Errorf("the answer should show the lists as read back: %s", rec.Body)
	}
}
