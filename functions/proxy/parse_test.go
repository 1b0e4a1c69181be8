package proxy

import (
	"io"
	"strings"
	"testing"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/shared/providers"
)

// The stream reader relays everything but a hidden usage chunk, and reads
// usage on the way.
func TestStreamReaderHidesOnlyTheAskedUsage(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"content\":\"Hi there\"}}],\"usage\":null}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n" +
		"data: [DONE]\n\n"
	for _, hide := range []bool{true, false} {
		st := &providers.StreamState{HideUsage: hide}
		ended := 0
		r := newStreamReader(t.Context(), io.NopCloser(strings.NewReader(in)), &framing.SSE{}, st, providers.OpenAIChat.Event)
		r.onEnd = func() { ended++ }
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), `"prompt_tokens"`) == hide {
			t.Errorf("hide %v: relayed %q", hide, out)
		}
		if !strings.HasSuffix(string(out), "data: [DONE]\n\n") || ended != 1 || st.Tokens(100) != 7 {
			t.Errorf("hide %v: out %q ended %d tokens %d", hide, out, ended, st.Tokens(100))
		}
	}
}
