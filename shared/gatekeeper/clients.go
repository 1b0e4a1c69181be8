package gatekeeper

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/users"
)

// Hosted chat front-ends send many users' requests from a few addresses.
// As the original did, RisuAI users are told apart by the signed anonymous
// id RisuAI sends in x-risu-tk, and Agnai's addresses are exempt from the
// limits kept per address.

// headerRisu carries RisuAI's signed token: base64 (possibly URL-escaped)
// of {"data":{"id","expiresIn"},"sig"}, sig an RSA PKCS#1 v1.5 SHA-256
// signature of the data member.
const headerRisu = "X-Risu-Tk"

// risuPublicKey is RisuAI's published key for x-risu-tk.
const risuPublicKey = `MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArEXBmHQfy/YdNIu9lfNC
xHbVwb2aYx07pBEmqQJtvVEOISj80fASxg+cMJH+/0a/Z4gQgzUJl0HszRpMXAfu
wmRoetedyC/6CLraHke0Qad/AEHAKwG9A+NwsHRv/cDfP8euAr20cnOyVa79bZsl
1wlHYQQGo+ve+P/FXtjLGJ/KZYr479F5jkIRKZxPE8mRmkhAVS/u+18QM94BzfoI
0LlbwvvCHe18QSX6viDK+HsqhhyYDh+0FgGNJw6xKYLdExbQt77FSukH7NaJmVAs
kYuIJbnAGw5Oq0L6dXFW2DFwlcLz51kPVOmDc159FsQjyuPnta7NiZAANS8KM1CJ
pwIDAQAB`

// agnaiAddresses are Agnai's shared addresses, the original's list.
var agnaiAddresses = map[string]bool{
	"157.230.249.32": true, "157.245.148.56": true, "174.138.29.50": true, "209.97.162.44": true,
}

// SharedConcurrencyFactor multiplies USER_CONCURRENCY_LIMIT for requests
// without a user token from a shared address, as the original's queue did.
const SharedConcurrencyFactor = 5

func parseRisuKey() *rsa.PublicKey {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(risuPublicKey), ""))
	if err != nil {
		return nil
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil
	}
	pk, _ := k.(*rsa.PublicKey)
	return pk
}

// maxRisuHeader bounds the header read: a real token is a few hundred bytes.
const maxRisuHeader = 4096

// risuID returns the RisuAI user id of a valid, unexpired x-risu-tk, or
// "" (the request is then told apart by its address, as the original
// did). The header is removed: it is no business of the upstream's.
func (g *Gatekeeper) risuID(r *http.Request, now time.Time) string {
	raw := r.Header.Get(headerRisu)
	r.Header.Del(headerRisu)
	if raw == "" || len(raw) > maxRisuHeader || g.risuKey == nil {
		return ""
	}
	if u, err := url.QueryUnescape(raw); err == nil {
		raw = u
	}
	tok, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || !gjson.ValidBytes(tok) {
		return ""
	}
	data := gjson.GetBytes(tok, "data")
	sig, err := base64.StdEncoding.DecodeString(gjson.GetBytes(tok, "sig").String())
	if !data.IsObject() || err != nil {
		return ""
	}
	exp := data.Get("expiresIn")
	if exp.Type != gjson.Number || exp.Int() < now.Unix() {
		return ""
	}
	// The signature is over the data member as JSON.stringify writes it:
	// the sender's member order, no spaces.
	var signed bytes.Buffer
	if json.Compact(&signed, []byte(data.Raw)) != nil {
		return ""
	}
	sum := sha256.Sum256(signed.Bytes())
	if rsa.VerifyPKCS1v15(g.risuKey, crypto.SHA256, sum[:], sig) != nil {
		return ""
	}
	id := data.Get("id")
	if id.Type != gjson.String && id.Type != gjson.Number {
		return ""
	}
	return safeID(id.String())
}

// safeID keeps an id fit for a store key and a log line: up to 64 of
// [A-Za-z0-9_.-], else nothing.
func safeID(s string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return ""
		}
	}
	return s
}

// addressed is a principal without a user token: limits count by RisuAI
// id when there is one, else by address (an IPv6 one by its /64).
func addressed(ip, risu string) *Principal {
	if risu != "" {
		return &Principal{IP: ip, Key: "risu:" + risu}
	}
	return &Principal{IP: ip, Key: "ip:" + netutil.ClientKey(ip), Shared: agnaiAddresses[ip]}
}

// userIP is what a user's IP list records: RisuAI users share a few
// addresses, so each RisuAI id counts as an address of its own, written
// as the original wrote it (users.RisuIP).
func userIP(ip, risu string) string {
	if risu == "" {
		return ip
	}
	return users.RisuIP(risu, ip)
}

// inflightLimit is the concurrency limit of p.
func inflightLimit(limit int, p *Principal) int {
	if p.Shared {
		return limit * SharedConcurrencyFactor
	}
	return limit
}
