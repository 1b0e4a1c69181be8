package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/web"
)

// putUser creates or updates token through the API.
func (e *env) putUser(token string, body any) users.User {
	e.t.Helper()
	rec := e.do(req{method: http.MethodPut, path: "/admin/users/" + token, body: body})
	if rec.Code != http.StatusOK {
		e.t.Fatalf("PUT %s: %d %s", token, rec.Code, rec.Body.String())
	}
	return decode[users.User](e.t, rec)
}

// count is how many users the store holds.
func (e *env) count() int {
	e.t.Helper()
	list, err := e.store.List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return len(list)
}

func (e *env) stored(token string) *users.User {
	e.t.Helper()
	u, err := e.store.Get(context.Background(), token)
	if err != nil {
		e.t.Fatalf("stored %s: %v", token, err)
	}
	return u
}

func TestRoutesServeAtRootAndUnderAdmin(t *testing.T) {
	e := newEnv(t, nil)
	e.putUser("tok-aaaaaaaaaaaaaaaa", map[string]any{"nickname": "x"})
	for _, p := range []string{"/users", "/admin/users", "/users/tok-aaaaaaaaaaaaaaaa", "/admin/users/tok-aaaaaaaaaaaaaaaa"} {
		if rec := e.do(req{path: p}); rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, rec.Code, rec.Body.String())
		}
	}
}

func TestCreateUser(t *testing.T) {
	e := newEnv(t, map[string]string{"TOKEN_QUOTA_GPT4O": "5000"})
	now := e.clock.Now()

	t.Run("no body makes a normal user with the default quotas", func(t *testing.T) {
		rec := e.do(req{method: http.MethodPost, path: "/admin/users"})
		if rec.Code != http.StatusCreated {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
		tok := decode[createdBody](t, rec).Token
		if !users.ValidToken(tok) || len(tok) != 36 {
			t.Fatalf("token %q is not a UUID", tok)
		}
		if loc := rec.Header().Get("Location"); loc != "/admin/users/"+tok {
			t.Errorf("Location %q", loc)
		}
		u := e.stored(tok)
		if u.Type != users.Normal || u.TokenLimits["gpt4o"] != 5000 || u.CreatedAt != now.UnixMilli() {
			t.Errorf("created %+v", u)
		}
	})
	t.Run("at the root, Location has no prefix", func(t *testing.T) {
		rec := e.do(req{method: http.MethodPost, path: "/users", body: map[string]any{"type": "special", "nickname": "ops"}})
		if rec.Code != http.StatusCreated {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
		tok := decode[createdBody](t, rec).Token
		if loc := rec.Header().Get("Location"); loc != "/users/"+tok {
			t.Errorf("Location %q", loc)
		}
		if u := e.stored(tok); u.Type != users.Special || u.Nickname != "ops" {
			t.Errorf("created %+v", u)
		}
	})
	t.Run("temporary", func(t *testing.T) {
		exp := now.Add(24 * time.Hour).UnixMilli()
		rec := e.do(req{method: http.MethodPost, path: "/admin/users", contentType: "application/json; charset=UTF-8",
			body: map[string]any{"type": "temporary", "expiresAt": exp, "tokenLimits": map[string]int{"claude": 100}, "meta": map[string]any{"refreshable": true}, "maxIps": 2}})
		if rec.Code != http.StatusCreated {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
		u := e.stored(decode[createdBody](t, rec).Token)
		if u.Type != users.Temporary || u.ExpiresAt != exp || u.TokenLimits["claude"] != 100 || len(u.TokenLimits) != 1 || !u.Refreshable() || *u.MaxIPs != 2 {
			t.Errorf("created %+v", u)
		}
	})

	future := now.Add(time.Hour).UnixMilli()
	refused := []struct {
		name string
		body any
		ct   string
		code int
		path string
	}{
		{"temporary without expiresAt", map[string]any{"type": "temporary", "tokenLimits": map[string]int{}}, "", 400, "expiresAt"},
		{"temporary with null expiresAt", map[string]any{"type": "temporary", "expiresAt": nil, "tokenLimits": map[string]int{}}, "", 400, "expiresAt"},
		{"temporary in the past", map[string]any{"type": "temporary", "expiresAt": now.Add(-time.Second).UnixMilli(), "tokenLimits": map[string]int{}}, "", 400, "expiresAt"},
		{"temporary without tokenLimits", map[string]any{"type": "temporary", "expiresAt": future}, "", 400, "tokenLimits"},
		{"expiresAt on a normal user", map[string]any{"expiresAt": future}, "", 400, "expiresAt"},
		{"unknown type", map[string]any{"type": "admin"}, "", 400, "type"},
		{"negative maxIps", map[string]any{"maxIps": -1}, "", 400, "maxIps"},
		{"fractional maxIps", map[string]any{"maxIps": 1.5}, "", 400, "maxIps"},
		{"wrong type", map[string]any{"nickname": 7}, "", 400, "nickname"},
		{"unknown field", map[string]any{"isAdmin": true}, "", 400, "isAdmin"},
		{"token chosen", map[string]any{"token": "mine"}, "", 400, "token"},
		{"counts", map[string]any{"promptCount": 3}, "", 400, "promptCount"},
		{"bad family", map[string]any{"tokenLimits": map[string]int{"gpt 4": 1}}, "", 400, "tokenLimits.gpt 4"},
		{"bad JSON", `{"type":`, "", 400, ""},
		{"not an object", `[1]`, "", 400, ""},
		{"text/plain", `{}`, "text/plain", 415, ""},
		{"latin-1", `{}`, "application/json; charset=latin1", 415, ""},
		{"too large", `{"nickname":"` + strings.Repeat("a", maxUserBody) + `"}`, "", 413, ""},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count()
			rec := e.do(req{method: http.MethodPost, path: "/admin/users", body: tc.body, contentType: tc.ct})
			wantError(t, rec, tc.code, tc.path)
			if e.count() != before {
				t.Error("a refused create wrote a user")
			}
		})
	}
	t.Run("several problems are all named", func(t *testing.T) {
		rec := e.do(req{method: http.MethodPost, path: "/admin/users", body: map[string]any{"type": "temporary", "maxIps": -1, "x": 1}})
		got := wantError(t, rec, 400, "maxIps")
		paths := map[string]bool{}
		for _, is := range got.Error.Issues {
			paths[is.Path] = true
		}
		if !paths["x"] || !paths["maxIps"] {
			t.Errorf("issues %+v", got.Error.Issues)
		}
	})
}

func TestUpsertUser(t *testing.T) {
	e := newEnv(t, map[string]string{"TOKEN_QUOTA_CLAUDE": "700"})
	const tok = "0123456789abcdef-upsert"

	u := e.putUser(tok, map[string]any{"nickname": "a", "tokenLimits": map[string]int{"gpt4": 10, "claude": 20}, "adminNote": "n", "maxIps": 3})
	if u.Token != tok || u.Type != users.Normal || u.Nickname != "a" || u.TokenLimits["gpt4"] != 10 || u.CreatedAt != e.clock.Now().UnixMilli() {
		t.Fatalf("created %+v", u)
	}

	// Partial: omitted fields untouched, null deletes, maps replaced whole.
	u = e.putUser(tok, map[string]any{"nickname": nil, "tokenLimits": map[string]int{"gpt4o": 5}, "promptCount": 4, "token": tok})
	if u.Nickname != "" || u.AdminNote != "n" || u.PromptCount != 4 || *u.MaxIPs != 3 {
		t.Errorf("updated %+v", u)
	}
	if len(u.TokenLimits) != 1 || u.TokenLimits["gpt4o"] != 5 {
		t.Errorf("tokenLimits not replaced whole: %v", u.TokenLimits)
	}
	raw := e.do(req{path: "/admin/users/" + tok}).Body.String()
	if strings.Contains(raw, "nickname") {
		t.Errorf("deleted nickname still written: %s", raw)
	}
	// tokenRefresh can go back to 0 (a quirk of the original).
	u = e.putUser(tok, map[string]any{"tokenRefresh": map[string]int{"gpt4o": 0}})
	if v, ok := u.TokenRefresh["gpt4o"]; !ok || v != 0 {
		t.Errorf("tokenRefresh %v", u.TokenRefresh)
	}

	refused := []struct {
		name, path string
		body       any
		ct         string
		code       int
		issue      string
	}{
		{"negative maxIps", tok, map[string]any{"maxIps": -2}, "", 400, "maxIps"},
		{"unknown field", tok, map[string]any{"nickname": "b", "colour": "red"}, "", 400, "colour"},
		{"unknown type", tok, map[string]any{"type": "vip"}, "", 400, "type"},
		{"temporary without expiresAt", tok, map[string]any{"type": "temporary"}, "", 400, "expiresAt"},
		{"null type", tok, map[string]any{"type": nil}, "", 400, "type"},
		{"bad IP", tok, map[string]any{"ip": []string{"1.2.3.4", "nope"}}, "", 400, "ip[1]"},
		{"token mismatch", tok, map[string]any{"token": "other"}, "", 400, "token"},
		{"bad token in path", "bad.token", map[string]any{}, "", 400, "token"},
		{"too long nickname", tok, map[string]any{"nickname": strings.Repeat("é", 81)}, "", 400, "nickname"},
		{"empty body", tok, "", "application/json", 400, ""},
		{"no content type", tok, map[string]any{}, "none", 415, ""},
		{"form", tok, "nickname=x", "application/x-www-form-urlencoded", 415, ""},
		{"too large", tok, `{"adminNote":"` + strings.Repeat("a", maxUserBody) + `"}`, "", 413, ""},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := e.stored(tok)
			r := req{method: http.MethodPut, path: "/admin/users/" + tc.path, body: tc.body, contentType: tc.ct}
			if tc.ct == "none" {
				r.contentType, r.header = "", map[string]string{"Content-Type": ""}
			}
			if tc.body == "" {
				r.body = []byte{}
			}
			wantError(t, e.do(r), tc.code, tc.issue)
			if after := e.stored(tok); !jsonEqual(t, before, after) {
				t.Errorf("refused update changed the user:\n%+v\n%+v", before, after)
			}
		})
	}
	t.Run("too large without Content-Length", func(t *testing.T) {
		body := `{"adminNote":"` + strings.Repeat("a", maxUserBody) + `"}`
		wantError(t, e.do(req{method: http.MethodPut, path: "/admin/users/" + tok, body: body, unknownLength: true}), 413, "")
	})
	if e.count() != 1 {
		t.Errorf("%d users, want 1", e.count())
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return string(ja) == string(jb)
}

func TestImportIsAllOrNothing(t *testing.T) {
	e := newEnv(t, nil)
	const kept = "existing-user-0000000001"
	e.putUser(kept, map[string]any{"nickname": "before", "promptCount": 9})
	before := e.stored(kept)

	refused := []struct {
		name  string
		body  any
		issue string
	}{
		{"negative maxIps in entry 1", map[string]any{"users": []any{
			map[string]any{"token": kept, "nickname": "after"},
			map[string]any{"token": "new-user-000000000002", "maxIps": -1},
		}}, "users[1].maxIps"},
		{"unknown field in entry 0", map[string]any{"users": []any{
			map[string]any{"token": "new-user-000000000002", "favourite": 1},
			map[string]any{"token": kept, "nickname": "after"},
		}}, "users[0].favourite"},
		{"missing token", map[string]any{"users": []any{map[string]any{"nickname": "x"}}}, "users[0].token"},
		{"duplicate token", map[string]any{"users": []any{map[string]any{"token": kept}, map[string]any{"token": kept, "nickname": "after"}}}, "users[1].token"},
		// Caught only when applied (a rule across fields): still nothing written.
		{"temporary without expiresAt", map[string]any{"users": []any{
			map[string]any{"token": kept, "nickname": "after"},
			map[string]any{"token": "new-user-000000000002", "type": "temporary"},
		}}, "users[1].expiresAt"},
		{"unknown top-level field", map[string]any{"users": []any{}, "extra": true}, "extra"},
		{"no users", map[string]any{}, "users"},
		{"users not a list", map[string]any{"users": map[string]any{}}, "users"},
		{"bad JSON", `{"users":[`, ""},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(req{method: http.MethodPut, path: "/admin/users", body: tc.body})
			wantError(t, rec, http.StatusBadRequest, tc.issue)
			if e.count() != 1 {
				t.Errorf("refused import wrote users: %d", e.count())
			}
			if after := e.stored(kept); !jsonEqual(t, before, after) {
				t.Errorf("refused import changed %s: %+v", kept, after)
			}
		})
	}
	t.Run("415 and 413", func(t *testing.T) {
		wantError(t, e.do(req{method: http.MethodPut, path: "/admin/users", body: `{"users":[]}`, contentType: "text/csv"}), 415, "")
		big := `{"users":[{"token":"x","adminNote":"` + strings.Repeat("a", maxImportBody) + `"}]}`
		wantError(t, e.do(req{method: http.MethodPut, path: "/admin/users", body: big}), 413, "")
		wantError(t, e.do(req{method: http.MethodPut, path: "/admin/users", body: big, unknownLength: true}), 413, "")
		if e.count() != 1 {
			t.Error("refused import wrote users")
		}
	})
	t.Run("a body between 1 and 32 MiB is an import, not too large", func(t *testing.T) {
		note := strings.Repeat("n", 1000)
		var list []map[string]any
		for i := 0; i < 1500; i++ { // ~1.5 MiB
			list = append(list, map[string]any{"token": fmt.Sprintf("bulk-%05d", i), "adminNote": note})
		}
		rec := e.do(req{method: http.MethodPut, path: "/admin/users", body: map[string]any{"users": list}})
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %.300s", rec.Code, rec.Body.String())
		}
		if got := decode[importBody](t, rec); got.Count != 1500 || len(got.Upserted) != 1500 || got.Upserted[7].Token != "bulk-00007" {
			t.Errorf("count %d, %d users", got.Count, len(got.Upserted))
		}
	})
	t.Run("success upserts in order", func(t *testing.T) {
		rec := e.do(req{method: http.MethodPut, path: "/admin/users", body: map[string]any{"users": []any{
			map[string]any{"token": "zz-new-user-00000003", "type": "special"},
			map[string]any{"token": kept, "nickname": "after"},
		}}})
		if rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
		got := decode[importBody](t, rec)
		if got.Count != 2 || got.Upserted[0].Token != "zz-new-user-00000003" || got.Upserted[1].Nickname != "after" || got.Upserted[1].PromptCount != 9 {
			t.Errorf("%+v", got)
		}
	})
}

func TestDisableReactivateRefresh(t *testing.T) {
	e := newEnv(t, map[string]string{"TOKEN_QUOTA_GPT4": "100"})
	const tok = "life-cycle-user-000001"
	e.putUser(tok, map[string]any{"tokenCounts": map[string]int{"gpt4": 40, "claude": 5}, "tokenRefresh": map[string]int{"claude": 10}})
	now := e.clock.Now().UnixMilli()

	rec := e.do(req{method: http.MethodDelete, path: "/admin/users/" + tok + "?disabledReason=Shared+on+a+forum"})
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	u := decode[users.User](t, rec)
	if u.DisabledAt != now || u.DisabledReason != "Shared on a forum" {
		t.Errorf("disabled %+v", u)
	}
	e.clock.Advance(time.Minute)
	u = decode[users.User](t, e.do(req{method: http.MethodDelete, path: "/users/" + tok}))
	if u.DisabledReason != "Disabled by an administrator." {
		t.Errorf("default reason %q", u.DisabledReason)
	}

	u = decode[users.User](t, e.do(req{method: http.MethodPost, path: "/admin/users/" + tok + "/reactivate"}))
	if u.DisabledAt != 0 || u.DisabledReason != "" || e.stored(tok).Disabled() {
		t.Errorf("reactivated %+v", u)
	}

	u = decode[users.User](t, e.do(req{method: http.MethodPost, path: "/admin/users/" + tok + "/refresh-quota"}))
	if u.TokenLimits["gpt4"] != 140 || u.TokenLimits["claude"] != 15 || u.RefreshedAt != e.clock.Now().UnixMilli() || u.TokenCounts["gpt4"] != 40 {
		t.Errorf("refreshed %+v", u)
	}

	wantError(t, e.do(req{method: http.MethodDelete, path: "/admin/users/" + tok + "?disabledReason=" + strings.Repeat("x", users.MaxTextLen+1)}), 400, "disabledReason")
	if e.stored(tok).Disabled() {
		t.Error("refused disable wrote")
	}
	for _, r := range []req{
		{path: "/admin/users/no-such-user-000000001"},
		{method: http.MethodDelete, path: "/admin/users/no-such-user-000000001"},
		{method: http.MethodPost, path: "/admin/users/no-such-user-000000001/reactivate"},
		{method: http.MethodPost, path: "/admin/users/no-such-user-000000001/refresh-quota"},
	} {
		wantError(t, e.do(r), http.StatusNotFound, "")
	}
	if e.count() != 1 {
		t.Error("404 created a user")
	}
}

func TestMaintenance(t *testing.T) {
	e := newEnv(t, map[string]string{"TOKEN_QUOTA_GPT4": "100"})
	now := e.clock.Now()
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	e.putUser("normal-user-0000000001", map[string]any{"tokenCounts": map[string]int{"gpt4": 30}})
	e.putUser("temp-expired-000000001", map[string]any{"type": "temporary", "expiresAt": ms(-time.Hour), "tokenCounts": map[string]int{"gpt4": 1}})
	e.putUser("temp-live-000000000001", map[string]any{"type": "temporary", "expiresAt": ms(time.Hour)})
	e.putUser("temp-old-disabled-0001", map[string]any{"type": "temporary", "expiresAt": ms(-72 * time.Hour), "disabledAt": ms(-49 * time.Hour), "disabledReason": "x"})

	run := func(action string) int {
		t.Helper()
		// As Cloud Scheduler calls it: POST with the bearer key, no body.
		rec := e.do(req{method: http.MethodPost, path: "/admin/maintenance/" + action})
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", action, rec.Code, rec.Body.String())
		}
		return decode[maintainBody](t, rec).Affected
	}
	if n := run("expire-temporary"); n != 1 || !e.stored("temp-expired-000000001").Disabled() {
		t.Errorf("expire-temporary affected %d", n)
	}
	if n := run("purge-temporary"); n != 1 || e.count() != 3 {
		t.Errorf("purge-temporary affected %d, %d users left", n, e.count())
	}
	if n := run("refresh-quotas"); n != 1 || e.stored("normal-user-0000000001").TokenLimits["gpt4"] != 130 {
		t.Errorf("refresh-quotas affected %d", n)
	}
	if n := run("reset-counts"); n != 2 || e.stored("normal-user-0000000001").TokenCounts["gpt4"] != 0 {
		t.Errorf("reset-counts affected %d", n)
	}
	// prune-limits counts the limits records it deleted: one left two
	// minutes ago; one entered now is kept.
	lim := e.store.(users.Limits)
	for key, at := range map[string]time.Time{"198.51.100.1": now.Add(-2 * time.Minute), "198.51.100.2": now} {
		if _, err := lim.EnterLimits(context.Background(), key, users.LimitsEntry{ID: "text-1", Kind: "text", Now: at, Window: time.Minute, Rate: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := run("prune-limits"); n != 1 {
		t.Errorf("prune-limits affected %d, want the stale record", n)
	}
	if n := run("prune-limits"); n != 0 {
		t.Errorf("prune-limits again affected %d", n)
	}
	wantError(t, e.do(req{method: http.MethodPost, path: "/admin/maintenance/drop-everything"}), http.StatusNotFound, "")
	wantError(t, e.do(req{method: http.MethodPost, path: "/admin/maintenance/purge-temporary", noAuth: true}), http.StatusUnauthorized, "")
}

// purge-temporary keeps a disabled temporary user POW_TOKEN_PURGE_HOURS,
// the window in which /user/captcha may still extend it, as the original
// purged after powTokenPurgeHours: a longer window is not cut short, and
// a shorter one is not held to 48 hours.
func TestPurgeFollowsPowTokenPurgeHours(t *testing.T) {
	for _, tc := range []struct {
		hours        string
		kept, purged time.Duration // disabled this long ago
	}{
		{"100", 60 * time.Hour, 101 * time.Hour},
		{"1", 30 * time.Minute, 2 * time.Hour},
		{"0", -1, time.Minute}, // right away: nothing disabled is kept
	} {
		t.Run(tc.hours, func(t *testing.T) {
			e := newEnv(t, map[string]string{"POW_TOKEN_PURGE_HOURS": tc.hours})
			now := e.clock.Now()
			for tok, ago := range map[string]time.Duration{"temp-kept-000000000001": tc.kept, "temp-purged-0000000001": tc.purged} {
				if ago < 0 {
					continue
				}
				e.putUser(tok, map[string]any{"type": "temporary", "expiresAt": now.Add(-ago - time.Minute).UnixMilli(),
					"disabledAt": now.Add(-ago).UnixMilli(), "disabledReason": users.ExpiredReason, "meta": map[string]any{"refreshable": true}})
			}
			rec := e.do(req{method: http.MethodPost, path: "/admin/maintenance/purge-temporary"})
			if rec.Code != http.StatusOK {
				t.Fatalf("purge-temporary: %d %s", rec.Code, rec.Body.String())
			}
			if n := decode[maintainBody](t, rec).Affected; n != 1 {
				t.Errorf("purge-temporary affected %d, want 1", n)
			}
			if _, err := e.store.Get(context.Background(), "temp-kept-000000000001"); tc.kept >= 0 && err != nil {
				t.Errorf("the user disabled %v ago was purged: %v", tc.kept, err)
			}
			if _, err := e.store.Get(context.Background(), "temp-purged-0000000001"); !users.IsNotFound(err) {
				t.Errorf("the user disabled %v ago was kept: %v", tc.purged, err)
			}
		})
	}
}

func TestListUsers(t *testing.T) {
	e := newEnv(t, nil)
	for i, spec := range []map[string]any{
		{"promptCount": 5, "lastUsedAt": 100, "nickname": "c"},
		{"promptCount": 9, "nickname": "a"},
		{"promptCount": 5, "lastUsedAt": 200, "nickname": "b"},
		{"promptCount": 1},
	} {
		e.putUser("list-user-00000000000"+string(rune('0'+i)), spec)
	}
	order := func(rec *httpResult) string {
		var out []string
		for _, u := range rec.Users {
			out = append(out, u.Token[len(u.Token)-1:])
		}
		return strings.Join(out, "")
	}
	tests := []struct {
		query string
		want  string
		count int
	}{
		{"", "1203", 4}, // the original's: -promptCount,-lastUsedAt
		// As the original, a plain field sorts descending (ties by token).
		{"?sort=promptCount", "1023", 4},
		{"?sort=promptCount,lastUsedAt", "1203", 4},
		{"?sort=nickname", "0213", 4}, // no nickname last
		{"?sort=-nickname", "0213", 4},
		{"?sort=nickname:asc", "1203", 4},
		{"?sort=promptCount:asc,lastUsedAt:asc", "3021", 4},
		{"?sort=token", "3210", 4},
		{"?sort=token:asc&limit=2", "01", 4},
		{"?sort=token:asc&limit=2&offset=3", "3", 4},
		{"?sort=token:asc&offset=9", "", 4},
		{"?sort=token:asc&limit=0", "0123", 4},
		{"?sort=-lastUsedAt&sort=token:asc", "2013", 4},
	}
	for _, tc := range tests {
		rec := e.do(req{path: "/admin/users" + tc.query})
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.query, rec.Code, rec.Body.String())
		}
		got := decode[httpResult](t, rec)
		if order(&got) != tc.want || got.Count != tc.count {
			t.Errorf("%s: order %s count %d, want %s %d", tc.query, order(&got), got.Count, tc.want, tc.count)
		}
	}
	for q, issue := range map[string]string{"?sort=password": "sort", "?sort=token:up": "sort", "?limit=-1": "limit", "?offset=x": "offset", "?limit=1.5": "limit"} {
		wantError(t, e.do(req{path: "/admin/users" + q}), 400, issue)
	}
	// An empty store lists as [] rather than null.
	empty := newEnv(t, nil)
	if body := strings.TrimSpace(empty.do(req{path: "/users"}).Body.String()); body != `{"users":[],"count":0}` {
		t.Errorf("empty list %s", body)
	}
}

type httpResult struct {
	Users []users.User `json:"users"`
	Count int          `json:"count"`
}

// TestNumericStringsAsTheOriginal: "maxIps":"3" and counts or limits given
// as numeric strings are taken (and stored as numbers), single and bulk; a
// non-numeric string is still a 400 naming the field.
func TestNumericStringsAsTheOriginal(t *testing.T) {
	e := newEnv(t, nil)
	rec := e.do(req{method: http.MethodPut, path: "/admin/users/num-user-000000000001",
		body: `{"maxIps":"3","tokenLimits":{"gpt4o":"1000"},"promptCount":"7"}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("numeric strings: %d %s", rec.Code, rec.Body.String())
	}
	for _, want := range []string{`"maxIps":3`, `"gpt4o":1000`, `"promptCount":7`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("answer %s lacks %s", rec.Body.String(), want)
		}
	}
	rec = e.do(req{method: http.MethodPut, path: "/admin/users",
		body: `{"users":[{"token":"num-user-000000000002","tokenCounts":{"claude":"42"},"maxIps":"0"}]}`})
	if rec.Code != http.StatusOK || e.stored("num-user-000000000002").TokenCounts["claude"] != 42 {
		t.Fatalf("bulk numeric strings: %d %s", rec.Code, rec.Body.String())
	}
	wantError(t, e.do(req{method: http.MethodPut, path: "/admin/users/num-user-000000000001", body: `{"maxIps":"three"}`}), 400, "maxIps")
	wantError(t, e.do(req{method: http.MethodPut, path: "/admin/users",
		body: `{"users":[{"token":"num-user-000000000003","tokenLimits":{"gpt4o":"lots"}}]}`}), 400, "users[0].tokenLimits.gpt4o")
	if u := e.stored("num-user-000000000001"); *u.MaxIPs != 3 {
		t.Fatalf("a refused update changed maxIps: %v", *u.MaxIPs)
	}
}

// deadlineStore records the deadline left to each store call it serves.
type deadlineStore struct {
	users.Store
	mu   sync.Mutex
	left []time.Duration // -1: the call had no deadline
}

func (s *deadlineStore) note(ctx context.Context) {
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	s.mu.Lock()
	s.left = append(s.left, left)
	s.mu.Unlock()
}

func (s *deadlineStore) Get(ctx context.Context, token string) (*users.User, error) {
	s.note(ctx)
	return s.Store.Get(ctx, token)
}

func (s *deadlineStore) List(ctx context.Context) ([]*users.User, error) {
	s.note(ctx)
	return s.Store.List(ctx)
}

func (s *deadlineStore) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	s.note(ctx)
	return s.Store.Modify(ctx, token, create, fn)
}

func (s *deadlineStore) Delete(ctx context.Context, token string) error {
	s.note(ctx)
	return s.Store.Delete(ctx, token)
}

// Every store call a route makes is bounded: one user's routes by
// web.OneUserTimeout, those that walk every user by web.AllUsersTimeout.
func TestRoutesBoundTheirStoreCalls(t *testing.T) {
	s := &deadlineStore{Store: memory.New()}
	e := newEnv(t, nil, withStore(s))
	token := e.putUser("bounded-user", map[string]any{"type": "normal"}).Token
	for _, tc := range []struct {
		r     req
		bound time.Duration
	}{
		{req{path: "/admin/users"}, web.AllUsersTimeout},
		{req{method: http.MethodPost, path: "/admin/users", body: map[string]any{"type": "normal"}}, web.OneUserTimeout},
		{req{method: http.MethodPut, path: "/admin/users", body: map[string]any{"users": []any{map[string]any{"token": token, "nickname": "x"}}}}, web.AllUsersTimeout},
		{req{path: "/admin/users/" + token}, web.OneUserTimeout},
		{req{method: http.MethodPut, path: "/admin/users/" + token, body: map[string]any{"nickname": "y"}}, web.OneUserTimeout},
		{req{method: http.MethodDelete, path: "/admin/users/" + token}, web.OneUserTimeout},
		{req{method: http.MethodPost, path: "/admin/users/" + token + "/reactivate"}, web.OneUserTimeout},
		{req{method: http.MethodPost, path: "/admin/users/" + token + "/refresh-quota"}, web.OneUserTimeout},
		{req{method: http.MethodPost, path: "/admin/maintenance/reset-counts"}, web.AllUsersTimeout},
		{req{path: "/admin/stats"}, web.AllUsersTimeout},
	} {
		s.mu.Lock()
		s.left = nil
		s.mu.Unlock()
		if rec := e.do(tc.r); rec.Code >= 300 {
			t.Fatalf("%s %s: %d %s", tc.r.method, tc.r.path, rec.Code, rec.Body)
		}
		s.mu.Lock()
		left := s.left
		s.mu.Unlock()
		if len(left) == 0 {
			t.Fatalf("%s %s: no store call", tc.r.method, tc.r.path)
		}
		for _, l := range left {
			if l > tc.bound || l < tc.bound-10*time.Second {
				t.Errorf("%s %s: a store call had %v left, want at most %v (and set)", tc.r.method, tc.r.path, l, tc.bound)
			}
		}
	}
}
