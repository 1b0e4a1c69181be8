package admin

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "Basic abc", "Bearer", "Bearer ", "", "BEARER a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		cred, ok := bearer(h)
		if ok != (cred != "") {
			t.Fatalf("bearer(%q) = %q, %v", h, cred, ok)
		}
		if ok && (!strings.Contains(h, cred) || cred != strings.TrimSpace(cred)) {
			t.Fatalf("bearer(%q) = %q", h, cred)
		}
	})
}

func FuzzWithoutCount(f *testing.F) {
	for _, s := range []string{`{"users":[],"count":3}`, `{"users":[{"token":"a"}]}`, `{"count":"x"}`, `[1]`, `{"count":-1,"users":[]}`, `{`, `{"count":1,"count":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := withoutCount([]byte(in))
		if string(out) == in {
			return
		}
		// Changed: only a valid, non-negative top-level count was dropped.
		var before, after map[string]json.RawMessage
		if json.Unmarshal([]byte(in), &before) != nil || json.Unmarshal(out, &after) != nil {
			t.Fatalf("withoutCount(%q) = %q", in, out)
		}
		if _, ok := after["count"]; ok || len(after) != len(before)-1 {
			t.Fatalf("withoutCount(%q) = %q", in, out)
		}
		for k, v := range after {
			var a, b any
			_ = json.Unmarshal(v, &a)
			_ = json.Unmarshal(before[k], &b)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Fatalf("withoutCount(%q) changed %s", in, k)
			}
		}
	})
}
