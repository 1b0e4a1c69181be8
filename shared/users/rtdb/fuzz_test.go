package rtdb

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/rtdbfake"
	"tollgate.dev/tollgate/shared/users"
)

// FuzzCodecRoundTrip: any user the domain accepts (a partial update
// applied to a new user, then validated) is either stored and read back
// exactly — through the database's own JSON handling: numbers as doubles,
// nulls and empty collections dropped, integer-keyed objects served as
// arrays, keys validated — or refused with a clean 400 naming the field
// (keys over 768 bytes, meta nested too deeply). Nothing is silently
// changed.
func FuzzCodecRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"tokenCounts":{"gpt-4.1":5,"0":1,"12":2,"-3":4},"tokenLimits":{"a.b":1},"tokenRefresh":{}}`,
		`{"meta":{"a.b":1,"$x":2,"#h":3,"[0]":4,"s/l":5,"%":6,"":7,"ctl\u0001":8,"%41":"not A"}}`,
		`{"meta":{"0":"a","1":"b","2":{"0":true}}}`,
		`{"meta":{"null":null,"empty":"","pct":"%","pcts":"%%x","marker":"%null","obj":{},"arr":[],"nested":[null,1.5,[],{},[null]]}}`,
		`{"ip":["192.0.2.1","2001:db8::1"],"nickname":"%nick","type":"temporary","expiresAt":4,"promptCount":1099511627776,"maxIps":0}`,
		`{"meta":{},"tokenRefresh":null,"ip":[]}`,
		`{"promptCount":9007199254740993,"tokenCounts":{"gpt4o":9223372036854775807}}`,
		`{"meta":{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]}}`,
	} {
		f.Add([]byte(s))
	}
	srv := rtdbfake.Start(f)
	base := strings.TrimSuffix(srv.URL(), "?ns=rtdbfake") + "/fuzz/"
	client := &http.Client{Timeout: 10 * time.Second}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := users.ParsePatch(data)
		if err != nil {
			return
		}
		want := users.New("tok-fuzz", users.Normal, created, nil)
		p.Apply(want)
		if want.Validate() != nil {
			return
		}
		enc, err := encodeUser(want)
		if err != nil {
			var e *users.Error
			if !asUsersError(err, &e) || e.Code != users.CodeInvalid || len(e.Issues) == 0 {
				t.Fatalf("encoding refused %s without a clean 400: %v", data, err)
			}
			return
		}
		body, err := json.Marshal(enc)
		if err != nil {
			t.Fatalf("encoded user is not JSON: %v", err)
		}
		// PUT and GET as the SDK does, on a node of its own.
		node := base + want.Token + ".json"
		if status, answer := call(t, client, http.MethodPut, node, body); status != http.StatusOK {
			t.Fatalf("the database refused the encoded user (%d %s):\n%s", status, answer, body)
		}
		status, stored := call(t, client, http.MethodGet, node, nil)
		if status != http.StatusOK {
			t.Fatalf("GET: %d %s", status, stored)
		}
		raw, err := decodeJSON(stored)
		if err != nil {
			t.Fatal(err)
		}
		got, err := userFromValue(want.Token, raw)
		if err != nil {
			t.Fatalf("stored user %s does not decode: %v", stored, err)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("round trip changed the user:\n got %s\nwant %s\nstored %s", gj, wj, stored)
		}
	})
}

func call(t *testing.T, c *http.Client, method, u string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.RawQuery = url.Values{"ns": {"rtdbfake"}}.Encode()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func asUsersError(err error, target **users.Error) bool {
	e, ok := err.(*users.Error)
	if ok {
		*target = e
	}
	return ok
}
