package proxy

import (
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/ratelimit"
)

// setRateHeaders writes each number whole, one value per header, at the
// extremes of their types too.
func TestSetRateHeadersValues(t *testing.T) {
	for _, d := range []ratelimit.Decision{
		{Limit: 1, Remaining: 0, Reset: time.Unix(0, 0)},
		{Limit: 10, Remaining: 9, Reset: time.Unix(1_700_000_000, 0)},
		{Limit: math.MaxInt, Remaining: math.MaxInt - 1, Reset: time.Unix(math.MaxInt64, 0)},
		{Limit: 1_000_000, Remaining: -1, Reset: time.Unix(math.MinInt64+1, 0)},
	} {
		h := http.Header{"X-Ratelimit-Limit": {"stale", "two"}}
		setRateHeaders(h, d)
		want := map[string]string{
			"X-Ratelimit-Limit":     strconv.Itoa(d.Limit),
			"X-Ratelimit-Remaining": strconv.Itoa(d.Remaining),
			"X-Ratelimit-Reset":     strconv.FormatInt(d.Reset.Unix(), 10),
		}
		for k, v := range want {
			if got := h[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%+v: %s = %q, want only %q", d, k, got, v)
			}
		}
		// A value added later must not write over its neighbour.
		h.Add("X-Ratelimit-Limit", "x")
		if got := h.Get("X-Ratelimit-Remaining"); got != want["X-Ratelimit-Remaining"] {
			t.Errorf("appending to the limit changed the remaining count: %q", got)
		}
	}
	h := http.Header{}
	setRateHeaders(h, ratelimit.Decision{})
	if len(h) != 0 {
		t.Errorf("no limit, yet headers %v", h)
	}
}
