package users_test

import (
	"fmt"
	"testing"

	"tollgate.dev/tollgate/shared/users"
)

const benchToken = "0b6f2d4e-9c1a-4f3b-8e7d-5a2c1b0f9e8d"

func benchUser() *users.User {
	u := users.New(benchToken, users.Normal, t0, map[string]int64{"gpt4o": 100000, "claude": 100000})
	u.IP = []string{"198.51.100.7", "2001:db8::1"}
	u.TokenCounts = map[string]int64{"gpt4o": 12345, "claude": 678}
	u.PromptCount = 42
	return u
}

// BenchmarkCheckQuota is the quota pre-check of every admitted request.
func BenchmarkCheckQuota(b *testing.B) {
	u := benchUser()
	b.ReportAllocs()
	for b.Loop() {
		if err := users.CheckQuota(u, "gpt4o", 1040); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidToken checks a token's shape before any store lookup.
func BenchmarkValidToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !users.ValidToken(benchToken) {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkClone is the copy a store hands out on every lookup.
func BenchmarkClone(b *testing.B) {
	u := benchUser()
	b.ReportAllocs()
	for b.Loop() {
		if u.Clone().Token != benchToken {
			b.Fatal("bad clone")
		}
	}
}

// BenchmarkCharge records one request's usage on a user.
func BenchmarkCharge(b *testing.B) {
	u := benchUser()
	b.ReportAllocs()
	for b.Loop() {
		u.Charge("gpt4o", 13, t0)
	}
}

// BenchmarkAdmitIPRefused is the IP limit's judgement of a new address,
// which every request from a refused address repeats: the networks are
// counted without an allocation.
func BenchmarkAdmitIPRefused(b *testing.B) {
	for _, ip := range []string{"203.0.113.9", "2001:db8:5:5::1"} {
		b.Run(ip, func(b *testing.B) {
			u := benchUser()
			u.IP = append(u.IP, "2001:db8::2", "2001:db8::3", "198.51.100.8")
			b.ReportAllocs()
			for b.Loop() {
				if users.AdmitIP(u, ip, 3, false, t0) != users.IPRefused {
					b.Fatal("admitted")
				}
			}
		})
	}
}

// BenchmarkAdmitIPRefusedAtTheCap is the same judgement for a user whose
// limit lets it record a network per address up to the cap (a limit of
// 1000, every place taken): every request from yet another network
// repeats it.
func BenchmarkAdmitIPRefusedAtTheCap(b *testing.B) {
	u := users.New(benchToken, users.Normal, t0, nil)
	for i := range users.MaxRecordedIPs {
		u.IP = append(u.IP, fmt.Sprintf("2001:db8:%x:%x::1", i>>8, i&0xff))
	}
	b.ReportAllocs()
	for b.Loop() {
		if users.AdmitIP(u, "2001:db8:ffff:1::1", users.MaxRecordedIPs, false, t0) != users.IPRefused {
			b.Fatal("admitted")
		}
	}
}
