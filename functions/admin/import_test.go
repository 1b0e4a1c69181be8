package admin

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"testing"
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
