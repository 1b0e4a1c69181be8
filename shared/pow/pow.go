// Package pow is tollgate's proof of work: argon2id challenges that a
// browser solves to earn a temporary token. A challenge is HMAC-signed
// JSON, so any instance that holds the same key can verify what another
// issued; it carries its own argon2 parameters and target, so a client
// can neither choose them nor soften them.
package pow

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost of one hash. The original's defaults
// (ARGON2_TIME_COST, ARGON2_MEMORY_KB, ARGON2_PARALLELISM,
// ARGON2_HASH_LENGTH) are DefaultParams.
type Params struct {
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m"`
	Threads   uint8  `json:"p"`
	HashLen   uint32 `json:"hl"`
}

// DefaultParams cost about 64 MiB and a fraction of a second per hash.
var DefaultParams = Params{Time: 8, MemoryKiB: 64 << 10, Threads: 1, HashLen: 32}

// Bounds a verifier accepts: a forged challenge never gets this far (its
// signature fails first), but a key leak must not let one ask for gigabytes.
const (
	maxTime      = 16
	maxMemoryKiB = 256 << 10
	maxThreads   = 16
	minHashLen   = 16
	maxHashLen   = 64
	saltLen      = 32
	// MaxSolution is the longest solution accepted (a decimal nonce).
	MaxSolution = 20
	// maxEncoded bounds an encoded challenge before any parsing.
	maxEncoded = 2048
)

// Work factors of the named difficulty levels: the expected number of
// hashes a solver computes.
var Levels = map[string]int64{"low": 200, "medium": 900, "high": 1900, "extreme": 4000}

// Challenge is what a client must solve: find a solution whose argon2id
// hash with Salt, read as a big-endian number, is at most Target.
type Challenge struct {
	Params
	Salt    string `json:"s"`           // hex
	Target  string `json:"d"`           // hex, HashLen bytes
	Expires int64  `json:"e"`           // epoch ms
	IP      string `json:"ip"`          // the client it was issued to
	Refresh string `json:"r,omitempty"` // the token it extends, if any
}

// Errors of Parse and Verify; callers map them to messages for people.
var (
	ErrMalformed = errors.New("pow: malformed challenge")
	ErrSignature = errors.New("pow: challenge signature does not match")
	ErrExpired   = errors.New("pow: challenge expired")
	ErrWrongIP   = errors.New("pow: challenge was issued to another address")
	ErrSolution  = errors.New("pow: solution does not meet the target")
)

// b64 refuses non-zero padding bits, so that one value has one encoding.
var b64 = base64.RawURLEncoding.Strict()

// Signer issues and checks challenges with one key. Every instance that
// must verify another's challenges needs the same key.
type Signer struct {
	key []byte
}

// NewSigner derives the challenge key from secret; a short secret is
// refused.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 16 {
		return nil, errors.New("pow: signing secret must be at least 16 bytes")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("tollgate-pow-challenge"))
	return &Signer{key: m.Sum(nil)}, nil
}

// Target is the largest hash value (hashLen bytes) that solves a challenge
// of work factor work: 2^(8·hashLen) / work, so that a random hash meets it
// once in work tries on average. work < 1 counts as 1.
func Target(hashLen uint32, work int64) []byte {
	if work < 1 {
		work = 1
	}
	space := new(big.Int).Lsh(big.NewInt(1), uint(hashLen)*8)
	t := new(big.Int).Div(space, big.NewInt(work))
	if t.BitLen() > int(hashLen)*8 {
		t.Sub(t, big.NewInt(1)) // work 1: every hash, all bits set
	}
	return t.FillBytes(make([]byte, hashLen))
}

// New makes a challenge for a client at ip, valid for ttl from now.
// refresh is the token it would extend ("" for a new token).
func New(p Params, work int64, ttl time.Duration, now time.Time, ip, refresh string) (Challenge, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return Challenge{}, fmt.Errorf("pow: salt: %w", err)
	}
	return Challenge{
		Params:  p,
		Salt:    hex.EncodeToString(salt),
		Target:  hex.EncodeToString(Target(p.HashLen, work)),
		Expires: now.Add(ttl).UnixMilli(),
		IP:      ip,
		Refresh: refresh,
	}, nil
}

// Encode signs c: base64url(JSON) "." base64url(HMAC).
func (s *Signer) Encode(c Challenge) (string, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("pow: encode: %w", err)
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), nil
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Parse checks the signature of an encoded challenge, then decodes and
// bounds it. It does not check expiry or the solution (see Verify).
func (s *Signer) Parse(encoded string) (Challenge, error) {
	if len(encoded) > maxEncoded {
		return Challenge{}, ErrMalformed
	}
	payload, sig, ok := strings.Cut(encoded, ".")
	if !ok {
		return Challenge{}, ErrMalformed
	}
	mac, err := b64.DecodeString(sig)
	if err != nil {
		return Challenge{}, ErrMalformed
	}
	if !hmac.Equal(mac, s.mac(payload)) {
		return Challenge{}, ErrSignature
	}
	body, err := b64.DecodeString(payload)
	if err != nil {
		return Challenge{}, ErrMalformed
	}
	var c Challenge
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return Challenge{}, ErrMalformed
	}
	if err := c.check(); err != nil {
		return Challenge{}, err
	}
	return c, nil
}

// check bounds the fields a verifier will act on.
func (c Challenge) check() error {
	salt, err := hex.DecodeString(c.Salt)
	target, err2 := hex.DecodeString(c.Target)
	switch {
	case err != nil || len(salt) < 8 || len(salt) > 64,
		err2 != nil || uint32(len(target)) != c.HashLen,
		c.Time < 1 || c.Time > maxTime,
		c.MemoryKiB < 8*uint32(c.Threads) || c.MemoryKiB > maxMemoryKiB,
		c.Threads < 1 || c.Threads > maxThreads,
		c.HashLen < minHashLen || c.HashLen > maxHashLen,
		c.Expires <= 0:
		return ErrMalformed
	}
	return nil
}

// Hash is the argon2id hash of solution under c's parameters.
func (c Challenge) Hash(solution string) []byte {
	salt, _ := hex.DecodeString(c.Salt)
	return argon2.IDKey([]byte(solution), salt, c.Time, c.MemoryKiB, c.Threads, c.HashLen)
}

// Meets reports whether hash, as a big-endian number, is at most c's
// target. Both have HashLen bytes, so bytes compare as numbers.
func (c Challenge) Meets(hash []byte) bool {
	target, err := hex.DecodeString(c.Target)
	return err == nil && len(target) == len(hash) && bytes.Compare(hash, target) <= 0
}

// Verify checks a parsed challenge against its client and clock, then the
// solution (one argon2id hash: the expensive step comes last).
func (c Challenge) Verify(solution, ip string, now time.Time) error {
	switch {
	case now.UnixMilli() > c.Expires:
		return ErrExpired
	case c.IP != ip:
		return ErrWrongIP
	case !validSolution(solution):
		return ErrSolution
	case !c.Meets(c.Hash(solution)):
		return ErrSolution
	}
	return nil
}

// validSolution accepts the decimal nonces browsers send.
func validSolution(s string) bool {
	if s == "" || len(s) > MaxSolution {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ID names a challenge for its single-use marker. It derives from the
// salt (random, and covered by the signature), not from the encoded text,
// so that no re-encoding of one challenge gets a second name.
func (c Challenge) ID() string {
	sum := sha256.Sum256([]byte(c.Salt))
	return hex.EncodeToString(sum[:16])
}

// Solve searches nonces from start for a solution, at most tries of them;
// ok is false if none was found. Browsers do the same in WebAssembly; this
// one serves tests and tools.
func (c Challenge) Solve(start, tries uint64) (solution string, ok bool) {
	for n := start; n < start+tries; n++ {
		s := fmt.Sprint(n)
		if c.Meets(c.Hash(s)) {
			return s, true
		}
	}
	return "", false
}
