package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// budgetEnv is a proxy whose bodies in flight may take 1 MiB together
// past each request's own first MiB (freeBytes), and wait 300 ms for room.
func budgetEnv(t *testing.T) *env {
	return newEnv(t, map[string]string{"BODY_MEMORY_LIMIT_MB": "1", "ALLOWED_MODEL_FAMILIES": "gpt4o,claude"},
		Options{MemoryWait: 300 * time.Millisecond})
}

// chatOf is an OpenAI chat body of about size bytes.
func chatOf(model string, size int, stream bool) string {
	s := "false"
	if stream {
		s = "true"
	}
	return `{"model":"` + model + `","stream":` + s + `,"max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("a", size) + `"}]}`
}

// holdStream starts a streamed request of about size bytes that stays in
// flight, its body held, until the returned func is called.
func holdStream(t *testing.T, e *env, kind upstreamfake.Kind, path, body, token string) (end func()) {
	t.Helper()
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // a failed check must not leave the upstream held
	e.fake(kind).Set(upstreamfake.Behavior{HoldBeforeUsage: hold})
	e.streamUntil(t, call{path: path, body: body, header: bearerH(token)}, "upstream!", "its last text")
	return func() {
		release()
		e.logs.waitLines(t, "…"+token[len(token)-4:], 1)
	}
}

// A request the memory budget had no room for is the instance's refusal,
// which the SDKs retry: it gives back its rate-limit count, as a quota
// refusal does, so that a busy instance does not use up its users' rate
// limits (with 2 a minute, two 503s used to leave the client nothing).
// So does a request refused because no upstream key works.
func TestInstanceRefusalsKeepTheRateLimit(t *testing.T) {
	e := newEnv(t, map[string]string{"BODY_MEMORY_LIMIT_MB": "1", "ALLOWED_MODEL_FAMILIES": "gpt4o", "TEXT_MODEL_RATE_LIMIT": "2"},
		Options{MemoryWait: 50 * time.Millisecond})
	const path = "/proxy/openai/v1/chat/completions"
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})
	end := holdStream(t, e, upstreamfake.OpenAI, path, chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	for i := range 2 {
		a := e.do(call{path: path, body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(other)})
		if a.status != http.StatusServiceUnavailable {
			t.Fatalf("busy %d: %d %.300s", i, a.status, a.body)
		}
		if got := a.header.Get("X-RateLimit-Remaining"); got != "2" {
			t.Errorf("busy %d: X-RateLimit-Remaining %q, want 2 (its count taken back)", i, got)
		}
	}
	end()
	for i := range 2 {
		if a := e.do(call{path: path, body: chatOf("gpt-4o", 100, false), header: bearerH(other)}); a.status != http.StatusOK {
			t.Fatalf("request %d after two busy refusals: %d %.300s", i, a.status, a.body)
		}
	}
	if a := e.do(call{path: path, body: chatOf("gpt-4o", 100, false), header: bearerH(other)}); a.status != http.StatusTooManyRequests {
		t.Errorf("third request: %d, want the rate limit", a.status)
	}

	// The only key is refused by OpenAI and set aside: the requests after
	// it, refused with 503 before the upstream, keep the client's count.
	e = newEnv(t, map[string]string{"OPENAI_KEY": "sk-dead-key-nnnn", "ALLOWED_MODEL_FAMILIES": "gpt4o", "TEXT_MODEL_RATE_LIMIT": "2"})
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-dead-key-nnnn": 401}})
	tk := e.user(users.Patch{})
	e.do(call{path: path, body: chatOf("gpt-4o", 100, false), header: bearerH(tk)}) // asks the upstream: counted
	for i := range 3 {
		a := e.do(call{path: path, body: chatOf("gpt-4o", 100, false), header: bearerH(tk)})
		if a.status != http.StatusServiceUnavailable || a.header.Get("X-RateLimit-Remaining") != "1" {
			t.Errorf("no working key %d: %d, X-RateLimit-Remaining %q, want 503 and 1 left", i, a.status, a.header.Get("X-RateLimit-Remaining"))
		}
	}
}

// Bodies in flight on an instance take at most BODY_MEMORY_LIMIT_MB
// together past their first MiB each: a body that finds no room waits for
// it, then is refused with 503 and Retry-After, unsent and uncharged;
// bodies within their first MiB pass meanwhile, and once the room is given
// back the same body passes.
func TestBodiesWaitForMemory(t *testing.T) {
	e := budgetEnv(t)
	const path = "/proxy/openai/v1/chat/completions"
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})
	end := holdStream(t, e, upstreamfake.OpenAI, path, chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	asked := e.fake(upstreamfake.OpenAI).Count()

	start := time.Now()
	a := e.do(call{path: path, body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(other)})
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "2" ||
		dig(a.json(t), "error", "code") != "unavailable" {
		t.Fatalf("a body with no room: %d %v %.300s", a.status, a.header, a.body)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("refused after %v, before the 300 ms wait", waited)
	}
	if n := e.fake(upstreamfake.OpenAI).Count(); n != asked {
		t.Errorf("the refused body was sent upstream (%d requests, %d before)", n, asked)
	}
	if u := e.get(other); u.PromptCount != 0 || u.TokenCounts["gpt4o"] != 0 {
		t.Errorf("the refused body was charged: %d prompts, %v", u.PromptCount, u.TokenCounts)
	}
	if a := e.do(call{path: path, body: chatOf("gpt-4o", 900<<10, false), header: bearerH(other)}); a.status != http.StatusOK {
		t.Errorf("a body within its first MiB: %d %.300s", a.status, a.body)
	}

	end()
	if a := e.do(call{path: path, body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(other)}); a.status != http.StatusOK {
		t.Errorf("after the room was given back: %d %.300s", a.status, a.body)
	}
}

// A translation takes what it may allocate (Request.Reserve)
// before it decodes the body, and gives it back once the native body is
// made: while it is translated nothing else fits, while it streams only
// its two bodies are held.
func TestTranslationWaitsForItsCost(t *testing.T) {
	e := budgetEnv(t)
	translated, native := "/proxy/anthropic/v1/chat/completions", "/proxy/openai/v1/chat/completions"
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})

	end := holdStream(t, e, upstreamfake.OpenAI, native, chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	// 200 KiB translated may take 3.2 MiB: 2.2 MiB past its own, more
	// than the budget (it takes all of it) and than is free.
	a := e.do(call{path: translated, body: chatOf("claude-sonnet-4-5", 200<<10, false), header: bearerH(other)})
	if a.status != http.StatusServiceUnavailable || dig(a.json(t), "error", "type") != "server_error" {
		t.Fatalf("a translation with no room: %d %.300s", a.status, a.body)
	}
	if n := e.fake(upstreamfake.Anthropic).Count(); n != 0 {
		t.Errorf("sent upstream: %d", n)
	}
	end()

	// Alone it takes the whole budget (it runs alone), then keeps only its
	// two bodies, about 400 KiB, within its own MiB, while it streams.
	end = holdStream(t, e, upstreamfake.Anthropic, translated, chatOf("claude-sonnet-4-5", 200<<10, true), holder)
	if a := e.do(call{path: native, body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(other)}); a.status != http.StatusOK {
		t.Errorf("beside a translated stream: %d %.300s", a.status, a.body)
	}
	end()
}

// A whole answer past its first MiB takes its size from the budget as it
// is read: with no room it is not relayed (503) and not charged.
func TestLargeAnswersWaitForMemory(t *testing.T) {
	e := budgetEnv(t)
	const path = "/proxy/openai/v1/chat/completions"
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})
	big := strings.Repeat("b", 3<<20)

	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Text: big})
	if a := e.do(call{path: path, body: chatOf("gpt-4o", 10, false), header: bearerH(other)}); a.status != http.StatusOK || len(a.body) < 3<<20 {
		t.Fatalf("a 3 MiB answer alone: %d, %d bytes", a.status, len(a.body))
	}
	charged := e.get(other).PromptCount

	end := holdStream(t, e, upstreamfake.OpenAI, path, chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Text: big})
	a := e.do(call{path: path, body: chatOf("gpt-4o", 10, false), header: bearerH(other)})
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "2" {
		t.Errorf("a 3 MiB answer with 512 KiB free: %d %.300s", a.status, a.body)
	}
	if u := e.get(other); u.PromptCount != charged {
		t.Errorf("an answer not relayed was charged: %d prompts, %d before", u.PromptCount, charged)
	}
	// A stream holds nothing of its answer: 3 MiB pass, all of it.
	streamed := chatOf("gpt-4o", 10, true)
	if a := e.do(call{path: path, body: streamed, header: bearerH(other)}); a.status != http.StatusOK || strings.Count(string(a.body), "b") < 3<<20 {
		t.Errorf("a streamed 3 MiB answer with 512 KiB free: %d, %d bytes", a.status, len(a.body))
	}
	charged = e.get(other).PromptCount
	// Translated, an answer weighs 12 times its size as it is read.
	const translated = "/proxy/anthropic/v1/chat/completions"
	e.fake(upstreamfake.Anthropic).Set(upstreamfake.Behavior{Text: strings.Repeat("c", 200<<10)})
	a = e.do(call{path: translated, body: chatOf("claude-sonnet-4-5", 10, false), header: bearerH(other)})
	if a.status != http.StatusServiceUnavailable || dig(a.json(t), "error", "type") != "server_error" {
		t.Errorf("a translated 200 KiB answer with 512 KiB free: %d %.300s", a.status, a.body)
	}
	end()
	if a := e.do(call{path: translated, body: chatOf("claude-sonnet-4-5", 10, false), header: bearerH(other)}); a.status != http.StatusOK {
		t.Errorf("a translated 200 KiB answer alone: %d %.300s", a.status, a.body)
	}
	if u := e.get(other); u.PromptCount != charged+1 {
		t.Errorf("%d prompts charged, want %d", u.PromptCount, charged+1)
	}
}

// The budget is BODY_MEMORY_LIMIT_MB when set, else half the Go memory
// limit (GOMEMLIMIT, which the deploy sets from the instance's memory),
// else 256 MiB.
func TestMemoryBudgetSize(t *testing.T) {
	if b := newMemBudget(0, 0); b.size != defaultBudget || b.wait != defaultBudgetWait {
		t.Errorf("no limit: %d bytes, %v", b.size, b.wait)
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(400 << 20))
	if b := newMemBudget(0, 0); b.size != 200<<20 {
		t.Errorf("GOMEMLIMIT 400 MiB: %d bytes", b.size)
	}
	if b := newMemBudget(64, time.Second); b.size != 64<<20 || b.wait != time.Second {
		t.Errorf("64 MiB: %d bytes, %v", b.size, b.wait)
	}
}

// A weight over the whole budget takes the whole budget, once it is all
// free: it runs alone rather than never. Taking never waits past the
// wait, nor past the caller's leaving.
func TestMemoryBudgetTakes(t *testing.T) {
	b := newMemBudget(1, 50*time.Millisecond)
	big := &memHold{b: b}
	if err := big.take(context.Background(), 10<<20); err != nil || big.held != 1<<20 {
		t.Fatalf("over the budget: %v, %d held", err, big.held)
	}
	if err := big.take(context.Background(), 1); err != nil || big.held != 1<<20 {
		t.Errorf("more for a hold of the whole budget: %v, %d held", err, big.held)
	}
	small := &memHold{b: b}
	if err := small.take(context.Background(), freeBytes); err != nil || small.held != 0 {
		t.Errorf("its own first MiB: %v, %d held", err, small.held)
	}
	if err := small.take(context.Background(), 1); err != errBusy || small.used != freeBytes {
		t.Errorf("past it, with the budget held: %v, %d used", err, small.used)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	b.wait = time.Minute
	if err := small.take(ctx, 1); err != errBusy || time.Since(start) > 10*time.Second {
		t.Errorf("a caller gone: %v after %v (the wait is a minute)", err, time.Since(start))
	}
	big.keep(freeBytes + 1<<19)
	if err := small.take(context.Background(), 1<<19); err != nil || small.held != 1<<19 {
		t.Errorf("after half was given back: %v, %d held", err, small.held)
	}
	big.release()
	small.release()
	if !b.sem.TryAcquire(1 << 20) {
		t.Error("the budget was not all given back")
	}
}

// A body of unknown length (chunked) takes its room as it is read.
func TestChunkedBodiesWaitForMemory(t *testing.T) {
	e := budgetEnv(t)
	const path = "/proxy/openai/v1/chat/completions"
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})
	end := holdStream(t, e, upstreamfake.OpenAI, path, chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	send := func() *http.Response {
		body := io.MultiReader(strings.NewReader(chatOf("gpt-4o", 1800<<10, false))) // no length: chunked
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, body)
		req.Header.Set("Authorization", "Bearer "+other)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := send(); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a chunked body with no room: %d", resp.StatusCode)
	}
	end()
	if resp := send(); resp.StatusCode != http.StatusOK {
		t.Errorf("a chunked body with room: %d", resp.StatusCode)
	}
}

// Two exchanges that each hold part of the budget and need more (a body
// read, then its translation) do not wait for each other: the one that
// waits gives back what it holds, and both are served in turn.
func TestMemoryBudgetWaitsDoNotLock(t *testing.T) {
	b := newMemBudget(1, 2*time.Second)
	x, y := &memHold{b: b}, &memHold{b: b}
	for _, h := range []*memHold{x, y} {
		if err := h.take(context.Background(), freeBytes+1<<19); err != nil || h.held != 1<<19 {
			t.Fatalf("half each: %v, %d held", err, h.held)
		}
	}
	done := make(chan error, 2)
	for _, h := range []*memHold{x, y} {
		go func() {
			err := h.take(context.Background(), 1<<20) // the whole budget
			if err == nil {
				time.Sleep(10 * time.Millisecond)
				h.release()
			}
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("a wait for more: %v", err)
		}
	}
	if !b.sem.TryAcquire(1 << 20) {
		t.Error("the budget was not all given back")
	}
}

// budgetAzureEnv is budgetEnv with the Azure fake serving its gpt-4o
// deployment.
func budgetAzureEnv(t *testing.T) *env {
	az := upstreamfake.Start(t, upstreamfake.Azure)
	e := newEnv(t, map[string]string{"BODY_MEMORY_LIMIT_MB": "1", "ALLOWED_MODEL_FAMILIES": "gpt4o,azure-gpt4o",
		"AZURE_CREDENTIALS": azureCred("tollgate-east", "prod-4o"), "AZURE_OPENAI_BASE_URL": az.URL + "/{resource}"},
		Options{MemoryWait: 300 * time.Millisecond})
	e.fakes[upstreamfake.Azure] = az
	return e
}

// A whole answer is weighed once: on a route whose provider has an
// Inbound hook that leaves a whole answer unread (Azure), the answer
// read by readWhole is not also weighed by weighedBody. A 900 KiB
// answer is within the request's own first MiB there as on OpenAI.
func TestWholeAnswersAreWeighedOnce(t *testing.T) {
	e := budgetAzureEnv(t)
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})
	end := holdStream(t, e, upstreamfake.OpenAI, "/proxy/openai/v1/chat/completions", chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	defer end()
	text := strings.Repeat("b", 900<<10)
	e.fake(upstreamfake.OpenAI).Set(upstreamfake.Behavior{Text: text})
	e.fake(upstreamfake.Azure).Set(upstreamfake.Behavior{Text: text})
	for _, path := range []string{"/proxy/openai/v1/chat/completions", "/proxy/azure/openai/v1/chat/completions"} {
		if a := e.do(call{path: path, body: chatOf("gpt-4o", 10, false), header: bearerH(other)}); a.status != http.StatusOK {
			t.Errorf("%s: a 900 KiB answer beside 512 KiB held: %d %.200s", path, a.status, a.body)
		}
	}
	// Once, but weighed: past the first MiB and the room left, refused.
	e.fake(upstreamfake.Azure).Set(upstreamfake.Behavior{Text: strings.Repeat("b", 1800<<10)})
	if a := e.do(call{path: "/proxy/azure/openai/v1/chat/completions", body: chatOf("gpt-4o", 10, false), header: bearerH(other)}); a.status != http.StatusServiceUnavailable {
		t.Errorf("a 1.8 MiB Azure answer beside 512 KiB held: %d %.200s", a.status, a.body)
	}
}

// With ERROR_FORMAT=completion, a body refused for want of room is
// refused after the budget's wait, not after two: the fake answer does
// not read the body again (and wait for room again) to learn its model.
func TestRefusedBodyWaitsOnceWithFakeErrors(t *testing.T) {
	e := newEnv(t, map[string]string{"BODY_MEMORY_LIMIT_MB": "1", "ALLOWED_MODEL_FAMILIES": "gpt4o,claude", "ERROR_FORMAT": "completion"},
		Options{MemoryWait: time.Second})
	const path = "/proxy/openai/v1/chat/completions"
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})
	end := holdStream(t, e, upstreamfake.OpenAI, path, chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	defer end()
	start := time.Now()
	a := e.do(call{path: path, body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(other)})
	waited := time.Since(start)
	if a.status != http.StatusOK || a.header.Get(headerErrorStatus) != "503" || !strings.Contains(string(a.body), "busy") {
		t.Errorf("not refused for room: %d %v %.300s", a.status, a.header, a.body)
	}
	if waited < time.Second || waited >= 2*time.Second {
		t.Errorf("refused after %v, not after the 1 s wait (two waits: 2 s)", waited)
	}
}

// A client that announces a body and sends none of it holds no more of
// the budget than the body's size (README: "holds its size of the budget
// until it is sent"): a translated route's announced 200 KiB, within
// the request's own first MiB, leaves the budget to the others.
func TestAnnouncedTranslatedBodyHoldsOnlyItsSize(t *testing.T) {
	e := budgetEnv(t)
	slow, other := e.user(users.Patch{}), e.user(users.Patch{})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /proxy/anthropic/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", slow, 200<<10)
	time.Sleep(200 * time.Millisecond) // the slow request is being read
	a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: chatOf("gpt-4o", 1800<<10, false), header: bearerH(other)})
	if a.status != http.StatusOK {
		t.Errorf("a 1.8 MiB body beside a translated 200 KiB one not yet sent: %d %.200s", a.status, a.body)
	}
}

// A body a provider builds anew for its service (Bedrock's, Vertex's
// Claude) is a second copy of the request's, held while its answer
// streams: it takes its size from the budget too.
func TestBuiltBodiesWaitForMemory(t *testing.T) {
	up := upstreamfake.Start(t, upstreamfake.Bedrock)
	e := newEnv(t, map[string]string{"BODY_MEMORY_LIMIT_MB": "1", "ALLOWED_MODEL_FAMILIES": "gpt4o,aws-claude",
		"AWS_CREDENTIALS": awsCred("AKIDBUDGET", "us-east-1"), "AWS_BEDROCK_BASE_URL": up.URL + "/{region}"},
		Options{MemoryWait: 300 * time.Millisecond})
	e.fakes[upstreamfake.Bedrock] = up
	holder, other := e.user(users.Patch{}), e.user(users.Patch{})
	messages := `{"model":"claude-3-haiku-20240307","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"` +
		strings.Repeat("a", 900<<10) + `"}]}`

	// 900 KiB within its own MiB, and the 900 KiB sent to Bedrock: 0.8 MiB
	// past it, held while it streams.
	end := holdStream(t, e, upstreamfake.Bedrock, "/proxy/aws/claude/v1/messages", messages, holder)
	const native = "/proxy/openai/v1/chat/completions"
	if a := e.do(call{path: native, body: chatOf("gpt-4o", 1536<<10, false), header: bearerH(other)}); a.status != http.StatusServiceUnavailable {
		t.Errorf("1.5 MiB beside a Bedrock stream holding its two bodies: %d %.300s", a.status, a.body)
	}
	end()
	if a := e.do(call{path: native, body: chatOf("gpt-4o", 1536<<10, false), header: bearerH(other)}); a.status != http.StatusOK {
		t.Errorf("1.5 MiB alone: %d %.300s", a.status, a.body)
	}

	// The other way round: the copy finds no room, and nothing is sent.
	end = holdStream(t, e, upstreamfake.OpenAI, native, chatOf("gpt-4o", 1536<<10, true), holder) // holds 512 KiB
	sent := up.Count()
	a := e.do(call{path: "/proxy/aws/claude/v1/messages", body: strings.Replace(messages, `"stream":true`, `"stream":false`, 1), header: bearerH(other)})
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "2" || dig(a.json(t), "type") != "error" {
		t.Errorf("a Bedrock copy with no room: %d %v %.300s", a.status, a.header, a.body)
	}
	if up.Count() != sent {
		t.Errorf("sent to Bedrock: %d requests", up.Count()-sent)
	}
	end()
}

// A whole answer too big to hold has its usage unread: it is relayed in
// full and charged as a stream cut short, its output at the request's
// limit, not the prompt alone.
func TestAnswerTooBigToHoldChargedAtTheLimit(t *testing.T) {
	e := newEnv(t, nil, Options{MaxAnswer: 64})
	tk := e.user(users.Patch{})
	charged := func(maxTokens int) int64 {
		t.Helper()
		before := e.get(tk).TokenCounts["gpt4o"]
		body := strings.Replace(chatOf("gpt-4o", 100, false), `"max_tokens":10`, `"max_tokens":`+strconv.Itoa(maxTokens), 1)
		a := e.do(call{path: "/proxy/openai/v1/chat/completions", body: body, header: bearerH(tk)})
		if a.status != http.StatusOK || dig(a.json(t), "object") != "chat.completion" {
			t.Fatalf("%d %.300s", a.status, a.body)
		}
		return e.get(tk).TokenCounts["gpt4o"] - before
	}
	small, large := charged(10), charged(1000)
	if large-small != 990 {
		t.Errorf("charged %d with max_tokens 10 and %d with 1000: the output is not charged at the limit", small, large)
	}
}
