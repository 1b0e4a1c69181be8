package rtdbfake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/db"
)

type resp struct {
	status int
	header http.Header
	body   any
	raw    string
}

// do sends one REST request to the plain listener.
func do(t *testing.T, s *Server, method, path, body string, header ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.plain.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	out := resp{status: r.StatusCode, header: r.Header, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out.body); err != nil {
			t.Fatalf("%s %s: answer %q is not JSON", method, path, b)
		}
	}
	return out
}

func js(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func wantBody(t *testing.T, what string, r resp, status int, body string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d (%s), want %d", what, r.status, r.raw, status)
	}
	if body != "" && !reflect.DeepEqual(r.body, js(t, body)) {
		t.Fatalf("%s: body %s, want %s", what, r.raw, body)
	}
}

func TestPutGetPruningAndArrays(t *testing.T) {
	s := Start(t)
	cases := []struct {
		name, put, get string
	}{
		{"nulls and empty objects vanish", `{"a":{},"b":null,"c":[],"d":{"e":{}},"f":1,"g":""}`, `{"f":1,"g":""}`},
		{"only empties: nothing stored", `{"a":{"b":{}}}`, `null`},
		{"array", `["x","y"]`, `["x","y"]`},
		{"dense integer keys read as an array", `{"0":"a","2":"c"}`, `["a",null,"c"]`},
		{"sparse integer keys stay an object", `{"5":"x"}`, `{"5":"x"}`},
		{"mixed keys stay an object", `{"0":"a","b":"x"}`, `{"0":"a","b":"x"}`},
		{"leading zero is not an index", `{"0":"a","01":"b"}`, `{"0":"a","01":"b"}`},
		{"array with nulls", `[null,1,null]`, `[null,1]`},
		{"numbers are doubles", `{"n":12345678901234567890,"f":0.5}`, `{"n":12345678901234567000,"f":0.5}`},
		{"primitive", `"hello"`, `"hello"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantBody(t, "PUT", do(t, s, "PUT", "/t.json", tc.put), 200, "")
			wantBody(t, "GET", do(t, s, "GET", "/t.json", ""), 200, tc.get)
		})
	}
	do(t, s, "PUT", "/t.json", `["x","y"]`)
	if got := s.Data("t"); !reflect.DeepEqual(got, map[string]any{"0": "x", "1": "y"}) {
		t.Fatalf("arrays are stored as integer-keyed objects: Data = %v", got)
	}
	// A write below a primitive replaces it; deleting the last child prunes
	// the parents.
	do(t, s, "PUT", "/p.json", `5`)
	do(t, s, "PUT", "/p/q/r.json", `1`)
	wantBody(t, "GET /p", do(t, s, "GET", "/p.json", ""), 200, `{"q":{"r":1}}`)
	wantBody(t, "DELETE", do(t, s, "DELETE", "/p/q/r.json", ""), 200, `null`)
	if s.Data("p") != nil {
		t.Fatalf("emptied parents kept: %v", s.Data("p"))
	}
}

func TestETagIfMatchAnd412(t *testing.T) {
	s := Start(t)
	// Empty location: "null_etag", and a conditional create with it.
	r := do(t, s, "GET", "/c.json", "", "X-Firebase-ETag", "true")
	if tag := r.header.Get("ETag"); tag != "null_etag" {
		t.Fatalf("ETag of nothing = %q", tag)
	}
	wantBody(t, "conditional create", do(t, s, "PUT", "/c.json", `{"n":1}`, "If-Match", "null_etag"), 200, `{"n":1}`)

	r = do(t, s, "GET", "/c.json", "", "X-Firebase-ETag", "true")
	tag1 := r.header.Get("ETag")
	if tag1 == "" || tag1 == "null_etag" {
		t.Fatalf("ETag = %q", tag1)
	}
	if r := do(t, s, "GET", "/c.json", ""); r.header.Get("ETag") != "" {
		t.Fatal("ETag sent without X-Firebase-ETag: true")
	}
	// Someone else writes: the old ETag fails with the current value and ETag.
	do(t, s, "PUT", "/c/n.json", `2`)
	r = do(t, s, "PUT", "/c.json", `{"n":100}`, "If-Match", tag1)
	wantBody(t, "stale PUT", r, 412, `{"n":2}`)
	tag2 := r.header.Get("ETag")
	if tag2 == "" || tag2 == tag1 {
		t.Fatalf("412 ETag = %q (old %q)", tag2, tag1)
	}
	if got := s.Data("c/n"); got != 2.0 {
		t.Fatalf("a failed conditional PUT wrote: %v", got)
	}
	wantBody(t, "fresh PUT", do(t, s, "PUT", "/c.json", `{"n":3}`, "If-Match", tag2), 200, `{"n":3}`)
	// Conditional delete, and If-Match where it is not supported.
	wantBody(t, "stale DELETE", do(t, s, "DELETE", "/c.json", "", "If-Match", tag2), 412, `{"n":3}`)
	wantBody(t, "PATCH with If-Match", do(t, s, "PATCH", "/c.json", `{"n":4}`, "If-Match", tag2), 400, "")
	// If-None-Match: 304 while unchanged.
	tag3 := do(t, s, "GET", "/c.json", "", "X-Firebase-ETag", "true").header.Get("ETag")
	wantBody(t, "If-None-Match", do(t, s, "GET", "/c.json", "", "If-None-Match", tag3), 304, "")
	wantBody(t, "If-None-Match stale", do(t, s, "GET", "/c.json", "", "If-None-Match", tag1), 200, `{"n":3}`)
}

// TestOnWrite: the hook sees each write (not reads) before it is served,
// and a change it makes lands between a client's read and its conditional
// write, which then fails with 412.
func TestOnWrite(t *testing.T) {
	s := Start(t)
	do(t, s, "PUT", "/u/a.json", `{"n":1}`)
	tag := do(t, s, "GET", "/u/a.json", "", "X-Firebase-ETag", "true").header.Get("ETag")
	var mu sync.Mutex
	var seen []string
	s.OnWrite(func(method, path string, conditional bool) {
		mu.Lock()
		seen = append(seen, method+" "+path+" "+map[bool]string{true: "if-match", false: "plain"}[conditional])
		mu.Unlock()
		if conditional {
			s.SetData(path+"/n", 2)
		}
	})
	wantBody(t, "interleaved PUT", do(t, s, "PUT", "/u/a.json", `{"n":100}`, "If-Match", tag), 412, `{"n":2}`)
	do(t, s, "GET", "/u/a.json", "")
	do(t, s, "PATCH", "/u.json", `{"b/n":5}`)
	s.OnWrite(nil)
	do(t, s, "DELETE", "/u/b.json", "", "If-Match", "x")
	want := []string{"PUT /u/a if-match", "PATCH /u plain"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("hook saw %q, want %q", seen, want)
	}
	if got := s.Data("u/a/n"); got != 2.0 {
		t.Fatalf("u/a/n = %v after the hook's write and the refused PUT", got)
	}
}

func TestMultiPathPatch(t *testing.T) {
	s := Start(t)
	do(t, s, "PUT", "/u.json", `{"a":{"b":1,"keep":true},"c":{"old":1},"e":5}`)
	wantBody(t, "PATCH", do(t, s, "PATCH", "/u.json", `{"a/b":2,"c":{"d":3},"e":null,"f/g/h":"deep"}`), 200, `{"a/b":2,"c":{"d":3},"e":null,"f/g/h":"deep"}`)
	wantBody(t, "after", do(t, s, "GET", "/u.json", ""), 200, `{"a":{"b":2,"keep":true},"c":{"d":3},"f":{"g":{"h":"deep"}}}`)

	before := do(t, s, "GET", "/u.json", "").raw
	bad := []struct{ name, body string }{
		{"ancestor and descendant", `{"a":1,"a/b":2}`},
		{"invalid key in a path", `{"ok":1,"x.y":2}`},
		{"invalid key in a value", `{"ok":1,"z":{"$bad":1}}`},
		{"not an object", `[1,2]`},
	}
	for _, tc := range bad {
		wantBody(t, tc.name, do(t, s, "PATCH", "/u.json", tc.body), 400, "")
		if after := do(t, s, "GET", "/u.json", "").raw; after != before {
			t.Fatalf("%s: a refused update wrote %s", tc.name, after)
		}
	}
	// print=silent answers 204 with no body.
	r := do(t, s, "PATCH", "/u.json?print=silent", `{"a/b":9}`)
	if r.status != 204 || r.raw != "" {
		t.Fatalf("print=silent: %d %q", r.status, r.raw)
	}
	if s.Data("u/a/b") != 9.0 {
		t.Fatal("silent PATCH not applied")
	}
}

func TestKeyValidation(t *testing.T) {
	s := Start(t)
	for _, tc := range []struct{ name, method, path, body string }{
		{"dot in a body key", "PUT", "/k.json", `{"a.b":1}`},
		{"dollar in a body key", "PUT", "/k.json", `{"$x":1}`},
		{"hash", "PUT", "/k.json", `{"#":1}`},
		{"brackets", "PUT", "/k.json", `{"[0]":1}`},
		{"slash in a nested key", "PUT", "/k.json", `{"a":{"b/c":1}}`},
		{"control character", "PUT", "/k.json", `{"a\u0001":1}`},
		{"empty key", "PUT", "/k.json", `{"":1}`},
		{"bad path", "PUT", "/k$x.json", `1`},
		{"bad path on GET", "GET", "/a%23b.json", ``},
		{"bad JSON", "PUT", "/k.json", `{"a":`},
	} {
		wantBody(t, tc.name, do(t, s, tc.method, tc.path, tc.body), 400, "")
	}
	if s.Data("") != nil {
		t.Fatalf("refused writes stored %v", s.Data(""))
	}
	r := do(t, s, "PUT", "/k.json", `{"a.b":1}`)
	if m, _ := r.body.(map[string]any); m == nil || m["error"] == nil {
		t.Fatalf("errors are {\"error\": ...}: %s", r.raw)
	}
	wantBody(t, "allowed odd characters", do(t, s, "PUT", "/k.json", `{"a%2E b-_~!@^&*()é":1}`), 200, "")
}

func TestShallow(t *testing.T) {
	s := Start(t)
	do(t, s, "PUT", "/.json", `{"a":{"x":1},"b":5,"c":"s"}`)
	wantBody(t, "shallow root", do(t, s, "GET", "/.json?shallow=true", ""), 200, `{"a":true,"b":5,"c":"s"}`)
	wantBody(t, "shallow primitive", do(t, s, "GET", "/b.json?shallow=true", ""), 200, `5`)
	wantBody(t, "shallow nothing", do(t, s, "GET", "/none.json?shallow=true", ""), 200, `null`)
	wantBody(t, "shallow with a query", do(t, s, "GET", `/.json?shallow=true&orderBy="$key"`, ""), 400, "")
}

func TestOrderByKey(t *testing.T) {
	s := Start(t)
	do(t, s, "PUT", "/q.json", `{"b":1,"a":2,"10":3,"9":4,"c":5,"-1":6}`)
	keys := func(r resp) []string {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("query: %d %s", r.status, r.raw)
		}
		m, _ := r.body.(map[string]any)
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Slice(out, func(i, j int) bool { return compareKeys(out[i], out[j]) < 0 })
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{`orderBy="$key"`, []string{"-1", "9", "10", "a", "b", "c"}},
		{`orderBy="$key"&limitToFirst=3`, []string{"-1", "9", "10"}},
		{`orderBy="$key"&limitToLast=2`, []string{"b", "c"}},
		{`orderBy="$key"&startAt="a"`, []string{"a", "b", "c"}},
		{`orderBy="$key"&startAt="10"&limitToFirst=2`, []string{"10", "a"}},
		{`orderBy="$key"&endAt="a"&limitToLast=2`, []string{"10", "a"}},
		{`orderBy="$key"&equalTo="b"`, []string{"b"}},
		{`orderBy="$key"&ns=ignored`, []string{"-1", "9", "10", "a", "b", "c"}},
	} {
		if got := keys(do(t, s, "GET", "/q.json?"+tc.query, "")); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: keys %v, want %v", tc.query, got, tc.want)
		}
	}
	for _, q := range []string{
		`limitToFirst=1`, `orderBy=$key`, `orderBy="$value"`, `orderBy="$key"&limitToFirst=0`,
		`orderBy="$key"&limitToFirst=1&limitToLast=1`, `orderBy="$key"&startAt=1`,
	} {
		wantBody(t, q, do(t, s, "GET", "/q.json?"+q, ""), 400, "")
	}
}

func TestServerValuesAndPush(t *testing.T) {
	s := Start(t)
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s.SetNow(func() time.Time { return at })
	do(t, s, "PUT", "/sv.json", `{"n":5}`)
	do(t, s, "PATCH", "/sv.json", `{"n":{".sv":{"increment":3}},"m":{".sv":{"increment":2}},"ts":{".sv":"timestamp"}}`)
	wantBody(t, "server values", do(t, s, "GET", "/sv.json", ""), 200, `{"n":8,"m":2,"ts":1793534400000}`)
	wantBody(t, "unknown server value", do(t, s, "PUT", "/sv/x.json", `{".sv":"nope"}`), 400, "")

	ids := map[string]bool{}
	var last string
	for i := range 3 {
		r := do(t, s, "POST", "/list.json", `{"i":`+string(rune('0'+i))+`}`)
		name, _ := r.body.(map[string]any)["name"].(string)
		if r.status != 200 || len(name) != 20 || name <= last {
			t.Fatalf("push id %q after %q (status %d)", name, last, r.status)
		}
		ids[name], last = true, name
	}
	if m, _ := do(t, s, "GET", "/list.json", "").body.(map[string]any); len(m) != 3 {
		t.Fatalf("pushed children: %v", m)
	}
	// X-HTTP-Method-Override turns a POST into another method.
	wantBody(t, "override", do(t, s, "POST", "/o.json", `7`, "X-HTTP-Method-Override", "PUT"), 200, `7`)
	wantBody(t, "override stored", do(t, s, "GET", "/o.json", ""), 200, `7`)
}

func TestAuthDownDelayAndCount(t *testing.T) {
	s := Start(t)
	s.RequireToken("owner")
	wantBody(t, "no token", do(t, s, "GET", "/.json", ""), 401, `{"error":"Permission denied"}`)
	wantBody(t, "owner", do(t, s, "GET", "/.json", "", "Authorization", "Bearer owner"), 200, `null`)
	wantBody(t, "access_token", do(t, s, "GET", "/.json?access_token=owner", ""), 200, `null`)
	s.RequireToken("")

	before := s.Requests()
	s.SetDown(true)
	if _, err := http.Get(s.plain.URL + "/.json"); err == nil {
		t.Fatal("a request succeeded while down")
	}
	s.SetDown(false)
	wantBody(t, "back up", do(t, s, "GET", "/.json", ""), 200, `null`)
	if n := s.Requests() - before; n < 2 {
		t.Fatalf("Requests counted %d", n)
	}

	s.SetDelay(5 * time.Second)
	c := &http.Client{Timeout: 100 * time.Millisecond}
	start := time.Now()
	if _, err := c.Get(s.plain.URL + "/.json"); err == nil {
		t.Fatal("a delayed request beat a 100ms timeout")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("client waited %s", took)
	}
	s.SetDelay(0)
}

// The real SDK over both ways in: transactions from many goroutines against
// one node (ETag, If-Match, 412 with the current value) lose nothing.
func TestSDKTransactions(t *testing.T) {
	s := Start(t)
	t.Setenv("FIREBASE_DATABASE_EMULATOR_HOST", "")
	ctx := context.Background()
	clients := map[string]*db.Client{}
	for name, conf := range map[string]struct {
		url  string
		opts bool
	}{"emulator": {s.Host() + "?ns=fake", false}, "https": {s.TLSURL(), true}} {
		var opts = s.ClientOptions()
		if !conf.opts {
			opts = nil
		}
		app, err := firebase.NewApp(ctx, &firebase.Config{DatabaseURL: conf.url, ProjectID: "p"}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		c, err := app.Database(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clients[name] = c
	}
	// Eight writers contend; the SDK gives up a transaction after 25 tries,
	// which a loaded machine can reach. What must hold is that no applied
	// transaction is lost: the counter equals the successes.
	var wg sync.WaitGroup
	var succeeded atomic.Int64
	for _, c := range clients {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					err := c.NewRef("counter").Transaction(ctx, func(n db.TransactionNode) (any, error) {
						var v struct{ N int }
						if err := n.Unmarshal(&v); err != nil {
							return nil, err
						}
						v.N++
						return v, nil
					})
					if err == nil {
						succeeded.Add(1)
					} else if !strings.Contains(err.Error(), "transaction aborted") {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if n := succeeded.Load(); n < 40 || s.Data("counter/N") != float64(n) {
		t.Fatalf("counter = %v after %d successful transactions of 80", s.Data("counter/N"), n)
	}
	var shallowRoot map[string]any
	if err := clients["https"].NewRef("/").GetShallow(ctx, &shallowRoot); err != nil || shallowRoot["counter"] != true {
		t.Fatalf("GetShallow = %v, %v", shallowRoot, err)
	}
	if ns := s.Namespaces(); !reflect.DeepEqual(ns, []string{"fake"}) {
		t.Fatalf("namespaces = %v", ns)
	}
}
