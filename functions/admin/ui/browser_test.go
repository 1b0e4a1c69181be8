package ui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"tollgate.dev/tollgate/functions/admin/ui"
	"tollgate.dev/tollgate/functions/proxy/lookup"
	"tollgate.dev/tollgate/internal/testsupport/chromium"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// artifactsDir is where screenshots go: $ARTIFACTS_DIR, else a temp dir,
// never the repository.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "tollgate-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowser drives the admin UI and the self-service page in a real
// headless Chromium, the way an operator and a user would.
func TestBrowser(t *testing.T) {
	started := time.Now()

	deps := newDeps(t, nil, nil, time.Now)
	o := deps.ui()
	o.Lockout = ratelimit.NewLockout(5, 15*time.Minute)
	admin := web.Mount("admin", ui.New(o))
	proxy := web.Mount("proxy", lookup.New(deps.lookup()))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/proxy/") {
			proxy.ServeHTTP(w, r)
			return
		}
		admin.ServeHTTP(w, r)
	}))
	defer srv.Close()

	opts := chromium.Options(t, chromedp.WindowSize(1280, 900))
	actx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(actx, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}

	// Accept every confirm() the UI asks, counting them.
	var confirms atomic.Int32
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			confirms.Add(1)
			if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				return
			}
		}
	}()

	// Any console error (a CSP violation, a script error, a failed asset)
	// fails the test at the end.
	var consoleMu sync.Mutex
	var consoleErrors []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				consoleMu.Lock()
				consoleErrors = append(consoleErrors, m.String())
				consoleMu.Unlock()
			}
		}
	}()
	defer func() {
		consoleMu.Lock()
		defer consoleMu.Unlock()
		for _, m := range consoleErrors {
			t.Errorf("browser console: %s", m)
		}
	}()

	shots := artifactsDir(t)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// navigate runs steps that load a page and checks it answered 200.
	navigate := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		resp, err := chromedp.RunResponse(ctx, steps...)
		must(what, err)
		if resp.Status != http.StatusOK {
			t.Fatalf("%s: status %d (%s)", what, resp.Status, resp.URL)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		must("reading "+sel, err)
		return strings.TrimSpace(s)
	}
	screenshot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		must("screenshot "+name, err)
		must("writing "+name, os.WriteFile(filepath.Join(shots, name), buf, 0o644))
		t.Logf("screenshot: %s", filepath.Join(shots, name))
	}
	// choose sets a <select> as a person would, so its change handler runs.
	choose := func(id, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById(` + quoteJS(id) + `); s.value = ` + quoteJS(value) + `; s.dispatchEvent(new Event("change")); })()`)
	}

	// Log in.
	navigate("open /admin", chromedp.Navigate(srv.URL+"/admin"))
	must("login", chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), adminKey),
	))
	navigate("submit login", chromedp.Click(chromedp.ID("login")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(loc, "/admin/manage/users") {
		t.Fatalf("after login at %s", loc)
	}

	// Create a temporary user.
	navigate("new user page", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/new"]`)))
	must("fill new user", chromedp.Do(ctx,
		choose("type", "temporary"),
		chromedp.WaitVisible(chromedp.ID("duration")),
		chromedp.Clear(chromedp.ID("duration")),
		chromedp.SendKeys(chromedp.ID("duration"), "3"),
		chromedp.SendKeys(chromedp.ID("nickname"), "browser guest"),
		chromedp.SendKeys(chromedp.CSS(`input[name="limit:claude"]`), "5000"),
	))
	screenshot("admin-new-user.png")
	navigate("create", chromedp.Click(chromedp.ID("create")))
	token := text("#token")
	u, err := deps.Store.Get(ctx, token)
	must("created user", err)
	if u.Type != users.Temporary || u.TokenLimits["claude"] != 5000 || (time.Duration(u.ExpiresAt-u.CreatedAt)*time.Millisecond-3*time.Hour).Abs() > time.Second {
		t.Fatalf("created %+v", u)
	}

	// Find it in the list, open it.
	navigate("list", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/users"]`)))
	row := `tr[data-token="` + token + `"]`
	must("row", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(row))))
	if got := text(row + " td:nth-child(2)"); got != "browser guest" {
		t.Fatalf("list shows nickname %q", got)
	}
	navigate("open user", chromedp.Click(chromedp.CSS(row+" a.token")))
	if got := text("#token"); got != token {
		t.Fatalf("user page shows %q", got)
	}
	screenshot("admin-user-page.png")
	must("phone width", chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)))
	screenshot("admin-user-page-phone.png")
	// On a phone the page must not scroll sideways: only tables may.
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	must("page width", err)
	if wide {
		t.Error("the user page is wider than a phone screen")
	}
	must("desktop width", chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))

	// Edit its nickname.
	navigate("edit page", chromedp.Click(chromedp.ID("edit")))
	must("edit nickname", chromedp.Do(ctx,
		chromedp.Clear(chromedp.ID("nickname")),
		chromedp.SendKeys(chromedp.ID("nickname"), "renamed guest"),
	))
	screenshot("admin-edit-user.png")
	navigate("save", chromedp.Click(chromedp.ID("save")))
	if got := text("dd#nickname"); got != "renamed guest" {
		t.Fatalf("after edit the page shows %q", got)
	}

	// Disable (with a reason) and reactivate; both ask for confirmation.
	must("reason", chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("disable-reason"), "browser test")))
	navigate("disable", chromedp.Click(chromedp.ID("disable")))
	if got := text("#reason"); got != "browser test" {
		t.Fatalf("disabled reason shown %q", got)
	}
	if u, _ := deps.Store.Get(ctx, token); !u.Disabled() {
		t.Fatal("not disabled in the store")
	}
	navigate("reactivate", chromedp.Click(chromedp.ID("reactivate")))
	must("reactivated", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("disable"))))
	if u, _ := deps.Store.Get(ctx, token); u.Disabled() {
		t.Fatal("still disabled in the store")
	}

	// Import the fixture.
	fixture, err := filepath.Abs("testdata/original-users-export.json")
	must("fixture path", err)
	navigate("import page", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/import"]`)))
	must("choose file", chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("file"), []string{fixture})))
	navigate("import", chromedp.Click(chromedp.ID("import")))
	if got := text(".flash"); got != "Imported 4 users." {
		t.Fatalf("import says %q", got)
	}
	if n := confirms.Load(); n < 3 {
		t.Errorf("%d confirmations asked, want one each for disable, reactivate and import", n)
	}

	// Download the export.
	downloads := t.TempDir()
	_, err = chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: ptr(true),
	})
	must("download behaviour", err)
	begin := chromedp.BrowserEvents(ctx, browser.DownloadWillBegin)
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	must("click export", chromedp.Do(ctx, chromedp.Click(chromedp.ID("export"))))
	var guid string
	for ev, err := range begin {
		must("download start", err)
		if ev.SuggestedFilename != "users.json" {
			t.Errorf("download named %q", ev.SuggestedFilename)
		}
		guid = ev.GUID
		break
	}
	for ev, err := range progress {
		must("download", err)
		if ev.GUID == guid && ev.State == browser.DownloadProgressStateCompleted {
			break
		}
		if ev.GUID == guid && ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("download cancelled")
		}
	}
	data, err := os.ReadFile(filepath.Join(downloads, guid))
	must("reading the download", err)
	exported := usersByToken(t, data)
	if len(exported) != 5 || exported[token]["nickname"] != "renamed guest" || exported["8d5f0b9e-3c1a-4f7e-9b2d-6a1e2c3d4f50"]["nickname"] != "night owl" {
		pretty, _ := json.MarshalIndent(exported, "", " ")
		t.Fatalf("export:\n%s", pretty)
	}

	navigate("list after import", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/users"]`)))
	screenshot("admin-users-list.png")

	// Log out; the pages are closed again.
	navigate("logout", chromedp.Click(chromedp.ID("logout")))
	if got := text(".flash"); got != "You are logged out." {
		t.Fatalf("logout says %q", got)
	}
	navigate("closed", chromedp.Navigate(srv.URL+"/admin/manage/users"))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/admin/login") {
		t.Fatalf("after logout /manage/users shows %s", loc)
	}

	// Self-service: the user looks the token up and renames itself.
	navigate("lookup page", chromedp.Navigate(srv.URL+"/proxy/user/lookup"))
	must("enter token", chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), token)))
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("lookup")))
	must("look up", err)
	if resp.Status != http.StatusOK || strings.Contains(resp.URL, token) {
		t.Fatalf("lookup answered %d at %s", resp.Status, resp.URL)
	}
	if got, want := text("#masked"), "…"+token[len(token)-4:]; got != want {
		t.Fatalf("masked token %q, want %q", got, want)
	}
	if got := text("dd#nickname"); got != "renamed guest" {
		t.Fatalf("lookup shows nickname %q", got)
	}
	must("new nickname", chromedp.Do(ctx,
		chromedp.Clear(chromedp.ID("new-nickname")),
		chromedp.SendKeys(chromedp.ID("new-nickname"), "self named"),
	))
	navigate("save nickname", chromedp.Click(chromedp.ID("save-nickname")))
	if got := text(".flash"); got != "Nickname saved." {
		t.Fatalf("rename says %q", got)
	}
	screenshot("lookup-page.png")
	if u, _ := deps.Store.Get(ctx, token); u.Nickname != "self named" {
		t.Fatalf("nickname in the store: %q", u.Nickname)
	}
	t.Logf("browser session took %s", time.Since(started).Round(time.Millisecond))
}

func ptr[T any](v T) *T { return &v }

func quoteJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
