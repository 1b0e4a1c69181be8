package captcha_test

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/argon2"

	"tollgate.dev/tollgate/functions/proxy"
	"tollgate.dev/tollgate/internal/testsupport/chromium"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/pow"
	"tollgate.dev/tollgate/shared/users/memory"
)

// TestBrowserEarnsAndUsesAToken opens /user/captcha under the /proxy
// prefix (as Firebase Hosting serves it) in headless Chromium, lets the
// page solve a real challenge (default argon2id cost, low work factor) in
// its Web Workers, reads the token from the page and uses it through the
// proxy to a fake upstream; then extends it on the same page.
func TestBrowserEarnsAndUsesAToken(t *testing.T) {
	up := upstreamfake.Start(t, upstreamfake.OpenAI)
	cfg := loadConfig(t, map[string]string{
		"POW_DIFFICULTY_LEVEL":   "4",
		"OPENAI_KEY":             "sk-upstream-key",
		"OPENAI_BASE_URL":        up.URL,
		"TEXT_MODEL_RATE_LIMIT":  "0",
		"USER_CONCURRENCY_LIMIT": "0",
	})
	clk := newClock()
	store := memory.New()
	srv := httptest.NewServer(proxy.New(proxy.Deps{Config: cfg, Store: store, Log: logging.New(io.Discard, "info"), Now: clk.Now}))
	defer srv.Close()

	opts := chromium.Options(t)
	actx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(actx, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}

	// Every request the page makes is to this server: nothing else.
	var mu sync.Mutex
	var foreign []string
	var consoleErrs []string
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				consoleErrs = append(consoleErrs, m.Text)
				mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range chromedp.Events(ctx, network.RequestWillBeSent) {
			if err != nil {
				return
			}
			if u := ev.Request.URL; !strings.HasPrefix(u, srv.URL+"/") && !strings.HasPrefix(u, "data:") {
				mu.Lock()
				foreign = append(foreign, u)
				mu.Unlock()
			}
		}
	}()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("%s: %v\npage:\n%s", what, err, text)
		}
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID(id)))
		must("read #"+id, err)
		return strings.TrimSpace(s)
	}
	// waitResult waits for the result section with the given title, or
	// fails with the page's error.
	waitResult := func(title string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => {
			const err = document.getElementById("error");
			if (!err.hidden && err.textContent) throw new Error("page error: " + err.textContent);
			return !document.getElementById("result").hidden && document.getElementById("result-title").textContent === `+"`"+title+"`"+`;
		})()`, chromedp.WithPollingTimeout(100*time.Second), chromedp.WithPollingInterval(200*time.Millisecond)))
		must("waiting for "+title, err)
	}

	must("open the page", chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/proxy/user/captcha"),
		chromedp.WaitVisible(chromedp.ID("start")),
		chromedp.Click(chromedp.ID("start")),
	))
	waitResult("Your token")
	token := text("token")
	if status := text("hashes"); !strings.Contains(status, "hashes of about 4 expected") {
		t.Errorf("progress line = %q", status)
	}
	u, err := store.Get(ctx, token)
	if err != nil {
		t.Fatalf("the token shown (%q) is not in the store: %v", token, err)
	}
	if text("quotas") == "" || !strings.Contains(text("quotas"), "gpt4o") {
		t.Errorf("quota table = %q", text("quotas"))
	}

	// The token works through the proxy.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/proxy/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || up.Count() != 1 {
		t.Fatalf("proxied request with the earned token: %d %s (upstream saw %d)", resp.StatusCode, body, up.Count())
	}
	if got := up.Last(t).Header.Get("Authorization"); got != "Bearer sk-upstream-key" {
		t.Errorf("upstream got Authorization %q, want the operator's key", got)
	}

	// Extend it on the same page a minute later.
	clk.Advance(time.Minute)
	must("refresh", chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("refresh-token"), token),
		chromedp.Click(chromedp.ID("refresh")),
	))
	waitResult("Your token, extended")
	if got := text("token"); got != token {
		t.Errorf("refresh showed token %q, want %q", got, token)
	}
	after, err := store.Get(ctx, token)
	if err != nil || after.ExpiresAt != clk.Now().Add(24*time.Hour).UnixMilli() || after.ExpiresAt <= u.ExpiresAt {
		t.Errorf("after the refresh: expiresAt %d (was %d), %v", after.ExpiresAt, u.ExpiresAt, err)
	}

	// The browser's argon2id is Go's: hash one input with the page's own
	// copy of hash-wasm and compare.
	salt := strings.Repeat("ab", 32)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`new Promise((resolve, reject) => {
		const s = document.createElement("script");
		s.src = "captcha/argon2.umd.min.js";
		s.onload = () => hashwasm.argon2id({password: "12345", salt: new Uint8Array(32).fill(0xab),
			parallelism: 1, iterations: 8, memorySize: 65536, hashLength: 32, outputType: "hex"}).then(resolve, reject);
		s.onerror = () => reject(new Error("script blocked"));
		document.head.append(s);
	})`, chromedp.EvalAwaitPromise))
	must("hash in the browser", err)
	saltBytes, _ := hex.DecodeString(salt)
	p := pow.DefaultParams
	if want := hex.EncodeToString(argon2.IDKey([]byte("12345"), saltBytes, p.Time, p.MemoryKiB, p.Threads, p.HashLen)); got != want {
		t.Errorf("hash-wasm argon2id = %s, Go argon2.IDKey = %s", got, want)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(foreign) > 0 {
		t.Errorf("the page made requests to other origins: %v", foreign)
	}
	if len(consoleErrs) > 0 {
		t.Errorf("console errors: %v", consoleErrs)
	}
}
