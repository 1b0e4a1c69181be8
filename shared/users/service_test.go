package users_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/users/userstest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

type svcFixture struct {
	svc   *users.Service
	store *memory.Store
	now   time.Time
}

func newService(defaults map[string]int64) *svcFixture {
	f := &svcFixture{store: memory.New(), now: t0}
	f.svc = &users.Service{Store: f.store, Defaults: defaults, Now: func() time.Time { return f.now }}
	return f
}

func patch(t *testing.T, doc string) users.Patch {
	t.Helper()
	p, err := users.ParsePatch([]byte(doc))
	if err != nil {
		t.Fatalf("ParsePatch(%s): %v", doc, err)
	}
	return p
}

func (f *svcFixture) get(t *testing.T, token string) *users.User {
	t.Helper()
	u, err := f.store.Get(ctx(t), token)
	if err != nil {
		t.Fatalf("Get %s: %v", token, err)
	}
	return u
}

func (f *svcFixture) put(t *testing.T, u *users.User) {
	t.Helper()
	if _, err := f.store.Modify(ctx(t), u.Token, true, func(cur *users.User, _ bool) error {
		*cur = *u.Clone()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func wantInvalid(t *testing.T, err error, paths ...string) {
	t.Helper()
	var got []string
	for _, is := range issuesOf(t, err) {
		got = append(got, is.Path)
	}
	if !slices.Equal(got, paths) {
		t.Errorf("issue paths = %v, want %v", got, paths)
	}
}

func TestServiceCreate(t *testing.T) {
	f := newService(map[string]int64{"gpt4o": 1000, "claude": 0})
	tests := []struct {
		name    string
		doc     string
		check   func(t *testing.T, u *users.User)
		invalid []string
	}{
		{"normal by default", `{}`, func(t *testing.T, u *users.User) {
			if u.Type != users.Normal || !maps.Equal(u.TokenLimits, map[string]int64{"gpt4o": 1000}) || u.CreatedAt != t0.UnixMilli() {
				t.Errorf("user = %+v", u)
			}
		}, nil},
		{"special", `{"type":"special","nickname":"vip"}`, func(t *testing.T, u *users.User) {
			if u.Type != users.Special || u.Nickname != "vip" {
				t.Errorf("user = %+v", u)
			}
		}, nil},
		{"temporary with its own quotas", `{"type":"temporary","expiresAt":` + itoa(t0.Add(time.Hour).UnixMilli()) + `,"tokenLimits":{"claude":50}}`,
			func(t *testing.T, u *users.User) {
				if u.Type != users.Temporary || !maps.Equal(u.TokenLimits, map[string]int64{"claude": 50}) || u.ExpiresAt == 0 {
					t.Errorf("user = %+v", u)
				}
			}, nil},
		{"temporary without expiry", `{"type":"temporary"}`, nil, []string{"expiresAt"}},
		{"token chosen", `{"token":"mine"}`, nil, []string{"token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := f.store.List(ctx(t))
			u, err := f.svc.Create(ctx(t), patch(t, tt.doc))
			if tt.invalid != nil {
				wantInvalid(t, err, tt.invalid...)
				if after, _ := f.store.List(ctx(t)); len(after) != len(before) {
					t.Errorf("an invalid create wrote a user")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			id, err := uuid.Parse(u.Token)
			if err != nil || id.Version() != 4 || !users.ValidToken(u.Token) {
				t.Errorf("token %q is not a UUID v4", u.Token)
			}
			if stored := f.get(t, u.Token); !reflect.DeepEqual(stored, u) {
				t.Errorf("stored %+v, returned %+v", stored, u)
			}
			tt.check(t, u)
		})
	}
	a, _ := f.svc.Create(ctx(t), users.Patch{})
	b, _ := f.svc.Create(ctx(t), users.Patch{})
	if a.Token == b.Token {
		t.Error("two users got one token")
	}
}

func TestServiceUpsert(t *testing.T) {
	f := newService(map[string]int64{"gpt4o": 1000})
	u, created, err := f.svc.Upsert(ctx(t), "alice", patch(t, `{"nickname":"a","maxIps":2}`))
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	if u.Token != "alice" || u.Nickname != "a" || *u.MaxIPs != 2 || u.TokenLimits["gpt4o"] != 1000 || u.CreatedAt != t0.UnixMilli() {
		t.Errorf("created %+v", u)
	}
	f.now = t0.Add(time.Hour)
	u, created, err = f.svc.Upsert(ctx(t), "alice", patch(t, `{"token":"alice","adminNote":"x","maxIps":null,"tokenLimits":{"claude":5}}`))
	if err != nil || created {
		t.Fatalf("update: %v created=%v", err, created)
	}
	if u.Nickname != "a" || u.AdminNote != "x" || u.MaxIPs != nil || !maps.Equal(u.TokenLimits, map[string]int64{"claude": 5}) || u.CreatedAt != t0.UnixMilli() {
		t.Errorf("updated %+v", u)
	}
	tests := []struct {
		name  string
		token string
		doc   string
		paths []string
	}{
		{"token mismatch", "alice", `{"token":"bob"}`, []string{"token"}},
		{"bad path token", "a b", `{}`, []string{"token"}},
		{"makes it invalid", "alice", `{"type":"temporary"}`, []string{"expiresAt"}},
		{"new and invalid", "carol", `{"type":"temporary"}`, []string{"expiresAt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.get(t, "alice")
			_, _, err := f.svc.Upsert(ctx(t), tt.token, patch(t, tt.doc))
			wantInvalid(t, err, tt.paths...)
			if after := f.get(t, "alice"); !reflect.DeepEqual(before, after) {
				t.Errorf("a refused update wrote: %+v", after)
			}
			if _, err := f.store.Get(ctx(t), "carol"); !users.IsNotFound(err) {
				t.Errorf("a refused create wrote carol")
			}
		})
	}
}

func TestServiceImport(t *testing.T) {
	f := newService(map[string]int64{"gpt4o": 1000})
	f.put(t, users.New("existing", users.Normal, t0.Add(-time.Hour), nil))

	ps, err := users.ParsePatchList([]byte(`{"users":[{"token":"existing","nickname":"e"},{"token":"new1"},{"token":"new2","type":"special"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Import(ctx(t), ps)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d users imported", len(got))
	}
	e := f.get(t, "existing")
	if e.Nickname != "e" || e.CreatedAt != t0.Add(-time.Hour).UnixMilli() || len(e.TokenLimits) != 0 {
		t.Errorf("existing user = %+v, want only its nickname changed", e)
	}
	if n := f.get(t, "new1"); n.TokenLimits["gpt4o"] != 1000 || n.CreatedAt != t0.UnixMilli() {
		t.Errorf("new user = %+v, want defaults", n)
	}

	// All or nothing: one bad entry writes nothing, and its issue names it.
	ps, err = users.ParsePatchList([]byte(`{"users":[{"token":"existing","nickname":"changed"},{"token":"new3"},{"token":"tmp","type":"temporary"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Import(ctx(t), ps)
	wantInvalid(t, err, "users[2].expiresAt")
	if f.get(t, "existing").Nickname != "e" {
		t.Error("a failed import changed a user")
	}
	if _, err := f.store.Get(ctx(t), "new3"); !users.IsNotFound(err) {
		t.Error("a failed import created a user")
	}
}

// The original's export imports unchanged and exports back equal, even
// with default quotas configured.
func TestServiceImportOriginalExport(t *testing.T) {
	f := newService(map[string]int64{"gpt4o": 5, "claude": 7})
	ps, err := users.ParsePatchList(userstest.OriginalExport)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Import(ctx(t), ps); err != nil {
		t.Fatal(err)
	}
	list, err := f.store.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Users []map[string]any `json:"users"`
	}
	if err := json.Unmarshal(userstest.OriginalExport, &doc); err != nil {
		t.Fatal(err)
	}
	want := doc.Users
	for _, u := range want {
		delete(u, "tokenCount") // deprecated: accepted and dropped
	}
	b, _ := json.Marshal(list)
	var got []map[string]any
	json.Unmarshal(b, &got)
	byToken := func(s []map[string]any) {
		sort.Slice(s, func(i, j int) bool { return s[i]["token"].(string) < s[j]["token"].(string) })
	}
	byToken(got)
	byToken(want)
	if !reflect.DeepEqual(got, want) {
		gb, _ := json.MarshalIndent(got, "", " ")
		wb, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("export differs:\n got %s\nwant %s", gb, wb)
	}
}

func TestServiceDisableReactivateRefresh(t *testing.T) {
	f := newService(map[string]int64{"gpt4o": 1000})
	tmp := users.New("tmp", users.Temporary, t0, map[string]int64{"gpt4o": 100})
	tmp.ExpiresAt = t0.Add(time.Hour).UnixMilli()
	tmp.TokenCounts["gpt4o"] = 80
	f.put(t, tmp)
	f.put(t, users.New("u", users.Normal, t0, nil))

	u, err := f.svc.Disable(ctx(t), "u", "")
	if err != nil || !u.Disabled() || u.DisabledReason != "Disabled by an administrator." || u.DisabledAt != t0.UnixMilli() {
		t.Fatalf("Disable default reason: %+v %v", u, err)
	}
	u, err = f.svc.Disable(ctx(t), "u", "Abuse.")
	if err != nil || u.DisabledReason != "Abuse." {
		t.Fatalf("Disable with reason: %+v %v", u, err)
	}
	u, err = f.svc.Reactivate(ctx(t), "u")
	if err != nil || u.Disabled() || u.DisabledReason != "" {
		t.Fatalf("Reactivate: %+v %v", u, err)
	}
	if stored := f.get(t, "u"); stored.Disabled() {
		t.Error("reactivation not stored")
	}
	// An explicit refresh applies to any type, temporary included.
	f.now = t0.Add(time.Minute)
	u, err = f.svc.RefreshQuota(ctx(t), "tmp")
	if err != nil || u.TokenLimits["gpt4o"] != 1080 || u.RefreshedAt != f.now.UnixMilli() {
		t.Fatalf("RefreshQuota: %+v %v", u, err)
	}
	for name, call := range map[string]func() error{
		"Disable":      func() error { _, err := f.svc.Disable(ctx(t), "ghost", ""); return err },
		"Reactivate":   func() error { _, err := f.svc.Reactivate(ctx(t), "ghost"); return err },
		"RefreshQuota": func() error { _, err := f.svc.RefreshQuota(ctx(t), "ghost"); return err },
	} {
		if err := call(); !users.IsNotFound(err) {
			t.Errorf("%s(missing) = %v, want not found", name, err)
		}
	}
	if _, err := f.store.Get(ctx(t), "ghost"); !users.IsNotFound(err) {
		t.Error("a call on a missing user created it")
	}
}

func TestServiceMaintain(t *testing.T) {
	const h = time.Hour
	mk := func(token string, typ users.Type, edit func(u *users.User)) *users.User {
		u := users.New(token, typ, t0, nil)
		u.TokenCounts = map[string]int64{"gpt4o": 100}
		u.TokenLimits = map[string]int64{"gpt4o": 150}
		if typ == users.Temporary {
			u.ExpiresAt = t0.Add(h).UnixMilli()
		}
		if edit != nil {
			edit(u)
		}
		return u
	}
	now := t0.Add(100 * h)
	disabledAgo := func(d time.Duration) func(u *users.User) {
		return func(u *users.User) { u.Disable(now.Add(-d), users.ExpiredReason) }
	}
	all := func() []*users.User {
		return []*users.User{
			mk("normal", users.Normal, nil),
			mk("special", users.Special, nil),
			mk("no-counts", users.Normal, func(u *users.User) { u.TokenCounts = map[string]int64{} }),
			mk("tmp-live", users.Temporary, func(u *users.User) { u.ExpiresAt = now.Add(h).UnixMilli() }),
			mk("tmp-expired", users.Temporary, nil),
			mk("tmp-refreshable", users.Temporary, func(u *users.User) {
				u.ExpiresAt = now.Add(h).UnixMilli()
				u.Meta = map[string]any{"refreshable": true}
			}),
			mk("tmp-disabled-49h", users.Temporary, disabledAgo(49*h)),
			mk("tmp-disabled-48h", users.Temporary, disabledAgo(48*h)),
			mk("tmp-disabled-47h", users.Temporary, disabledAgo(47*h)),
			mk("normal-disabled-99h", users.Normal, disabledAgo(99*h)),
		}
	}
	tests := []struct {
		action   string
		affected int
		check    func(t *testing.T, f *svcFixture, before map[string]*users.User)
	}{
		{users.ActionRefreshQuotas, 5, func(t *testing.T, f *svcFixture, before map[string]*users.User) {
			// Every non-temporary user and the refreshable temporary one:
			// limit = count + 1000; the no-counts user gets 0 + 1000.
			for tok, want := range map[string]int64{"normal": 1100, "special": 1100, "no-counts": 1000, "tmp-refreshable": 1100, "normal-disabled-99h": 1100} {
				if got := f.get(t, tok); got.TokenLimits["gpt4o"] != want || got.RefreshedAt != now.UnixMilli() {
					t.Errorf("%s: limit %d refreshedAt %d, want %d", tok, got.TokenLimits["gpt4o"], got.RefreshedAt, want)
				}
			}
			for _, tok := range []string{"tmp-live", "tmp-expired", "tmp-disabled-47h"} {
				if !reflect.DeepEqual(f.get(t, tok), before[tok]) {
					t.Errorf("%s changed", tok)
				}
			}
		}},
		{users.ActionResetCounts, 9, func(t *testing.T, f *svcFixture, before map[string]*users.User) {
			for tok := range before {
				got := f.get(t, tok)
				if got.TokenCounts["gpt4o"] != 0 || got.TokenLimits["gpt4o"] != before[tok].TokenLimits["gpt4o"] {
					t.Errorf("%s: counts %v limits %v", tok, got.TokenCounts, got.TokenLimits)
				}
			}
		}},
		{users.ActionExpireTemporary, 1, func(t *testing.T, f *svcFixture, before map[string]*users.User) {
			got := f.get(t, "tmp-expired")
			if !got.Disabled() || got.DisabledReason != users.ExpiredReason || got.DisabledAt != now.UnixMilli() {
				t.Errorf("tmp-expired = %+v", got)
			}
			for _, tok := range []string{"tmp-live", "tmp-disabled-49h", "normal"} {
				if !reflect.DeepEqual(f.get(t, tok), before[tok]) {
					t.Errorf("%s changed", tok)
				}
			}
		}},
		{users.ActionPurgeTemporary, 2, func(t *testing.T, f *svcFixture, before map[string]*users.User) {
			for _, tok := range []string{"tmp-disabled-49h", "tmp-disabled-48h"} {
				if _, err := f.store.Get(ctx(t), tok); !users.IsNotFound(err) {
					t.Errorf("%s not purged", tok)
				}
			}
			list, _ := f.store.List(ctx(t))
			if len(list) != len(before)-2 {
				t.Errorf("%d users left, want %d", len(list), len(before)-2)
			}
			for _, tok := range []string{"tmp-disabled-47h", "normal-disabled-99h", "tmp-expired"} {
				if _, err := f.store.Get(ctx(t), tok); err != nil {
					t.Errorf("%s purged", tok)
				}
			}
		}},
		{users.ActionExpireAllTemporary, 3, func(t *testing.T, f *svcFixture, before map[string]*users.User) {
			// Every enabled temporary user, expired or not; a refreshable
			// one stops being refreshable, as in the original.
			for _, tok := range []string{"tmp-live", "tmp-expired", "tmp-refreshable"} {
				got := f.get(t, tok)
				if !got.Disabled() || got.DisabledReason != users.ForceExpiredReason || got.DisabledAt != now.UnixMilli() || !got.Expired(now) || got.Refreshable() {
					t.Errorf("%s = %+v", tok, got)
				}
			}
			if got := f.get(t, "tmp-expired"); got.ExpiresAt != before["tmp-expired"].ExpiresAt {
				t.Errorf("an already past expiry moved: %d", got.ExpiresAt)
			}
			for _, tok := range []string{"tmp-disabled-49h", "normal", "special"} {
				if !reflect.DeepEqual(f.get(t, tok), before[tok]) {
					t.Errorf("%s changed", tok)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			f := newService(map[string]int64{"gpt4o": 1000})
			before := map[string]*users.User{}
			for _, u := range all() {
				f.put(t, u)
				before[u.Token] = f.get(t, u.Token)
			}
			f.now = now
			n, err := f.svc.Maintain(ctx(t), tt.action)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.affected {
				t.Errorf("affected = %d, want %d", n, tt.affected)
			}
			tt.check(t, f, before)
			// Running it again changes nothing more (refresh is idempotent
			// at one instant).
			if n, err := f.svc.Maintain(ctx(t), tt.action); err != nil || n != 0 {
				t.Errorf("second run: %d %v, want 0", n, err)
			}
		})
	}
	t.Run("unknown action", func(t *testing.T) {
		_, err := newService(nil).svc.Maintain(ctx(t), "drop-tables")
		if users.ErrorCode(err) != users.CodeNotFound {
			t.Errorf("err = %v, want not found", err)
		}
	})
	if !slices.Equal(users.Actions, []string{"refresh-quotas", "reset-counts", "expire-temporary", "purge-temporary", "expire-all-temporary", "prune-events", "prune-limits"}) {
		t.Errorf("Actions = %v", users.Actions)
	}
}

// listFails is a store whose List fails: maintenance reports it.
type listFails struct{ *memory.Store }

var errList = errors.New("list failed")

func (listFails) List(context.Context) ([]*users.User, error) { return nil, errList }

func TestServiceMaintainStoreError(t *testing.T) {
	svc := &users.Service{Store: listFails{memory.New()}}
	for _, a := range users.Actions {
		if a == users.ActionPruneEvents || a == users.ActionPruneLimits {
			continue // lists no users
		}
		if _, err := svc.Maintain(ctx(t), a); !errors.Is(err, errList) {
			t.Errorf("%s: err = %v", a, err)
		}
	}
}

func TestServiceUpdateNeverCreates(t *testing.T) {
	svc := &users.Service{Store: memory.New(), Now: func() time.Time { return time.Unix(1700000000, 0) }}
	p, err := users.ParsePatch([]byte(`{"nickname":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Update(context.Background(), "gone-token", p); !users.IsNotFound(err) {
		t.Fatalf("Update of a missing user: %v, want not found", err)
	}
	if _, err := svc.Store.Get(context.Background(), "gone-token"); !users.IsNotFound(err) {
		t.Fatal("Update created the user")
	}
	u, err := svc.Create(context.Background(), users.Patch{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc.Update(context.Background(), u.Token, p)
	if err != nil || got.Nickname != "x" {
		t.Fatalf("Update = %+v, %v", got, err)
	}
}

func TestServicePruneEvents(t *testing.T) {
	store := memory.New()
	now := t0.Add(40 * 24 * time.Hour)
	svc := &users.Service{Store: store, Now: func() time.Time { return now }, EventRetention: 10 * 24 * time.Hour}
	for _, age := range []time.Duration{0, 9 * 24 * time.Hour, 11 * 24 * time.Hour, 39 * 24 * time.Hour} {
		if err := store.AddEvent(ctx(t), "tok", users.Event{At: now.Add(-age).UnixMilli(), Family: "gpt4o"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := svc.Maintain(ctx(t), users.ActionPruneEvents); err != nil || n != 2 {
		t.Fatalf("prune-events = %d, %v; want the 2 events past 10 days", n, err)
	}
	// The default retention is 30 days.
	svc.EventRetention = 0
	now = now.Add(25 * 24 * time.Hour)
	if n, err := svc.Maintain(ctx(t), users.ActionPruneEvents); err != nil || n != 1 {
		t.Fatalf("prune-events at the default = %d, %v; want the 34-day-old one", n, err)
	}
}

// prune-limits deletes the limits records that keep nothing, and no
// more than 5,000 records are looked at in one call: a later call goes on
// with the rest.
func TestServicePruneLimits(t *testing.T) {
	store := memory.New()
	now := t0.Add(2 * time.Minute)
	svc := &users.Service{Store: store, Now: func() time.Time { return now }}
	const stale = 5001
	for i := range stale {
		enterLimits(t, store, fmt.Sprintf("gone-%04d", i), t0, true)
	}
	enterLimits(t, store, "recent", now.Add(-time.Second), true)
	if n, err := svc.Maintain(ctx(t), users.ActionPruneLimits); err != nil || n != 5000 {
		t.Fatalf("prune-limits = %d, %v; want the first 5000 of %d stale records", n, err, stale)
	}
	if n, err := svc.Maintain(ctx(t), users.ActionPruneLimits); err != nil || n != 1 {
		t.Fatalf("second prune-limits = %d, %v; want the last stale record", n, err)
	}
	if d, err := store.EnterLimits(ctx(t), "recent", users.LimitsEntry{ID: "text-again", Kind: "text", Now: now, Window: time.Minute, Rate: 1}); err != nil || d.RateOK {
		t.Fatalf("the recent record: %+v, %v; want kept, refusing a second request within the minute", d, err)
	}
}

// Records in use are never deleted, so a walk that always began at the
// first name would stop, call after call, at the same 5,000 of them when
// they come first (names an attacker can choose keys for): the records
// after them would never be pruned. Each call begins at a random name and
// wraps round.
func TestServicePruneLimitsGetsPastRecordsInUse(t *testing.T) {
	store := memory.New()
	now := t0.Add(2 * time.Minute)
	svc := &users.Service{Store: store, Now: func() time.Time { return now }}
	for i := range 5000 {
		enterLimits(t, store, fmt.Sprintf("0-live-%04d", i), now, false) // first by name, held
	}
	const stale = 50
	for i := range stale {
		enterLimits(t, store, fmt.Sprintf("z-gone-%02d", i), t0, true)
	}
	if n, err := svc.Maintain(ctx(t), users.ActionPruneLimits); err != nil || n != stale {
		t.Fatalf("prune-limits = %d, %v; want the %d stale records past 5000 in use", n, err, stale)
	}
}

// enterLimits lets one request of key in at at (one a minute, one in
// flight, a 10-minute lease) and, with leave, out again.
func enterLimits(t *testing.T, store users.Limits, key string, at time.Time, leave bool) {
	t.Helper()
	if _, err := store.EnterLimits(ctx(t), key, users.LimitsEntry{ID: "text-" + key, Kind: "text", Now: at, Window: time.Minute,
		Rate: 1, Inflight: 1, LeaseUntil: at.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if !leave {
		return
	}
	if err := store.LeaveLimits(ctx(t), key, "text-"+key, false); err != nil {
		t.Fatal(err)
	}
}

func TestBanClearsRefreshable(t *testing.T) {
	u := users.New("tmp", users.Temporary, t0, nil)
	u.Meta = map[string]any{"refreshable": true, "note": "x"}
	u.Ban(t0, "abuse")
	if u.Refreshable() || u.Meta["note"] != "x" || u.DisabledReason != "abuse" {
		t.Errorf("after a ban: %+v", u)
	}
	// Disabled by its expiry, a temporary user may still be refreshed.
	e := users.New("tmp2", users.Temporary, t0, nil)
	e.Meta = map[string]any{"refreshable": true}
	e.Disable(t0, users.ExpiredReason)
	if !e.Refreshable() {
		t.Errorf("expiry cleared refreshable: %v", e.Meta)
	}
	n := users.New("n", users.Normal, t0, nil)
	n.Meta = map[string]any{"refreshable": true}
	n.Ban(t0, "abuse")
	if !n.Refreshable() {
		t.Errorf("a normal user's meta changed: %v", n.Meta)
	}
	// Through the service: an administrator's disable.
	svc := &users.Service{Store: memory.New(), Now: func() time.Time { return t0 }}
	p, _ := users.ParsePatch([]byte(`{"type":"temporary","expiresAt":99999999999999,"tokenLimits":{},"meta":{"refreshable":true}}`))
	created, _, err := svc.Upsert(ctx(t), "tmp3", p)
	if err != nil || !created.Refreshable() {
		t.Fatalf("upsert: %+v %v", created, err)
	}
	got, err := svc.Disable(ctx(t), "tmp3", "")
	if err != nil || got.Refreshable() {
		t.Errorf("Service.Disable left it refreshable: %+v %v", got, err)
	}
}

// listHookStore runs afterList once, right after the first List: another
// writer landing between a maintenance scan and its writes.
type listHookStore struct {
	*memory.Store
	afterList func()
}

func (s *listHookStore) List(ctx context.Context) ([]*users.User, error) {
	l, err := s.Store.List(ctx)
	if f := s.afterList; f != nil {
		s.afterList = nil
		f()
	}
	return l, err
}

// A temporary user disabled 49 h ago and reactivated (or made permanent)
// by an administrator while purge-temporary runs is not deleted, nor
// counted.
func TestPurgeKeepsAUserChangedMeanwhile(t *testing.T) {
	now := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	st := &listHookStore{Store: memory.New()}
	svc := &users.Service{Store: st, Now: func() time.Time { return now }}
	ctx := context.Background()
	for _, tok := range []string{"tmp-reactivated", "tmp-made-normal"} {
		if _, err := st.Modify(ctx, tok, true, func(u *users.User, _ bool) error {
			*u = *users.New(tok, users.Temporary, now.Add(-72*time.Hour), nil)
			u.ExpiresAt = now.Add(-49 * time.Hour).UnixMilli()
			u.Disable(now.Add(-49*time.Hour), users.ExpiredReason)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	st.afterList = func() {
		if _, err := svc.Reactivate(ctx, "tmp-reactivated"); err != nil {
			t.Error(err)
		}
		if _, err := svc.Update(ctx, "tmp-made-normal", users.Patch{Type: users.Opt[users.Type]{Set: true, Value: users.Normal}}); err != nil {
			t.Error(err)
		}
	}
	n, err := svc.Maintain(ctx, users.ActionPurgeTemporary)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"tmp-reactivated", "tmp-made-normal"} {
		if _, err := st.Get(ctx, tok); err != nil {
			t.Errorf("%s was changed meanwhile so that purge no longer applies, but it was deleted (%v); affected=%d", tok, err, n)
		}
	}
	if n != 0 {
		t.Errorf("purge counted %d users, want 0", n)
	}
}
