package providers

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A translated stream holds the native event being read and its
// translation, nothing more: many small native events in one read (each
// translated to a chunk several times its size) and one large event
// (text of HTML's characters, which a JSON encoder escaping them would
// write six times larger) each take a buffer of about the size of what
// was read, however long the stream.
func TestTranslatedStreamBuffersBounded(t *testing.T) {
	const readSize = 16 << 10
	big := strings.Repeat("<", 3<<20)
	claudeStart := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":2,\"output_tokens\":1}}}\n\n"
	claudeEnd := "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	claudeTool := "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"content_block\":{\"type\":\"tool_use\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\"}\n\n"
	geminiCall := "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{}}]}}]}\n\n"
	geminiEnd := "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":1,\"candidatesTokenCount\":2}}\n\n"
	streams := map[string]map[string]string{
		"anthropic": {
			"many small events": claudeStart + strings.Repeat(claudeTool, 20000) + claudeEnd,
			"a large event": claudeStart + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"" +
				big + "\"}}\n\n" + claudeEnd,
		},
		"google": {
			"many small events": strings.Repeat(geminiCall, 20000) + geminiEnd,
			"a large event":     "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"" + big + "\"}]}}]}\n\n" + geminiEnd,
		},
	}
	for via, shapes := range streams {
		for name, stream := range shapes {
			resp, _, err := nativeAnswerBody(t, chatTranslations[via], stream)
			if err != nil {
				t.Fatal(err)
			}
			ns, ok := resp.Body.(*nativeStream)
			if !ok {
				t.Fatalf("%s: the body is a %T", via, resp.Body)
			}
			// The largest native event this stream holds, and the most a
			// read's translation may take beside it.
			largest := readSize
			if name == "a large event" {
				largest = len(big)
			}
			buf := make([]byte, 32<<10)
			most, total := 0, 0
			for {
				n, err := ns.Read(buf)
				total += n
				most = max(most, cap(ns.c.out))
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s, %s: %v", via, name, err)
				}
			}
			// Measured: 56–72 KiB for 16 KiB reads of small events, 3080 KiB
			// for the 3 MiB event (18,440 KiB written escaped).
			if most > 2*largest+4*readSize {
				t.Errorf("%s, %s: the translation took a buffer of %d KiB for native events of at most %d KiB", via, name, most>>10, largest>>10)
			}
			if total == 0 || !ns.done {
				t.Errorf("%s, %s: %d bytes, done %v", via, name, total, ns.done)
			}
		}
	}
}

// nativeAnswerBody is nativeAnswer for a stream, its body left unread.
func nativeAnswerBody(t testing.TB, tr *Translation, stream string) (resp *http.Response, rq *Request, err error) {
	t.Helper()
	resp = &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {ContentSSE}}, Body: io.NopCloser(&chunked{s: stream, n: 16 << 10})}
	rq = &Request{Model: "m", Stream: true}
	return resp, rq, tr.Response(resp, rq)
}

// chunked reads s n bytes at a time, as a network body arrives.
type chunked struct {
	s string
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.s)
	c.s = c.s[k:]
	return k, nil
}
