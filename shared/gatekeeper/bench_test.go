package gatekeeper_test

import (
	"context"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/gatekeeper"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
)

// benchRequest is a request as the proxy sees it, built without parsing
// (httptest.NewRequest would dominate the figures).
func benchRequest(header, value, rawQuery string) *http.Request {
	r := &http.Request{Method: http.MethodPost, Header: http.Header{}, RemoteAddr: "10.0.0.1:443"}
	r.URL = &url.URL{Path: "/openai/v1/chat/completions", RawQuery: rawQuery}
	r.Header["X-Forwarded-For"] = []string{"6.6.6.6, " + clientIP}
	r.Header["Content-Type"] = []string{"application/json"}
	if header != "" {
		r.Header[header] = []string{value}
	}
	return r
}

// BenchmarkExtractToken finds and removes the token from each place it
// can travel.
func BenchmarkExtractToken(b *testing.B) {
	for _, c := range []struct{ name, header, value, query string }{
		{"bearer", "Authorization", "Bearer " + tokA, ""},
		{"x-api-key", "X-Api-Key", tokA, ""},
		{"query", "", "", "alt=sse&key=" + tokA},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := benchRequest(c.header, c.value, c.query)
			v := r.Header[c.header]
			b.ReportAllocs()
			for b.Loop() {
				// Put back what the previous call removed.
				if c.header != "" {
					r.Header[c.header] = v
				}
				r.URL.RawQuery = c.query
				if gatekeeper.ExtractToken(r) != tokA {
					b.Fatal("token not found")
				}
			}
		})
	}
}

// BenchmarkDecision is the gatekeeper's whole decision for a cached user
// with every limit on: Authenticate (token, IP, store lookup, state and
// IP checks) and Admit (allow-list, quota, rate and concurrency limits),
// from as many goroutines as there are CPUs.
func BenchmarkDecision(b *testing.B) {
	cfg, err := config.FromMap(userEnv(
		"TEXT_MODEL_RATE_LIMIT", "1000000", "USER_CONCURRENCY_LIMIT", "1000",
		"TOKEN_QUOTA_GPT4O", "1000000000000", "MAX_IPS_PER_USER", "5"))
	if err != nil {
		b.Fatal(err)
	}
	mem := memory.New()
	if _, err := mem.Modify(context.Background(), tokA, true, func(u *users.User, _ bool) error {
		*u = *users.New(tokA, users.Normal, t0, cfg.TokenQuota)
		u.IP = []string{"203.0.113.1", clientIP}
		u.TokenCounts = map[string]int64{"gpt4o": 12345, "claude": 678}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	// A clock that moves 1ms a call, so the rate limiter's window slides
	// and holds 60,000 requests, below the limit.
	var calls atomic.Int64
	gk := gatekeeper.New(cfg, mem, func() time.Time { return t0.Add(time.Duration(calls.Add(1)) * time.Millisecond) })
	bearer := []string{"Bearer " + tokA}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := benchRequest("", "", "")
		ctx := context.Background()
		for pb.Next() {
			r.Header["Authorization"] = bearer // Authenticate removes it
			p, err := gk.Authenticate(ctx, r)
			if err != nil {
				b.Error(err)
				return
			}
			a, err := gk.Admit(context.Background(), p, "gpt4o", 1040)
			if err != nil {
				b.Error(err)
				return
			}
			a.Release()
		}
	})
}
