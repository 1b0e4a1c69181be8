package providers

import "testing"

// What an upstream reports is clamped before it is charged: a negative
// count would refund the user's quota, and two counts near 2^63 wrapped
// round to a negative charge (both found by the stream usage fuzzers).
func TestReportedUsageIsClamped(t *testing.T) {
	cases := []struct {
		name string
		read func() (Usage, bool)
		want int64
	}{
		{"openai negative", func() (Usage, bool) {
			return openAIUsage([]byte(`{"usage":{"prompt_tokens":-9,"completion_tokens":-1}}`))
		}, 0},
		{"openai huge", func() (Usage, bool) {
			return openAIUsage([]byte(`{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807}}`))
		}, 2 * maxReported},
		{"anthropic mixed", func() (Usage, bool) {
			return anthropicUsage([]byte(`{"usage":{"input_tokens":-100,"cache_read_input_tokens":5,"output_tokens":7}}`))
		}, 12},
		{"google negative", func() (Usage, bool) {
			return googleUsage([]byte(`{"usageMetadata":{"promptTokenCount":-3,"toolUsePromptTokenCount":-4,"candidatesTokenCount":-1,"thoughtsTokenCount":2}}`))
		}, 2},
	}
	for _, tc := range cases {
		u, ok := tc.read()
		if !ok || u.Total() != tc.want {
			t.Errorf("%s: total %d (ok %v), want %d", tc.name, u.Total(), ok, tc.want)
		}
	}

	// Streams: the reported counts are clamped the same way.
	st := &StreamState{}
	chatEvent(st, nil, []byte(`{"choices":[],"usage":{"prompt_tokens":-9,"completion_tokens":-1}}`))
	chatEvent(st, nil, []byte(`[DONE]`))
	if got := st.Tokens(40); got != 0 {
		t.Errorf("chat stream with negative usage charged %d, want 0", got)
	}
	st = &StreamState{}
	anthropicEvent(st, []byte("message_delta"), []byte(`{"usage":{"output_tokens":-50}}`))
	if got := st.Tokens(40); got != 40 {
		t.Errorf("anthropic stream cut after a negative output count charged %d, want the prompt estimate 40", got)
	}
	st = &StreamState{}
	googleEvent(st, nil, []byte(`{"usageMetadata":{"promptTokenCount":9223372036854775807,"thoughtsTokenCount":9223372036854775807}}`))
	if got := st.Tokens(40); got != 2*maxReported {
		t.Errorf("google stream with huge usage charged %d, want %d", got, 2*maxReported)
	}
}
