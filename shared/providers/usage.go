package providers

import (
	"tollgate.dev/tollgate/internal/jsonscan"
)

// Usage objects are read without encoding/json's reflection, which cost
// more than the rest of reading an answer, yet they accept and refuse
// exactly what json.Unmarshal into the usage structs did: the text must be
// valid JSON, member names match field names whatever their case, later
// members win, unknown members are skipped, null leaves a field alone, and
// a field holding anything but an integer fails the whole object.

// usageJSON covers OpenAI's, Mistral's and Anthropic's usage objects.
type usageJSON struct {
	PromptTokens             int64 `json:"prompt_tokens"`
	CompletionTokens         int64 `json:"completion_tokens"`
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// openAI reads usage as OpenAI and Mistral report it: chat and legacy
// completions, embeddings (prompt_tokens only) and the Responses API and
// images (input_tokens, output_tokens).
func (u *usageJSON) openAI() Usage {
	return Usage{Input: reported(u.PromptTokens) + reported(u.InputTokens), Output: reported(u.CompletionTokens) + reported(u.OutputTokens)}
}

// anthropic counts cached prompt tokens too: they were part of the
// prompt, only billed differently.
func (u *usageJSON) anthropic() Usage {
	return Usage{Input: reported(u.InputTokens) + reported(u.CacheCreationInputTokens) + reported(u.CacheReadInputTokens), Output: reported(u.OutputTokens)}
}

// decode reads an OpenAI, Mistral or Anthropic usage object.
func (u *usageJSON) decode(b []byte) bool {
	return decodeCounts(b, []count{
		{name: "prompt_tokens", to: &u.PromptTokens},
		{name: "completion_tokens", to: &u.CompletionTokens},
		{name: "input_tokens", to: &u.InputTokens},
		{name: "output_tokens", to: &u.OutputTokens},
		{name: "cache_creation_input_tokens", to: &u.CacheCreationInputTokens},
		{name: "cache_read_input_tokens", to: &u.CacheReadInputTokens},
	})
}

// count is an integer member of a usage object: its name, where it is
// read to and, for a member read as json.Unmarshal reads a *int64, where
// its presence is noted (null: absent).
type count struct {
	name    string
	to      *int64
	present *bool
}

// decodeCounts reads the members of the object b named in counts.
func decodeCounts(b []byte, counts []count) bool {
	return jsonscan.EachMember(b, func(k, v []byte) bool {
		for _, c := range counts {
			if !jsonscan.FoldIs(k, c.name) {
				continue
			}
			if c.present != nil {
				*c.present = !jsonscan.IsNull(v)
				if !*c.present {
					*c.to = 0
					return true
				}
			}
			return jsonscan.IntInto(c.to, v)
		}
		return true
	})
}

// answerUsage reads the usage of a whole answer: top finds and decodes its
// usage object, read turns it into a Usage.
func answerUsage[U any](top func([]byte) (*U, bool), read func(*U) Usage) func([]byte) (Usage, bool) {
	return func(body []byte) (Usage, bool) {
		u, ok := top(body)
		if !ok {
			return Usage{}, false
		}
		return read(u), true
	}
}

// usageMember reads a usage member value as json.Unmarshal reads it into
// a *usageJSON field: null sets it to nil, an object is read into it.
func usageMember(dst **usageJSON, v []byte) bool {
	if jsonscan.IsNull(v) {
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
	ok := jsonscan.EachMember(b, func(k, v []byte) bool {
		if jsonscan.FoldIs(k, "usage") {
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
	ok = jsonscan.EachMember(data, func(k, v []byte) bool {
		switch {
		case jsonscan.FoldIs(k, "choices"):
			if jsonscan.IsNull(v) {
				noChoices = true
				return true
			}
			if v[0] != '[' {
				return false
			}
			noChoices = jsonscan.EmptyArray(v)
		case jsonscan.FoldIs(k, "usage"):
			return usageMember(&u, v)
		}
		return true
	})
	return u, noChoices, ok
}

// topUsage reads the top-level usage object of a whole answer.
var topUsage = topMember[usageJSON]("usage")

// topMember reads the top-level member name of a whole answer, a usage
// object (answers may carry megabytes of base64 images: the rest is not
// decoded).
func topMember[U any, D interface {
	*U
	decode([]byte) bool
}](name string) func([]byte) (*U, bool) {
	return func(body []byte) (*U, bool) {
		b := jsonscan.MemberValue(body, name)
		if b == nil {
			return nil, false
		}
		u := new(U)
		if !D(u).decode(b) {
			return nil, false
		}
		return u, true
	}
}
