package providers

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// costlyShapes are request bodies of about size bytes in the shapes that
// cost a translation most per byte: one long string, strings to unescape,
// many messages, many content parts, tool calls, an image.
func costlyShapes(size int) map[string]string {
	fill := func(item string) string {
		return strings.TrimSuffix(strings.Repeat(item+",", size/(len(item)+1)), ",")
	}
	long := strings.Repeat("a", 300)
	return map[string]string{
		"one string":     `{"model":"M","messages":[{"role":"user","content":"` + strings.Repeat("a", size) + `"}]}`,
		"escapes":        `{"model":"M","messages":[{"role":"user","content":"` + strings.Repeat(`\u00e9\n`, size/8) + `"}]}`,
		"messages":       `{"model":"M","messages":[` + fill(`{"role":"user","content":"`+long+`"}`) + `]}`,
		"small messages": `{"model":"M","messages":[` + fill(`{"role":"user","content":"a"}`) + `]}`,
		"parts":          `{"model":"M","messages":[{"role":"user","content":[` + fill(`{"type":"text","text":"`+long+`"}`) + `]}]}`,
		"small parts":    `{"model":"M","messages":[{"role":"user","content":[` + fill(`{"type":"text","text":"a"}`) + `]}]}`,
		"tool calls": `{"model":"M","messages":[{"role":"user","content":"a"},{"role":"assistant","tool_calls":[` +
			fill(`{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}`) + `]}]}`,
		"tools": `{"model":"M","messages":[{"role":"user","content":"a"}],"tools":[` +
			fill(`{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}`) + `]}`,
		"image": `{"model":"M","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` +
			strings.Repeat("QUJD", size/4) + `"}}]}]}`,
		"image prompt": `{"model":"M","messages":[{"role":"user","content":"Image: ` + strings.Repeat("a", size) + `"}]}`,
		// Characters a JSON encoder may escape as six bytes (\u003c)
		// though one byte of the body: HTML's <, > and &.
		"HTML characters": `{"model":"M","messages":[{"role":"user","content":"` + strings.Repeat("<&>", size/3) + `"}]}`,
		// A byte that is not UTF-8 is decoded as U+FFFD (three bytes);
		// U+2028 (three bytes) is encoded as six.
		"not UTF-8": `{"model":"M","messages":[{"role":"user","content":"Image: ` + strings.Repeat("\xff", size) + `"}]}`,
		"not UTF-8 in a tool result": `{"model":"M","messages":[{"role":"user","content":"a"},{"role":"assistant","tool_calls":[` +
			`{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"{\"a\":\"` + strings.Repeat("\xff", size) + `\"}"}]}`,
		"line separators":   `{"model":"M","messages":[{"role":"user","content":"Image: ` + strings.Repeat("\u2028\u2029", size/6) + `"}]}`,
		"HTML image prompt": `{"model":"M","messages":[{"role":"user","content":"Image: ` + strings.Repeat("<", size) + `"}]}`,
		"HTML in a tool result": `{"model":"M","messages":[{"role":"user","content":"a"},{"role":"assistant","tool_calls":[` +
			`{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"{\"a\":\"` + strings.Repeat("<", size) + `\"}"}]}`,
		// JSON text, its quotes escaped: each survives decoding and is
		// escaped again.
		"JSON text": `{"model":"M","messages":[{"role":"user","content":"` + members(size) + `"}]}`,
		// Arguments and a tool result of JSON text: the translations check
		// that they are objects.
		"tool call arguments": `{"model":"M","messages":[{"role":"user","content":"a"},{"role":"assistant","tool_calls":[` +
			`{"id":"c","type":"function","function":{"name":"f","arguments":"` + members(size) + `"}}]}]}`,
		"tool result": `{"model":"M","messages":[{"role":"user","content":"a"},{"role":"assistant","tool_calls":[` +
			`{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"` + members(size) + `"}]}`,
	}
}

// members is a JSON object of about size bytes, of many members with
// distinct names, quoted as a JSON string's content.
func members(size int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`\"` + strconv.FormatInt(int64(i), 36) + `\":1`)
	}
	return b.String() + "}"
}

// translatedChats are the translated chat routes, by provider.
func translatedChats(t *testing.T) map[string]Endpoint {
	out := map[string]Endpoint{}
	for _, p := range All() {
		if ep, _, ok := p.Resolve(http.MethodPost, "/v1/chat/completions"); ok && ep.Translate != nil {
			out[string(p.ID)] = ep
		}
	}
	if len(out) < 6 {
		t.Fatalf("%d translated chat routes", len(out))
	}
	return out
}

// measureTranslation translates body on ep: the cost it reserved, what it
// allocated, and its error.
func measureTranslation(t *testing.T, ep Endpoint, body string) (cost, alloc int64, err error) {
	t.Helper()
	rq, err := ep.Format.Parse([]byte(body), 1000, true, true)
	if err != nil {
		t.Fatal(err)
	}
	rq.Reserve = func(n int64) error { cost = n; return nil }
	var before, after runtime.MemStats
	// Twice: the pools (encoding/json's buffers) are emptied, as they
	// are on an instance whose last large translation was a while ago.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = ep.Translate.Request(rq)
	runtime.ReadMemStats(&after)
	return cost, int64(after.TotalAlloc - before.TotalAlloc), err
}

// legacyRoute is the translated /v1/complete route.
func legacyRoute(t *testing.T) Endpoint {
	t.Helper()
	for _, p := range All() {
		if e, _, ok := p.Resolve(http.MethodPost, "/v1/complete"); ok && e.Translate != nil {
			return e
		}
	}
	t.Fatal("no translated /v1/complete route")
	return Endpoint{}
}

// A translation asks Reserve, before it decodes anything, for at least
// all it will allocate: the proxy's memory budget holds that much for it
// (functions/proxy TestTranslationWaitsForItsCost).
func TestTranslationCostCoversItsAllocations(t *testing.T) {
	const size = 512 << 10
	for id, ep := range translatedChats(t) {
		for name, body := range costlyShapes(size) {
			cost, alloc, err := measureTranslation(t, ep, body)
			if cost == 0 && err == nil {
				t.Errorf("%s, %s: translated without a reservation", id, name)
			}
			if cost > 0 && alloc > cost {
				t.Errorf("%s, %s: allocated %d KiB, %.1f× the body, over the %d KiB reserved", id, name, alloc>>10, float64(alloc)/float64(len(body)), cost>>10)
			}
		}
	}
}

// A reservation refused refuses the request with its error, before the
// items are decoded: what it cost is the copy of the top-level members
// (decoding small messages allocates some 50 times their size).
func TestTranslationRefusedItsCostDecodesNothing(t *testing.T) {
	busy := errors.New("busy")
	body := costlyShapes(512 << 10)["small messages"]
	for id, ep := range translatedChats(t) {
		rq, err := ep.Format.Parse([]byte(body), 1000, true, true)
		if err != nil {
			t.Fatal(err)
		}
		rq.Reserve = func(int64) error { return busy }
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err = ep.Translate.Request(rq)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, busy) {
			t.Errorf("%s: %v", id, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*uint64(len(body)) {
			t.Errorf("%s: refusing allocated %d KiB for a %d KiB body", id, alloc>>10, len(body)>>10)
		}
	}
}

// The legacy completions route (/anthropic/v1/complete) is translated
// too: it asks Reserve for what it may allocate, turns included, before
// it splits the prompt into turns.
func TestLegacyTranslationCostCoversItsAllocations(t *testing.T) {
	const size = 512 << 10
	ep := legacyRoute(t)
	prompt := func(p string) string {
		return `{"model":"claude-2.1","max_tokens_to_sample":10,"prompt":"` + p + `"}`
	}
	for name, body := range map[string]string{
		"one turn":    prompt(`\n\nHuman: ` + strings.Repeat("a", size) + `\n\nAssistant:`),
		"escapes":     prompt(`\n\nHuman: ` + strings.Repeat(`\u00e9\n`, size/8) + `\n\nAssistant:`),
		"small turns": prompt(strings.Repeat(`\n\nHuman: a\n\nAssistant: b`, size/30) + `\n\nAssistant:`),
		"HTML":        prompt(`\n\nHuman: ` + strings.Repeat("<&>", size/3) + `\n\nAssistant:`),
		"not UTF-8":   prompt(`\n\nHuman: ` + strings.Repeat("\xff", size) + `\n\nAssistant:`),
		"separators":  prompt(`\n\nHuman: x` + strings.Repeat("\u2028", size/3) + `x\n\nAssistant:`),
		"empty turns": prompt(`\n\nHuman: a` + strings.Repeat(`\n\nAssistant:\n\nHuman:`, size/40) + `\n\nAssistant:`),
	} {
		cost, alloc, err := measureTranslation(t, ep, body)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if cost == 0 {
			t.Errorf("%s: translated without a reservation (allocated %d KiB, %.1f× the body)", name, alloc>>10, float64(alloc)/float64(len(body)))
		} else if alloc > cost {
			t.Errorf("%s: allocated %d KiB, %.1f× the body, over the %d KiB reserved", name, alloc>>10, float64(alloc)/float64(len(body)), cost>>10)
		}
	}
}

// Its turns are bounded as a chat route's items are.
func TestLegacyTranslationTurnsBounded(t *testing.T) {
	ep := legacyRoute(t)
	for turns, refused := range map[int]bool{maxItems: false, maxItems + 1: true} {
		// Text, then turns in pairs: the last mark is an Assistant: cue.
		body := `{"model":"claude-2.1","max_tokens_to_sample":10,"prompt":"a` + strings.Repeat(`\n\nHuman: a\n\nAssistant: b`, (turns-1)/2)
		if turns%2 == 0 {
			body += `\n\nHuman: a`
		}
		body += `"}`
		rq, err := ep.Format.Parse([]byte(body), 1000, true, true)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ep.Translate.Request(rq)
		if (err != nil) != refused {
			t.Errorf("%d turns: %v", turns, err)
		}
	}
}

// Splitting a legacy prompt into turns is one pass: a prompt of the most
// turns allowed, all Human: with no Assistant: mark to find, took over a
// minute of CPU when each turn searched the rest of the prompt for both
// marks (a user could keep an instance's one CPU busy with a 1 MB body).
// The bound is some hundred times what one pass takes (ten times, with
// the race detector on a loaded machine).
func TestLegacyTranslationSplitsInOnePass(t *testing.T) {
	ep := legacyRoute(t)
	for _, mark := range []string{`\n\nHuman: a`, `\n\nAssistant: a`} {
		body := `{"model":"claude-2.1","max_tokens_to_sample":10,"prompt":"` + strings.Repeat(mark, maxItems-1) + `"}`
		rq, err := ep.Format.Parse([]byte(body), 1000, true, true)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := ep.Translate.Request(rq); done <- err }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("%s × %d: not translated in 30 s", mark, maxItems-1)
		}
	}
}

// A whole native answer takes, to translate, at most what
// TranslatedAnswerCost says of its bytes (the weight the proxy's memory
// budget gives it as it is read): on every translated chat route and the
// legacy one, for answers of plain text, of HTML's characters (written
// escaped, each took six bytes: some fifty times the answer's size), of
// line separators (written escaped), and of a tool call of them.
func TestTranslatedAnswerWithinItsCost(t *testing.T) {
	const size = 1 << 20
	texts := map[string]string{
		"text":            strings.Repeat("a", size),
		"HTML":            strings.Repeat("<&>", size/3),
		"line separators": strings.Repeat("\u2028\u2029", size/6),
	}
	claude := func(block string) string {
		return `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[` + block +
			`],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":20}}`
	}
	gemini := func(part string) string {
		return `{"candidates":[{"content":{"role":"model","parts":[` + part + `]},"finishReason":"STOP","index":0}],` +
			`"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":20,"totalTokenCount":30},"modelVersion":"gemini-2.5-flash","responseId":"r1"}`
	}
	routes := translatedChats(t)
	routes["anthropic legacy"] = legacyRoute(t)
	for id, ep := range routes {
		if id == "openai-image" {
			continue // images: URLs and base64, no text to escape
		}
		for name, text := range texts {
			answers := map[string]string{
				"text": claude(`{"type":"text","text":"` + text + `"}`),
				"call": claude(`{"type":"tool_use","id":"t1","name":"f","input":{"a":"` + text + `"}}`),
			}
			if strings.Contains(id, "google") || strings.Contains(id, "gemini") {
				answers = map[string]string{
					"text": gemini(`{"text":"` + text + `"}`),
					"call": gemini(`{"functionCall":{"name":"f","args":{"a":"` + text + `"}}}`),
				}
			}
			for shape, body := range answers {
				resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {ContentJSON}},
					Body: io.NopCloser(strings.NewReader(body))}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.GC()
				runtime.ReadMemStats(&before)
				err := ep.Translate.Response(resp, &Request{Model: "m"})
				runtime.ReadMemStats(&after)
				if err != nil {
					t.Fatalf("%s, %s %s: %v", id, name, shape, err)
				}
				alloc, cost := int64(after.TotalAlloc-before.TotalAlloc), TranslatedAnswerCost([]byte(body))
				if alloc > cost {
					t.Errorf("%s, %s %s: allocated %d KiB, %.1f× the answer, over the %d KiB weighed", id, name, shape, alloc>>10, float64(alloc)/float64(len(body)), cost>>10)
				}
			}
		}
	}
}
