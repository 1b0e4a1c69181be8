package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// Every way an exchange ends gives back all it held: a body that needs
// the whole budget passes after each.
func TestBudgetGivenBackOnEveryEnd(t *testing.T) {
	e := newEnv(t, map[string]string{"BODY_MEMORY_LIMIT_MB": "1", "ALLOWED_MODEL_FAMILIES": "gpt4o,claude",
		"OPENAI_KEY": "busy," + openAIKey}, Options{MemoryWait: 300 * time.Millisecond})
	const native, translated = "/proxy/openai/v1/chat/completions", "/proxy/anthropic/v1/chat/completions"
	probe := func(after string) {
		t.Helper()
		e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{})
		if a := e.do(call{path: native, body: chatOf("gpt-4o", 2<<20, false), header: bearerH(e.user(users.Patch{}))}); a.status != http.StatusOK {
			t.Errorf("after %s, a body that needs the whole budget: %d %.200s", after, a.status, a.body)
		}
	}
	probe("nothing")

	e.fake(upstreamfake.Anthropic).Set(upstreamfake.Behavior{Text: strings.Repeat("c", 300<<10)})
	if a := e.do(call{path: translated, body: chatOf("claude-sonnet-4-5", 200<<10, false), header: bearerH(e.user(users.Patch{}))}); a.status != http.StatusOK {
		t.Errorf("translated: %d %.200s", a.status, a.body)
	}
	probe("a translated whole answer")

	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Status: 500})
	if a := e.do(call{path: native, body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(e.user(users.Patch{}))}); a.status != 500 {
		t.Errorf("upstream 500: %d %.200s", a.status, a.body)
	}
	probe("an upstream error")

	e.fake(upstreamfake.Anthropic).Set(upstreamfake.Behavior{Status: 500})
	if a := e.do(call{path: translated, body: chatOf("claude-sonnet-4-5", 200<<10, false), header: bearerH(e.user(users.Patch{}))}); a.status != 500 {
		t.Errorf("translated upstream 500: %d %.200s", a.status, a.body)
	}
	probe("a translated upstream error")

	// The first key answers 429: retried on the other.
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Text: strings.Repeat("b", 1800<<10)})
	if a := e.do(call{path: native, body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(e.user(users.Patch{}))}); a.status != http.StatusOK {
		t.Errorf("key retry: %d %.200s", a.status, a.body)
	}
	probe("key retries")

	// The client leaves during a whole answer, and during a stream.
	for _, body := range []string{chatOf("gpt-4o", 1800<<10, false), chatOf("gpt-4o", 1800<<10, true)} {
		e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Text: strings.Repeat("b", 3<<20), Chunks: 300, ChunkPause: time.Millisecond})
		token := e.user(users.Patch{})
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", native, token, len(body), body)
		br := bufio.NewReader(conn)
		if _, err := io.ReadFull(br, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
		probe("a client that left")
	}
}
