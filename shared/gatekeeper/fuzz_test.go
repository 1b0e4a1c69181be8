package gatekeeper_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tollgate.dev/tollgate/shared/gatekeeper"
)

// FuzzExtractToken: whatever a client sends, ExtractToken never panics,
// finds the token where SPEC §4 says (first source wins), and leaves no
// token source behind: none of the three headers, and no query parameter
// that any server would read as key=, while every other parameter keeps
// its place and spelling.
func FuzzExtractToken(f *testing.F) {
	f.Add("Bearer tok", "", "", "alt=sse")
	f.Add("  bEaReR   tok ", "two", "three", "key=four&alt=sse")
	f.Add("Basic dXNlcjpwYXNz", " two ", "", "k%65y=x&key=&KEY=y")
	f.Add("", "", "", "key=%zz&key=b&%6B%65%79=c&k%zzey=d")
	f.Add("Bearer", "\t", "three", "a=1;key=2&&=&key")
	f.Fuzz(func(t *testing.T, auth, apiKey, googKey, rawQuery string) {
		r := &http.Request{Method: http.MethodPost, Header: http.Header{}, URL: &url.URL{Path: "/openai/v1/chat/completions", RawQuery: rawQuery}}
		for name, v := range map[string]string{"Authorization": auth, "X-Api-Key": apiKey, "X-Goog-Api-Key": googKey} {
			if v != "" {
				r.Header[name] = []string{v}
			}
		}
		r.Header["Content-Type"] = []string{"application/json"}

		got := gatekeeper.ExtractToken(r)

		if want := referenceToken(auth, apiKey, googKey, rawQuery); got != want {
			t.Fatalf("token %q, want %q (auth %q, x-api-key %q, x-goog-api-key %q, query %q)", got, want, auth, apiKey, googKey, rawQuery)
		}
		for _, h := range []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"} {
			if v, ok := r.Header[h]; ok {
				t.Fatalf("%s left in the request: %q", h, v)
			}
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Fatal("another header was removed")
		}
		// What a Go upstream (url.ParseQuery) would read: no key at all.
		if q, _ := url.ParseQuery(r.URL.RawQuery); q.Has("key") {
			t.Fatalf("query %q (from %q) still carries key=", r.URL.RawQuery, rawQuery)
		}
		var kept []string
		for _, pair := range strings.Split(rawQuery, "&") {
			name, _, _ := strings.Cut(pair, "=")
			if n, err := url.QueryUnescape(name); err != nil || n != "key" {
				kept = append(kept, pair)
			}
		}
		if want := strings.Join(kept, "&"); rawQuery != "" && r.URL.RawQuery != want {
			t.Fatalf("query %q became %q, want %q", rawQuery, r.URL.RawQuery, want)
		}
	})
}

// referenceToken is SPEC §4's rule written plainly: Authorization: Bearer,
// then x-api-key, then x-goog-api-key, then the first non-empty ?key=.
func referenceToken(auth, apiKey, googKey, rawQuery string) string {
	if scheme, rest, ok := strings.Cut(strings.TrimSpace(auth), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if tok := strings.TrimSpace(rest); tok != "" {
			return tok
		}
	}
	for _, v := range []string{apiKey, googKey} {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	for _, pair := range strings.Split(rawQuery, "&") {
		name, value, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err != nil || n != "key" {
			continue
		}
		if v, err := url.QueryUnescape(value); err == nil && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
