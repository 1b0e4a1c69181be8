package pow_test

import (
	"encoding/hex"
	"testing"

	"tollgate.dev/tollgate/shared/pow"
)

// FuzzParse feeds arbitrary text as an encoded challenge: nothing panics,
// and nothing unsigned is accepted.
func FuzzParse(f *testing.F) {
	s := signer(f, "a signing secret of some length")
	// Deterministic: every fuzz worker must compute the same accepted text.
	c := pow.Challenge{Params: cheap, Salt: "00112233445566778899aabbccddeeff",
		Target: hex.EncodeToString(pow.Target(32, 4)), Expires: t0.UnixMilli(), IP: "203.0.113.7", Refresh: "tok"}
	enc, _ := s.Encode(c)
	f.Add(enc)
	f.Add("")
	f.Add(".")
	f.Add("e30.AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := s.Parse(in)
		if err == nil && in != enc {
			t.Fatalf("Parse accepted %q as %+v", in, got)
		}
	})
}

// FuzzParseSigned signs arbitrary JSON, as a holder of the key could: what
// Parse accepts is within bounds and encodes back to itself.
func FuzzParseSigned(f *testing.F) {
	s := signer(f, "a signing secret of some length")
	f.Add([]byte(`{"t":1,"m":64,"p":1,"hl":16,"s":"0011223344556677","d":"ffffffffffffffffffffffffffffffff","e":1,"ip":"x"}`))
	f.Add([]byte(`{"t":1,"m":64,"p":1,"hl":16}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"m":1e99}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := s.Parse(sign(t, s, body))
		if err != nil {
			return
		}
		if c.MemoryKiB > 256<<10 || c.Time > 16 || c.Threads > 16 || c.HashLen > 64 {
			t.Fatalf("accepted out-of-bounds parameters %+v", c.Params)
		}
		enc, err := s.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := s.Parse(enc)
		if err != nil || back != c {
			t.Fatalf("re-encoded %+v parsed as %+v, %v", c, back, err)
		}
	})
}
