package web_test

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

func TestStatus(t *testing.T) {
	for code, want := range map[users.Code]int{
		users.CodeInvalid: 400, users.CodeUnauthorized: 401, users.CodeForbidden: 403,
		users.CodeNotFound: 404, users.CodeConflict: 409, users.CodeTooLarge: 413,
		users.CodeUnsupported: 415, users.CodeQuota: 429, users.CodeRateLimited: 429,
		users.CodeUnavailable: 503, users.CodeInternal: 500, "whatever": 500,
		web.CodeNotServed: 503, web.CodeTimeout: 504, web.CodeBadGateway: 502,
		users.CodeConcurrency: 429, web.CodeUnknownRoute: 404, web.CodeMethodNotAllowed: 405,
		web.CodeStaleVersion: 412,
	} {
		if got := web.Status(code); got != want {
			t.Errorf("Status(%s) = %d, want %d", code, got, want)
		}
	}
}

func TestAsError(t *testing.T) {
	if e := web.AsError(fmt.Errorf("get: %w", context.DeadlineExceeded)); e.Code != users.CodeUnavailable || web.Status(e.Code) != http.StatusServiceUnavailable {
		t.Errorf("deadline → %s", e.Code)
	}
	if e := web.AsError(users.ErrNotFound); e.Code != users.CodeNotFound {
		t.Errorf("not found → %s", e.Code)
	}
	if e := web.AsError(fmt.Errorf("boom")); e.Code != users.CodeInternal || e.Message != "Internal error." {
		t.Errorf("unknown error → %+v", e)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234", 100000: "100,000"} {
		if got := web.FormatNum(n); got != want {
			t.Errorf("FormatNum(%d) = %q, want %q", n, got, want)
		}
	}
	if web.FormatTime(0) != "—" || web.FormatTime(1700000000000) != "2023-11-14 22:13 UTC" {
		t.Errorf("FormatTime: %q %q", web.FormatTime(0), web.FormatTime(1700000000000))
	}
}

func TestMount(t *testing.T) {
	tests := []struct {
		target   string
		wantPath string
		wantRaw  string // EscapedPath seen by the handler
		wantBase string
	}{
		{"/", "/", "/", ""},
		{"/users", "/users", "/users", ""},
		{"/users/abc", "/users/abc", "/users/abc", ""},
		{"/admin", "/", "/", "/admin"},
		{"/admin/", "/", "/", "/admin"},
		{"/admin/users", "/users", "/users", "/admin"},
		{"/admin/users/abc/reactivate", "/users/abc/reactivate", "/users/abc/reactivate", "/admin"},
		{"/admin/users/a%2Fb", "/users/a/b", "/users/a%2Fb", "/admin"},
		{"/adminx", "/adminx", "/adminx", ""},
		{"/adminx/users", "/adminx/users", "/adminx/users", ""},
		{"/proxy/admin/users", "/proxy/admin/users", "/proxy/admin/users", ""},
		{"/admin/admin/users", "/admin/users", "/admin/users", "/admin"}, // stripped once
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			var gotPath, gotRaw, gotBase, gotQuery string
			h := web.Mount("admin", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotRaw, gotBase, gotQuery = r.URL.Path, r.URL.EscapedPath(), web.BasePath(r.Context()), r.URL.RawQuery
			}))
			r := httptest.NewRequest(http.MethodGet, tt.target+"?sort=a,b&x=%2F", nil)
			before := r.URL.Path
			h.ServeHTTP(httptest.NewRecorder(), r)
			if gotPath != tt.wantPath || gotRaw != tt.wantRaw || gotBase != tt.wantBase {
				t.Errorf("path %q escaped %q base %q; want %q %q %q", gotPath, gotRaw, gotBase, tt.wantPath, tt.wantRaw, tt.wantBase)
			}
			if gotQuery != "sort=a,b&x=%2F" {
				t.Errorf("query = %q", gotQuery)
			}
			if r.URL.Path != before {
				t.Errorf("caller's request changed: %q", r.URL.Path)
			}
		})
	}
	// With a real ServeMux behind it, both forms reach the same route.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{token}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(web.BasePath(r.Context()) + "|" + r.PathValue("token")))
	})
	h := web.Mount("admin", mux)
	for target, want := range map[string]string{"/users/t1": "|t1", "/admin/users/t1": "/admin|t1"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != 200 || w.Body.String() != want {
			t.Errorf("%s: %d %q, want %q", target, w.Code, w.Body.String(), want)
		}
	}
	if got := web.BasePath(context.Background()); got != "" {
		t.Errorf("BasePath outside Mount = %q", got)
	}
}

func TestFailure(t *testing.T) {
	const tok = "8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50"
	tests := []struct {
		err              error
		status           int
		msg, log, notLog string
	}{
		{users.Errorf(users.CodeNotFound, "No user %s.", tok), 404, "No user " + tok + ".", "No user …4f50.", tok},
		{fmt.Errorf("rtdb: user %s: %w", tok, errors.New("disk on fire")), 500, "Internal error.", "rtdb: user …4f50: disk on fire", tok},
		{fmt.Errorf("get %s: %w", tok, context.DeadlineExceeded), 503, "The user store did not answer in time; try again.", "…4f50", tok},
	}
	for _, tt := range tests {
		e, status, msg, log := web.Failure(tt.err)
		if e == nil || status != tt.status || msg != tt.msg || !strings.Contains(log, tt.log) || strings.Contains(log, tt.notLog) {
			t.Errorf("Failure(%v) = %v, %d, %q, %q", tt.err, e, status, msg, log)
		}
	}
}

func TestLockedOut(t *testing.T) {
	l := ratelimit.NewLockout(1, time.Minute)
	now := time.Unix(1_700_000_000, 0)
	w := httptest.NewRecorder()
	if _, locked := web.LockedOut(w, l, "ip", now); locked || w.Header().Get("Retry-After") != "" {
		t.Fatal("locked before any failure")
	}
	l.Fail("ip", now)
	secs, locked := web.LockedOut(w, l, "ip", now.Add(30500*time.Millisecond))
	if !locked || secs != 30 || w.Header().Get("Retry-After") != "30" {
		t.Errorf("locked %v for %d s, Retry-After %q; want 30", locked, secs, w.Header().Get("Retry-After"))
	}
}

func TestBeginAttempt(t *testing.T) {
	l := ratelimit.NewLockout(2, time.Minute)
	now := time.Unix(1_700_000_000, 0)
	w := httptest.NewRecorder()
	first, _, locked := web.BeginAttempt(w, l, "ip", now)
	if locked || w.Header().Get("Retry-After") != "" {
		t.Fatal("locked before any failure")
	}
	// Under way, an attempt counts: the next makes two, the limit.
	if _, _, locked := web.BeginAttempt(w, l, "ip", now); locked {
		t.Fatal("locked at the second attempt")
	}
	if _, secs, locked := web.BeginAttempt(w, l, "ip", now.Add(30500*time.Millisecond)); !locked || secs != 30 || w.Header().Get("Retry-After") != "30" {
		t.Fatalf("with two attempts under way: locked %v for %d s, Retry-After %q; want 30", locked, secs, w.Header().Get("Retry-After"))
	}
	first.Cancel() // it turned out well
	if _, _, locked := web.BeginAttempt(httptest.NewRecorder(), l, "ip", now.Add(31*time.Second)); locked {
		t.Fatal("a cancelled attempt still counts")
	}
}

func TestPageHeaders(t *testing.T) {
	h := http.Header{}
	web.PageHeaders(h, "default-src 'none'")
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
		"Referrer-Policy": "no-referrer", "Content-Security-Policy": "default-src 'none'"} {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
}

func TestPartials(t *testing.T) {
	page := web.Partials(template.Must(template.New("p").Parse(`{{template "notices" .}}|{{template "quota-head"}}|{{template "no-usage"}}`)))
	var b strings.Builder
	err := page.Execute(&b, struct {
		Banners []string
		Flash   string
	}{[]string{"store is <memory>"}, "Saved."})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<p class="banner" role="note">store is &lt;memory&gt;</p>`, `<p class="flash" role="status">Saved.</p>`,
		`<th scope="col" class="num">Remaining</th>`, `No usage and no limits yet.`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("rendered %q lacks %q", b.String(), want)
		}
	}
}

func TestCrossSite(t *testing.T) {
	for site, want := range map[string]bool{"cross-site": true, "same-site": true, "same-origin": false, "none": false, "": false} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		if got := web.CrossSite(r); got != want {
			t.Errorf("Sec-Fetch-Site %q: CrossSite %v, want %v", site, got, want)
		}
	}
}
