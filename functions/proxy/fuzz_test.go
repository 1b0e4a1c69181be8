package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/shared/providers"
)

// The stream usage scanner reads what an upstream (or anything claiming to
// be one behind *_BASE_URL) sends. For every provider's stream format,
// whatever the bytes and however the network cuts them:
//   - it never panics and always ends;
//   - it relays the bytes unchanged (the proxy's own usage chunk aside);
//   - it calls its end hook (the charge) exactly once;
//   - the charge does not depend on where reads were cut;
//   - the charge is never negative, nor wrapped round by huge numbers;
//   - a stream the upstream breaks ends with an error event in its format.

// fuzzStreamFormats are the stream formats, by fuzz target.
type streamCase struct {
	format    *providers.Format
	split     func() framing.Splitter
	endsAtEOF bool
	sse       bool
}

var (
	chatStreamCase      = streamCase{providers.OpenAIChat, func() framing.Splitter { return &framing.SSE{} }, false, true}
	responsesStreamCase = streamCase{providers.OpenAIResponses, func() framing.Splitter { return &framing.SSE{} }, false, true}
	messagesStreamCase  = streamCase{providers.AnthropicMessages, func() framing.Splitter { return &framing.SSE{} }, false, true}
	googleSSECase       = streamCase{providers.GoogleGenerate, func() framing.Splitter { return &framing.SSE{} }, true, true}
	googleArrayCase     = streamCase{providers.GoogleGenerate, func() framing.Splitter { return &framing.Array{} }, true, false}
)

// FuzzChatStreamUsage covers OpenAI chat and legacy completions and
// Mistral (one event reader).
func FuzzChatStreamUsage(f *testing.F) {
	for _, s := range []string{
		"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[{\"text\":\"x\"}],\"usage\":{\"prompt_tokens\":-9,\"completion_tokens\":-1}}\r\n\r\ndata: [DONE]\r\n\r\n",
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9223372036854775807,\"completion_tokens\":9223372036854775807}}\n\n",
		"data: {\"this is\": not json\n\n: a comment line\nnonsense without a field\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"\\\"q\\\"\",\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
	} {
		f.Add([]byte(s), []byte{1, 7, 3}, false)
		f.Add([]byte(s), []byte{64}, true)
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte, hide bool) { checkStream(t, chatStreamCase, stream, cuts, hide) })
}

// FuzzResponsesStreamUsage covers the OpenAI Responses API.
func FuzzResponsesStreamUsage(f *testing.F) {
	for _, s := range []string{
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"abcd\"}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":4}}}\n\n",
		"data: {\"type\":\"response.failed\",\"response\":{\"usage\":null}}\n\n",
		"data: {\"type\":\"response.incomplete\",\"response\":{\"usage\":{\"input_tokens\":-100,\"output_tokens\":1}}}\n\n",
		"event: response.reasoning_summary_text.delta\ndata: {\"delta\":\"\\u00e9\\\\\"}\n\n",
	} {
		f.Add([]byte(s), []byte{2, 9}, false)
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte, hide bool) {
		checkStream(t, responsesStreamCase, stream, cuts, hide)
	})
}

// FuzzMessagesStreamUsage covers Anthropic Messages.
func FuzzMessagesStreamUsage(f *testing.F) {
	for _, s := range []string{
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n" +
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"12345678\"}}\n\n" +
			"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		"event: message_delta\ndata: {\"usage\":{\"output_tokens\":-50,\"input_tokens\":-1}}\n\n",
		"data: {\"type\":\"content_block_delta\",\"delta\":{\"thinking\":\"hmm\",\"partial_json\":\"{\\\"a\\\"\"}}\n\n",
		"event: ping\ndata: {\"type\": \"ping\"}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
	} {
		f.Add([]byte(s), []byte{5, 1}, false)
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte, hide bool) {
		checkStream(t, messagesStreamCase, stream, cuts, hide)
	})
}

// FuzzGoogleStreamUsage covers Gemini's streamGenerateContent, as SSE
// (alt=sse) and as a streamed JSON array.
func FuzzGoogleStreamUsage(f *testing.F) {
	for _, s := range []string{
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}],\"usageMetadata\":{\"promptTokenCount\":11}}\r\n\r\n" +
			"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]}}],\"usageMetadata\":{\"promptTokenCount\":11,\"candidatesTokenCount\":7,\"thoughtsTokenCount\":2}}\r\n\r\n",
		"[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a]}\\\"{\"}]}}]}\n,\r\n{\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}]",
		"[{\"usageMetadata\":{\"promptTokenCount\":-3,\"toolUsePromptTokenCount\":-4,\"candidatesTokenCount\":-1}}]",
		"[{\"usageMetadata\":{\"promptTokenCount\":9223372036854775807,\"thoughtsTokenCount\":9223372036854775807}}]",
		"[{]}}]]][[[\"\\",
	} {
		f.Add([]byte(s), []byte{4, 11}, false)
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte, sse bool) {
		c := googleArrayCase
		if sse {
			c = googleSSECase
		}
		checkStream(t, c, stream, cuts, false)
	})
}

// streamRun is what one pass of the scanner produced.
type streamRun struct {
	out    []byte
	ends   int
	tokens int64
	st     *providers.StreamState
}

// runStream relays stream through the scanner in reads cut at cuts, then
// ends with tail (io.EOF: a clean end; anything else: a broken stream).
func runStream(t *testing.T, c streamCase, stream, cuts []byte, hide bool, tail error) streamRun {
	t.Helper()
	const prompt = 40 // the request's prompt estimate
	st := &providers.StreamState{HideUsage: hide}
	src := &cutReader{b: stream, cuts: cuts, tail: tail}
	r := newStreamReader(context.Background(), io.NopCloser(src), c.split(), st, c.format.Event)
	r.endsAtEOF = c.endsAtEOF
	if c.sse {
		r.brokenEvent = c.format.StreamError
	}
	run := streamRun{st: st}
	r.onEnd = func() { run.ends++ }
	// A bounded read loop: a scanner that never ended would fail here
	// rather than hang the fuzzer.
	buf := make([]byte, 97)
	for i := 0; ; i++ {
		if i > 4*len(stream)+1000 {
			t.Fatalf("the scanner did not end after %d reads", i)
		}
		n, err := r.Read(buf)
		run.out = append(run.out, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	run.tokens = st.Tokens(prompt)
	return run
}

func checkStream(t *testing.T, c streamCase, stream, cuts []byte, hide bool) {
	whole := runStream(t, c, stream, nil, hide, io.EOF)
	cut := runStream(t, c, stream, cuts, hide, io.EOF)
	for _, run := range []streamRun{whole, cut} {
		if run.ends != 1 {
			t.Fatalf("end hook called %d times", run.ends)
		}
		if run.tokens < 0 {
			t.Fatalf("negative charge %d (state %+v) for %q", run.tokens, *run.st, stream)
		}
		if !hide && !bytes.Equal(run.out, stream) {
			t.Fatalf("relayed bytes differ:\n got %q\nwant %q", run.out, stream)
		}
	}
	if !bytes.Equal(whole.out, cut.out) {
		t.Fatalf("relayed bytes depend on read boundaries %v:\n%q\n%q", cuts, whole.out, cut.out)
	}
	if whole.tokens != cut.tokens || whole.st.Done != cut.st.Done {
		t.Fatalf("charge depends on read boundaries %v: %d (done %v) vs %d (done %v) for %q",
			cuts, whole.tokens, whole.st.Done, cut.tokens, cut.st.Done, stream)
	}

	// The upstream breaks the connection after these bytes.
	broken := runStream(t, c, stream, cuts, hide, errors.New("connection reset by peer"))
	if broken.ends != 1 || broken.tokens < 0 {
		t.Fatalf("broken stream: end hook %d times, charge %d", broken.ends, broken.tokens)
	}
	if c.sse {
		tailEvent := c.format.StreamError("The upstream ended the stream unexpectedly; the answer is incomplete.")
		if !bytes.HasSuffix(broken.out, tailEvent) {
			t.Fatalf("broken stream does not end with an error event: %q", broken.out)
		}
		if !hide && !bytes.Equal(broken.out, append(append([]byte{}, stream...), tailEvent...)) {
			t.Fatalf("broken stream relayed %q", broken.out)
		}
	}
}

// cutReader returns b in reads of the sizes in cuts (cycled; 1-64 bytes),
// then tail.
type cutReader struct {
	b    []byte
	cuts []byte
	i    int
	tail error
}

func (r *cutReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.tail
	}
	n := len(r.b)
	if len(r.cuts) > 0 {
		n = int(r.cuts[r.i%len(r.cuts)])%64 + 1
		r.i++
	}
	n = min(n, len(r.b), len(p))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}
