package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// TestOriginalExportRoundTrips imports the original project's export
// unchanged, then checks export → re-import → export gives the same JSON.
func TestOriginalExportRoundTrips(t *testing.T) {
	fixture, err := os.ReadFile("testdata/original-users-export.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, map[string]string{"TOKEN_QUOTA_GPT4O": "123", "TOKEN_QUOTA_CLAUDE": "456"})

	rec := e.do(req{method: http.MethodPut, path: "/admin/users", body: fixture})
	if rec.Code != http.StatusOK {
		t.Fatalf("import: %d %s", rec.Code, rec.Body.String())
	}
	imported := decode[map[string]any](t, rec)
	if imported["count"] != float64(4) {
		t.Fatalf("imported %v users", imported["count"])
	}

	// Imported unchanged: each user exports exactly as the original wrote
	// it, but for the deprecated tokenCount (accepted and ignored) and in
	// the list's order.
	var orig struct{ Users []map[string]any }
	if err := json.Unmarshal(fixture, &orig); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{}
	for _, u := range orig.Users {
		delete(u, "tokenCount")
		want[u["token"].(string)] = u
	}
	export1 := e.do(req{path: "/admin/users"})
	var list struct {
		Users []map[string]any
		Count int
	}
	if err := json.Unmarshal(export1.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.Count != len(want) || len(list.Users) != len(want) {
		t.Fatalf("export has %d/%d users, want %d", len(list.Users), list.Count, len(want))
	}
	for _, got := range list.Users {
		w := want[got["token"].(string)]
		if !reflect.DeepEqual(got, w) {
			a, _ := json.Marshal(got)
			b, _ := json.Marshal(w)
			t.Errorf("user exported differently:\n got %s\nwant %s", a, b)
		}
	}
	// The same through GET /users/{token}.
	for tok, w := range want {
		if got := decode[map[string]any](t, e.do(req{path: "/admin/users/" + tok})); !reflect.DeepEqual(got, w) {
			t.Errorf("GET %s differs: %v", tok, got)
		}
	}

	// An export imports as it is (its count is ignored) and exports equal.
	again := newEnv(t, nil)
	if rec := again.do(req{method: http.MethodPut, path: "/admin/users", body: export1.Body.Bytes()}); rec.Code != http.StatusOK {
		t.Fatalf("re-import: %d %s", rec.Code, rec.Body.String())
	}
	export2 := again.do(req{path: "/admin/users"})
	var j1, j2 any
	_ = json.Unmarshal(export1.Body.Bytes(), &j1)
	_ = json.Unmarshal(export2.Body.Bytes(), &j2)
	if !reflect.DeepEqual(j1, j2) {
		t.Errorf("round trip differs:\n%s\n%s", export1.Body.String(), export2.Body.String())
	}
	// Re-importing onto the same store changes nothing either.
	if rec := e.do(req{method: http.MethodPut, path: "/admin/users", body: export1.Body.Bytes()}); rec.Code != http.StatusOK {
		t.Fatalf("re-import in place: %d", rec.Code)
	}
	if export3 := e.do(req{path: "/admin/users"}); export3.Body.String() != export1.Body.String() {
		t.Errorf("re-import in place changed the export:\n%s\n%s", export1.Body.String(), export3.Body.String())
	}
	// A bad count is not silently dropped.
	wantError(t, e.do(req{method: http.MethodPut, path: "/admin/users", body: `{"users":[],"count":"four"}`}), 400, "count")
}

// purgingStore deletes a user just before the import's write of it, as the
// scheduler's purge would between the import's read and its write.
type purgingStore struct {
	*memory.Store
	victim string
	once   sync.Once
}

func (s *purgingStore) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	if token == s.victim && !create {
		s.once.Do(func() { _ = s.Store.Delete(ctx, token) })
	}
	return s.Store.Modify(ctx, token, create, fn)
}

// TestImportReportsUsersNotWritten: the answer is the original's
// {upserted_users, count} for the users written, plus "failed" for an
// entry whose user was deleted during the import (not re-created).
func TestImportReportsUsersNotWritten(t *testing.T) {
	store := &purgingStore{Store: memory.New(), victim: "tok-purged"}
	e := newEnv(t, nil, withStore(store))
	if rec := e.do(req{method: http.MethodPut, path: "/admin/users/tok-purged", body: `{"type":"normal"}`}); rec.Code != http.StatusOK {
		t.Fatalf("seed: %d %s", rec.Code, rec.Body.String())
	}
	rec := e.do(req{method: http.MethodPut, path: "/admin/users", body: `{"users":[{"token":"tok-a","nickname":"a"},{"token":"tok-purged","nickname":"p"},{"token":"tok-b"}]}`})
	if rec.Code != http.StatusOK {
		t.Fatalf("import: %d %s", rec.Code, rec.Body.String())
	}
	var got struct {
		Upserted []users.User `json:"upserted_users"`
		Count    int
		Failed   []struct {
			Index  int
			Token  string
			Status int
			Error  struct{ Message string }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Count != 2 || len(got.Upserted) != 2 || got.Upserted[0].Token != "tok-a" || got.Upserted[1].Token != "tok-b" {
		t.Fatalf("upserted %+v, count %d", got.Upserted, got.Count)
	}
	if len(got.Failed) != 1 || got.Failed[0].Index != 1 || got.Failed[0].Token != "tok-purged" || got.Failed[0].Status != 404 ||
		got.Failed[0].Error.Message != "The user was deleted during the import; it is not re-created." {
		t.Fatalf("failed = %+v", got.Failed)
	}
	if rec := e.do(req{path: "/admin/users/tok-purged"}); rec.Code != http.StatusNotFound {
		t.Fatalf("purged user is back: %d %s", rec.Code, rec.Body.String())
	}
	// Everything written: "failed" is there, empty.
	rec = e.do(req{method: http.MethodPut, path: "/admin/users", body: `{"users":[{"token":"tok-a","nickname":"again"}]}`})
	if !strings.Contains(rec.Body.String(), `"failed":[]`) {
		t.Fatalf("answer %s", rec.Body.String())
	}
}
