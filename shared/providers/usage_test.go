package providers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var usageSeeds = []string{
	`{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}`,
	`{"input_tokens":5,"cache_creation_input_tokens":2,"cache_read_input_tokens":1,"output_tokens":7}`,
	`{"Prompt_Tokens":1,"prompt_tokens":2}`, `{"prompt_tokens":null}`, `{"prompt_tokens":1.0}`, `{"prompt_tokens":1e3}`,
	`{"prompt_tokens":"12"}`, `{"prompt_tokens":-0}`, `{"prompt_tokens":9223372036854775807}`,
	`{"prompt_tokens":9223372036854775808}`, `{"prompt_tokens":-9223372036854775808}`, `{"prompt_tokens":-9223372036854775809}`,
	`{"prompt_tokens":12,"details":{"cached_tokens":"x"},"x":[1,{"a":null}]}`, `{"prompt_tokens":tru}`, `[1]`, `null`, `12`, `{}`,
	`{"promptTokenCount":3,"candidatesTokenCount":null}`, `{"candidatesTokenCount":4,"CANDIDATESTOKENCOUNT":null}`,
	`{"thoughtsTokenCount":2,"toolUsePromptTokenCount":1,"candidatesTokenCount":5}`, ` { "prompt_tokens" : 4 } `,
	`{"choices":[],"usage":{"prompt_tokens":5}}`, `{"choices":[{"delta":{}}],"usage":{"prompt_tokens":5}}`,
	`{"choices":null,"usage":{"prompt_tokens":5}}`, `{"choices":{},"usage":{"prompt_tokens":5}}`, `{"choices":[ ],"usage":null}`,
	`{"usage":{"prompt_tokens":1},"Usage":{"completion_tokens":2}}`, `{"usage":{"prompt_tokens":1},"usage":null}`,
	`{"usage":"x"}`, `{"usage":{"prompt_tokens":1.5}}`, `{"prompt_tokens":1}x`, "{\"prompt_tokens\":\"\xff\"}",
}

// checkUsageDecoders: the reflection-free readers accept, refuse and read
// exactly what json.Unmarshal does.
func checkUsageDecoders(t *testing.T, s string) {
	b := []byte(s)

	var want, got usageJSON
	wantOK := json.Unmarshal(b, &want) == nil
	gotOK := got.decode(b)
	// Unmarshal accepts a top-level null (no change), whitespace around it
	// too; callers never pass one.
	null := strings.Trim(s, " \t\r\n") == "null"
	if !null && (gotOK != wantOK || wantOK && got != want) {
		t.Errorf("usageJSON %s: got %+v %v, json.Unmarshal %+v %v", s, got, gotOK, want, wantOK)
	}

	// candidatesTokenCount is read as into a *int64.
	var gref struct {
		PromptTokenCount        int64  `json:"promptTokenCount"`
		ToolUsePromptTokenCount int64  `json:"toolUsePromptTokenCount"`
		CandidatesTokenCount    *int64 `json:"candidatesTokenCount"`
		ThoughtsTokenCount      int64  `json:"thoughtsTokenCount"`
	}
	wantOK = json.Unmarshal(b, &gref) == nil
	gwant := googleUsageJSON{PromptTokenCount: gref.PromptTokenCount, ToolUsePromptTokenCount: gref.ToolUsePromptTokenCount,
		ThoughtsTokenCount: gref.ThoughtsTokenCount, HaveCandidates: gref.CandidatesTokenCount != nil}
	if gref.CandidatesTokenCount != nil {
		gwant.CandidatesTokenCount = *gref.CandidatesTokenCount
	}
	var ggot googleUsageJSON
	gotOK = ggot.decode(b)
	if !null && (gotOK != wantOK || wantOK && !reflect.DeepEqual(ggot, gwant)) {
		t.Errorf("googleUsageJSON %s: got %+v %v, json.Unmarshal %+v %v", s, ggot, gotOK, gwant, wantOK)
	}

	var nested struct {
		Usage *usageJSON `json:"usage"`
	}
	wantOK = json.Unmarshal(b, &nested) == nil
	u, gotOK := nestedUsage(b)
	if !null && (gotOK != wantOK || wantOK && !reflect.DeepEqual(u, nested.Usage)) {
		t.Errorf("nested usage %s: got %+v %v, json.Unmarshal %+v %v", s, u, gotOK, nested.Usage, wantOK)
	}

	var chunk struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *usageJSON        `json:"usage"`
	}
	wantOK = json.Unmarshal(b, &chunk) == nil
	cu, noChoices, gotOK := chatChunkUsage(b)
	if !null && (gotOK != wantOK || wantOK && (!reflect.DeepEqual(cu, chunk.Usage) || noChoices != (len(chunk.Choices) == 0))) {
		t.Errorf("chat chunk %s: got %+v %v %v, json.Unmarshal %+v %d %v", s, cu, noChoices, gotOK, chunk.Usage, len(chunk.Choices), wantOK)
	}
}

func TestUsageDecodersMatchEncodingJSON(t *testing.T) {
	for _, s := range usageSeeds {
		checkUsageDecoders(t, s)
	}
}

func FuzzUsageDecoders(f *testing.F) {
	for _, s := range usageSeeds {
		f.Add(s)
	}
	f.Fuzz(checkUsageDecoders)
}

// A translated stream cut short is charged what its native stream
// reported; its own usage, once told, stands.
func TestStreamStateFilledByNative(t *testing.T) {
	cut := StreamState{Text: 10} // "Hello from" relayed, no usage told
	told := StreamState{Text: 10, U: Usage{Input: 40, Output: 9}, HaveIn: true, HaveOut: true, Done: true}
	cases := []struct {
		name       string
		translated StreamState
		native     *StreamState
		want       int64
	}{
		{"not translated", cut, nil, 11 + 3},
		{"native told nothing", cut, &StreamState{}, 11 + 3},
		{"native told the input", cut, &StreamState{U: Usage{Input: 5000}, HaveIn: true}, 5000 + 3},
		{"native told output so far", cut, &StreamState{U: Usage{Input: 5000, Output: 70}, HaveIn: true}, 5000 + 70},
		{"translated told its usage", told, &StreamState{U: Usage{Input: 5000, Output: 70}, HaveIn: true}, 40 + 9},
	}
	for _, tc := range cases {
		before := tc.translated
		if got := tc.translated.Filled(tc.native).Tokens(11); got != tc.want {
			t.Errorf("%s: charged %d, want %d", tc.name, got, tc.want)
		}
		if tc.translated != before {
			t.Errorf("%s: Filled changed the translated stream's state", tc.name)
		}
	}
}
