package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
)

// Upstream error text may quote the operator's key ("Incorrect API key
// provided: sk-…"); it is relayed with every key replaced, whatever its
// casing and however JSON escapes it.

const redacted = "[redacted]"

// accountIDs are OpenAI's organisation and project ids, and Anthropic's
// organisation (a UUID) where its rate-limit errors name it: "for your
// organization (…)", "(org: …, model: …)".
var accountIDs = regexp.MustCompile(`\b(org-|proj_|(?i:organi[sz]ation \(|org: ?))(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[A-Za-z0-9]{8,})`)

// scrub replaces every upstream key in b: in the raw bytes (any casing),
// then in the decoded strings of a JSON body (\u-escaped forms). The
// operator's OpenAI organisation and project ids ("…in organization
// org-…") and Anthropic organisation are replaced too: they are the
// operator's, not the user's.
func (h *handler) scrub(b []byte) []byte {
	b = accountIDs.ReplaceAll(h.scrubBytes(b), []byte("${1}"+redacted))
	if !bytes.Contains(b, []byte(`\u`)) || !json.Valid(b) {
		return b
	}
	var doc any
	if json.Unmarshal(b, &doc) != nil {
		return b
	}
	changed := false
	doc = h.scrubValue(doc, &changed)
	if !changed {
		return b
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return b
	}
	return out
}

// scrubBytes replaces every key in b, matching ASCII letters in any case.
// The search runs on a copy lowered byte for byte, so that its offsets are
// b's: a Unicode lowering changes some characters' lengths (the Kelvin
// sign, invalid bytes), which would cut b in the wrong places.
func (h *handler) scrubBytes(b []byte) []byte {
	var lower []byte
	for _, k := range h.lowerSecrets {
		if lower == nil {
			lower = asciiLower(b)
		}
		lk := []byte(k)
		if !bytes.Contains(lower, lk) {
			continue
		}
		var out []byte
		for {
			i := bytes.Index(lower, lk)
			if i < 0 {
				break
			}
			out = append(append(out, b[:i]...), redacted...)
			b, lower = b[i+len(lk):], lower[i+len(lk):]
		}
		b = append(out, b...)
		lower = asciiLower(b)
	}
	return b
}

// asciiLower is b with its ASCII capitals lowered, every other byte kept.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func (h *handler) scrubValue(v any, changed *bool) any {
	switch v := v.(type) {
	case string:
		s := string(h.scrubBytes([]byte(v)))
		if s != v {
			*changed = true
		}
		return s
	case []any:
		for i := range v {
			v[i] = h.scrubValue(v[i], changed)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = h.scrubValue(e, changed)
		}
	}
	return v
}

// dropEchoes removes upstream response headers that carry an operator key
// (an upstream or gateway echoing the request's credentials).
func (h *handler) dropEchoes(hdr http.Header) {
	for name, vals := range hdr {
		for _, v := range vals {
			if h.holdsSecret(v) {
				delete(hdr, name)
				break
			}
		}
	}
}

func (h *handler) holdsSecret(v string) bool {
	for _, k := range h.lowerSecrets {
		if containsFold(v, k) {
			return true
		}
	}
	return false
}

// containsFold is strings.Contains ignoring case, without a copy: every
// response header of every request is looked at.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
