package pow_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/pow"
)

// cheap keeps tests fast; the arithmetic is the same at any cost.
var cheap = pow.Params{Time: 1, MemoryKiB: 64, Threads: 1, HashLen: 32}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func signer(t testing.TB, key string) *pow.Signer {
	t.Helper()
	s, err := pow.NewSigner([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// issue makes, encodes and parses back a challenge.
func issue(t *testing.T, s *pow.Signer, work int64, refresh string) (string, pow.Challenge) {
	t.Helper()
	c, err := pow.New(cheap, work, time.Minute, t0, "203.0.113.7", refresh)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := s.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.Parse(enc)
	if err != nil {
		t.Fatalf("Parse(own challenge): %v", err)
	}
	if back != c {
		t.Fatalf("round trip: got %+v, want %+v", back, c)
	}
	return enc, back
}

func TestTarget(t *testing.T) {
	tests := []struct {
		hashLen uint32
		work    int64
		want    string // hex prefix; the rest is zero unless noted
		rest    byte
	}{
		{32, 1, "ff", 0xff},
		{32, 0, "ff", 0xff}, // below 1 counts as 1
		{32, 2, "80", 0},
		{32, 256, "01", 0},
		{32, 65536, "0001", 0},
		{16, 4, "40", 0},
	}
	for _, tc := range tests {
		got := pow.Target(tc.hashLen, tc.work)
		if uint32(len(got)) != tc.hashLen {
			t.Errorf("Target(%d, %d) has %d bytes", tc.hashLen, tc.work, len(got))
			continue
		}
		prefix, _ := hex.DecodeString(tc.want)
		want := append(prefix, bytes.Repeat([]byte{tc.rest}, int(tc.hashLen)-len(prefix))...)
		if !bytes.Equal(got, want) {
			t.Errorf("Target(%d, %d) = %x, want %x", tc.hashLen, tc.work, got, want)
		}
	}
}

func TestSolveAndVerify(t *testing.T) {
	s := signer(t, "a signing secret of some length")
	_, c := issue(t, s, 8, "")
	sol, ok := c.Solve(0, 2000)
	if !ok {
		t.Fatal("no solution in 2000 tries at work factor 8")
	}
	if err := c.Verify(sol, "203.0.113.7", t0.Add(30*time.Second)); err != nil {
		t.Fatalf("Verify(found solution) = %v", err)
	}
	// The hash really is under the target: the check is not vacuous.
	if h := c.Hash(sol); h[0] >= 0x20 {
		t.Errorf("solution hash %x is not under the 1/8 target", h)
	}
}

func TestVerifyRefuses(t *testing.T) {
	s := signer(t, "a signing secret of some length")
	_, hard := issue(t, s, 1<<50, "") // no nonce meets this in practice
	_, easy := issue(t, s, 1, "")     // every nonce does
	tests := []struct {
		name     string
		c        pow.Challenge
		solution string
		ip       string
		at       time.Time
		want     error
	}{
		{"wrong solution", hard, "12345", "203.0.113.7", t0, pow.ErrSolution},
		{"not a number", easy, "12a", "203.0.113.7", t0, pow.ErrSolution},
		{"empty", easy, "", "203.0.113.7", t0, pow.ErrSolution},
		{"too long", easy, strings.Repeat("1", pow.MaxSolution+1), "203.0.113.7", t0, pow.ErrSolution},
		{"expired", easy, "1", "203.0.113.7", t0.Add(time.Minute + time.Millisecond), pow.ErrExpired},
		{"other address", easy, "1", "198.51.100.1", t0, pow.ErrWrongIP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.c.Verify(tc.solution, tc.ip, tc.at); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if err := easy.Verify("1", "203.0.113.7", t0.Add(time.Minute)); err != nil {
		t.Errorf("Verify at the last valid millisecond = %v", err)
	}
}

func TestParseRefusesTampering(t *testing.T) {
	s := signer(t, "a signing secret of some length")
	enc, c := issue(t, s, 4, "")
	payload, sig, _ := strings.Cut(enc, ".")

	// A payload with an easier target, signed with another key.
	soft := c
	soft.Target = hex.EncodeToString(pow.Target(32, 1))
	forged, _ := signer(t, "another secret of some length").Encode(soft)
	softPayload, _, _ := strings.Cut(forged, ".")

	flip := func(s string) string {
		b := []byte(s)
		if b[5] == 'A' {
			b[5] = 'B'
		} else {
			b[5] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name, enc string
		want      error
	}{
		{"payload changed", flip(payload) + "." + sig, pow.ErrSignature},
		{"signature changed", payload + "." + flip(sig), pow.ErrSignature},
		{"easier target with our signature", softPayload + "." + sig, pow.ErrSignature},
		{"signed with another key", forged, pow.ErrSignature},
		{"no signature", payload, pow.ErrMalformed},
		{"signature not base64", payload + ".!!", pow.ErrMalformed},
		{"empty", "", pow.ErrMalformed},
		{"huge", strings.Repeat("A", 5000) + "." + sig, pow.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Parse(tc.enc); !errors.Is(err, tc.want) {
				t.Errorf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
	// The last character of a 32-byte MAC carries 2 unused bits: another
	// spelling of the same MAC is refused, not accepted as a new challenge.
	last := sig[len(sig)-1]
	alt := strings.Replace("AEIMQUYcgkosw048", string(last), "", 1)
	for _, r := range alt {
		if _, err := s.Parse(payload + "." + sig[:len(sig)-1] + string(r)); err == nil {
			t.Errorf("signature spelled with last character %q accepted", r)
		}
	}
}

// sign builds an encoded challenge from a raw JSON body with s's key, as
// only a holder of the key could.
func sign(t testing.TB, s *pow.Signer, body []byte) string {
	t.Helper()
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + s.MACForTest(payload)
}

func TestParseBoundsSignedFields(t *testing.T) {
	s := signer(t, "a signing secret of some length")
	good, err := pow.New(cheap, 4, time.Minute, t0, "203.0.113.7", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"memory too large", func(m map[string]any) { m["m"] = 1 << 30 }},
		{"time zero", func(m map[string]any) { m["t"] = 0 }},
		{"threads zero", func(m map[string]any) { m["p"] = 0 }},
		{"hash too short", func(m map[string]any) { m["hl"] = 4 }},
		{"target length differs", func(m map[string]any) { m["d"] = "ff" }},
		{"salt not hex", func(m map[string]any) { m["s"] = "zz" }},
		{"no expiry", func(m map[string]any) { delete(m, "e") }},
		{"unknown field", func(m map[string]any) { m["x"] = 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := json.Marshal(good)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			tc.edit(m)
			b, _ = json.Marshal(m)
			if _, err := s.Parse(sign(t, s, b)); !errors.Is(err, pow.ErrMalformed) {
				t.Errorf("Parse = %v, want ErrMalformed", err)
			}
		})
	}
	b, _ := json.Marshal(good)
	if _, err := s.Parse(sign(t, s, b)); err != nil {
		t.Errorf("Parse(unedited) = %v: the table proves nothing", err)
	}
}

func TestIDIsPerChallenge(t *testing.T) {
	s := signer(t, "a signing secret of some length")
	_, a := issue(t, s, 4, "")
	_, b := issue(t, s, 4, "")
	if a.ID() == b.ID() {
		t.Error("two challenges share an ID")
	}
	if a.ID() != a.ID() || len(a.ID()) != 32 {
		t.Errorf("ID = %q, want 32 stable hex digits", a.ID())
	}
}

func TestNewSignerRefusesShortSecret(t *testing.T) {
	if _, err := pow.NewSigner([]byte("short")); err == nil {
		t.Error("NewSigner accepted a 5-byte secret")
	}
}

func TestRefreshTokenIsSigned(t *testing.T) {
	s := signer(t, "a signing secret of some length")
	enc, c := issue(t, s, 4, "tok-123")
	if c.Refresh != "tok-123" {
		t.Fatalf("Refresh = %q", c.Refresh)
	}
	other := c
	other.Refresh = "tok-456"
	otherEnc, _ := signer(t, "another secret of some length").Encode(other)
	payload, _, _ := strings.Cut(otherEnc, ".")
	_, sig, _ := strings.Cut(enc, ".")
	if _, err := s.Parse(payload + "." + sig); !errors.Is(err, pow.ErrSignature) {
		t.Errorf("swapped refresh token: Parse = %v, want ErrSignature", err)
	}
}
