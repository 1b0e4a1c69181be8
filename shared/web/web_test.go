package web_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

func TestStatus(t *testing.T) {
	for code, want := range map[users.Code]int{
		users.CodeInvalid: 400, users.CodeUnauthorized: 401, users.CodeForbidden: 403,
		users.CodeNotFound: 404, users.CodeConflict: 409, users.CodeTooLarge: 413,
		users.CodeUnsupported: 415, users.CodeQuota: 429, users.CodeRateLimited: 429,
		users.CodeUnavailable: 503, users.CodeInternal: 500, "whatever": 500,
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
