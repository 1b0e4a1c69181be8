package proxy

import (
	"bytes"
	"encoding/json"
)

// Usage objects are read without encoding/json's reflection, which cost
// more than the rest of reading an answer, yet they accept and refuse
// exactly what json.Unmarshal into the usage structs did: the text must be
// valid JSON, member names match field names whatever their case, later
// members win, unknown members are skipped, null leaves a field alone, and
// a field holding anything but an integer fails the whole object.

// eachMember calls fn with each member of the JSON object b, in order,
// until fn returns false. It reports false when b is not valid JSON or not
// an object, or fn refused a member.
func eachMember(b []byte, fn func(key, v []byte) bool) bool {
	if !json.Valid(b) {
		return false
	}
	obj, _, err := scanObject(b, 0, true)
	if err != nil {
		return false
	}
	for _, m := range obj.members {
		if !fn(m.key, b[m.start:m.end]) {
			return false
		}
	}
	return true
}

// memberValue is the value of the last top-level member named key of the
// JSON object body; nil when there is none, it is null, or body is not an
// object.
func memberValue(body []byte, key string) []byte {
	obj, _, err := scanObject(body, 0, true)
	if err != nil {
		return nil
	}
	m, ok := obj.get(key)
	if !ok || isNull(body[m.start:m.end]) {
		return nil
	}
	return body[m.start:m.end]
}

func isNull(v []byte) bool { return string(v) == "null" }

// foldIs matches a member name to a field name as encoding/json does
// (bytes.EqualFold is its documented rule).
func foldIs(k []byte, name string) bool {
	var buf [32]byte
	return bytes.EqualFold(k, append(buf[:0], name...))
}

// intInto reads an integer value into dst (null: dst unchanged).
func intInto(dst *int64, v []byte) bool {
	if isNull(v) {
		return true
	}
	n, ok := parseInt(v)
	if ok {
		*dst = n
	}
	return ok
}

// parseInt reads a JSON integer: no fraction, no exponent, within int64.
func parseInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' || n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return -int64(n-1) - 1, true
	case !neg && n < 1<<63:
		return int64(n), true
	}
	return 0, false
}

// decode reads an OpenAI, Mistral or Anthropic usage object.
func (u *usageJSON) decode(b []byte) bool {
	return eachMember(b, func(k, v []byte) bool {
		switch {
		case foldIs(k, "prompt_tokens"):
			return intInto(&u.PromptTokens, v)
		case foldIs(k, "completion_tokens"):
			return intInto(&u.CompletionTokens, v)
		case foldIs(k, "input_tokens"):
			return intInto(&u.InputTokens, v)
		case foldIs(k, "output_tokens"):
			return intInto(&u.OutputTokens, v)
		case foldIs(k, "cache_creation_input_tokens"):
			return intInto(&u.CacheCreationInputTokens, v)
		case foldIs(k, "cache_read_input_tokens"):
			return intInto(&u.CacheReadInputTokens, v)
		}
		return true
	})
}

// decode reads a Google usageMetadata object.
func (u *googleUsageJSON) decode(b []byte) bool {
	return eachMember(b, func(k, v []byte) bool {
		switch {
		case foldIs(k, "promptTokenCount"):
			return intInto(&u.PromptTokenCount, v)
		case foldIs(k, "toolUsePromptTokenCount"):
			return intInto(&u.ToolUsePromptTokenCount, v)
		case foldIs(k, "thoughtsTokenCount"):
			return intInto(&u.ThoughtsTokenCount, v)
		case foldIs(k, "candidatesTokenCount"):
			if isNull(v) {
				u.CandidatesTokenCount = nil
				return true
			}
			n, ok := parseInt(v)
			u.CandidatesTokenCount = &n
			return ok
		}
		return true
	})
}

// usageMember reads a usage member value as json.Unmarshal reads it into
// a *usageJSON field: null sets it to nil, an object is read into it.
func usageMember(dst **usageJSON, v []byte) bool {
	if isNull(v) {
		*dst = nil
		return true
	}
	if *dst == nil {
		*dst = &usageJSON{}
	}
	return (*dst).decode(v)
}

// nestedUsage reads the object b as json.Unmarshal reads it into
// struct{ Usage *usageJSON } (a Responses API response, an Anthropic
// message): nil when it reports none.
func nestedUsage(b []byte) (*usageJSON, bool) {
	var u *usageJSON
	ok := eachMember(b, func(k, v []byte) bool {
		if foldIs(k, "usage") {
			return usageMember(&u, v)
		}
		return true
	})
	return u, ok
}

// chatChunkUsage reads a chat stream chunk as json.Unmarshal reads it into
// struct{ Choices []json.RawMessage; Usage *usageJSON }: its usage (nil
// when none) and whether it has no choices.
func chatChunkUsage(data []byte) (u *usageJSON, noChoices bool, ok bool) {
	noChoices = true
	ok = eachMember(data, func(k, v []byte) bool {
		switch {
		case foldIs(k, "choices"):
			if isNull(v) {
				noChoices = true
				return true
			}
			if v[0] != '[' {
				return false
			}
			s := &scanner{b: v, i: 1}
			s.ws()
			noChoices = v[s.i] == ']'
		case foldIs(k, "usage"):
			return usageMember(&u, v)
		}
		return true
	})
	return u, noChoices, ok
}
