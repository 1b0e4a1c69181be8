package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"tollgate.dev/tollgate/functions/admin/ui"
	"tollgate.dev/tollgate/internal/testsupport/chromium"
	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/ratelimit"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/users/memory"
	"tollgate.dev/tollgate/shared/web"
)

// renderedBar is a chart bar as Chromium laid it out.
type renderedBar struct {
	X, Y, W, H float64
	Fill       string
	Family     string
	Tokens     int64
}

// TestBrowserConsole drives the operator console in headless Chromium:
// the charts as drawn (their bars' sizes and their pixels), the live IP
// lists, force-expire, the per-row actions, the reason edit, the stats
// download and the keys' recheck.
func TestBrowserConsole(t *testing.T) {
	up := upstreamfake.Start(t, upstreamfake.OpenAI)
	up.Set(upstreamfake.Behavior{KeyStatus: map[string]int{"sk-flaky-key-0002": 401}})
	store := memory.New()
	deps := newDeps(t, map[string]string{"EVENT_LOGGING": "true", "OPENAI_KEY": "sk-good-key-0001,sk-flaky-key-0002", "OPENAI_BASE_URL": up.URL, "TRUSTED_PROXIES": "0"}, store, time.Now)
	o := deps.ui()
	o.Lockout = ratelimit.NewLockout(5, 15*time.Minute)
	srv := httptest.NewServer(web.Mount("admin", ui.New(o)))
	defer srv.Close()

	bg := context.Background()
	svc := deps.Service()
	put := func(token, doc string) {
		p, err := users.ParsePatch([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Upsert(bg, token, p); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	exp := strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)
	put("chart-user-a", `{"nickname":"alice"}`)
	put("chart-user-b", `{"nickname":"bob"}`)
	put("temp-user-1", `{"type":"temporary","expiresAt":`+exp+`,"ip":["203.0.113.5"]}`)
	put("temp-user-2", `{"type":"temporary","expiresAt":`+exp+`,"ip":["203.0.113.6"]}`)
	event := func(token string, daysAgo int, family string, tokens int64) {
		at := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -daysAgo).Add(time.Hour)
		if at.After(now) {
			at = now
		}
		if err := store.AddEvent(bg, token, users.Event{At: at.UnixMilli(), Family: family, Input: tokens, Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	// Totals per day: 10 days ago 1000 (gpt4o), 3 days ago 400 gpt4o + 200
	// claude, today 2000 claude: four bars, today's the tallest.
	event("chart-user-a", 10, "gpt4o", 1000)
	event("chart-user-a", 3, "gpt4o", 400)
	event("chart-user-b", 3, "claude", 200)
	event("chart-user-b", 0, "claude", 1500)
	event("chart-user-a", 0, "claude", 500)

	opts := chromium.Options(t, chromedp.WindowSize(1280, 900))
	actx, cancel := context.WithTimeout(bg, 100*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(actx, opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
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
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
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
	shots := artifactsDir(t)

	navigate("open /admin", chromedp.Navigate(srv.URL+"/admin"))
	must("login", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("key")), chromedp.SendKeys(chromedp.ID("key"), adminKey)))
	navigate("submit login", chromedp.Click(chromedp.ID("login")))

	// The dashboard's chart, as drawn.
	navigate("dashboard", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/dashboard"]`)))
	checkChart(t, ctx, "#usage-chart", []renderedBar{
		{Family: "gpt4o", Tokens: 1000}, {Family: "gpt4o", Tokens: 400}, {Family: "claude", Tokens: 200}, {Family: "claude", Tokens: 2000},
	}, shots)
	if got := text("#top-users tbody tr:first-child a"); got != "alice" {
		t.Errorf("top user shown %q, want alice (1900 tokens; bob 1700)", got)
	}

	// The user page's chart: alice's days only.
	navigate("alice", chromedp.Navigate(srv.URL+"/admin/manage/users/chart-user-a"))
	checkChart(t, ctx, "#user-chart", []renderedBar{
		{Family: "gpt4o", Tokens: 1000}, {Family: "gpt4o", Tokens: 400}, {Family: "claude", Tokens: 500},
	}, shots)
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#events tbody tr").length`)); err != nil || n != 3 {
		t.Errorf("alice's events table has %d rows (%v), want 3", n, err)
	}
	// On a phone the pages with charts must not scroll sideways: the chart
	// shrinks, tables scroll in their own box.
	for _, path := range []string{"/admin/manage/users/chart-user-a", "/admin/manage/dashboard", "/admin/manage/abuse", "/admin/manage/maintenance"} {
		must("phone width", chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)))
		navigate("phone "+path, chromedp.Navigate(srv.URL+path))
		wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
		must("page width", err)
		if wide {
			t.Errorf("%s is wider than a phone screen", path)
		}
		must("desktop width", chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	}

	// Per-row actions: disable bob from the list and stay there.
	navigate("list", chromedp.Navigate(srv.URL+"/admin/manage/users?sort=nickname"))
	row := `tr[data-token="chart-user-b"]`
	asked := confirms.Load()
	navigate("row disable", chromedp.Click(chromedp.CSS(row+` button[data-action="disable"]`)))
	if confirms.Load() != asked+1 {
		t.Error("the row's disable did not ask for confirmation")
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/admin/manage/users?") || !strings.Contains(loc, "sort=nickname") {
		t.Fatalf("after the row's disable the browser is at %s", loc)
	}
	if got := text(row + " .badge"); got != "disabled" {
		t.Errorf("bob's row shows %q after disable", got)
	}
	if u, _ := store.Get(bg, "chart-user-b"); !u.Disabled() {
		t.Fatal("bob not disabled in the store")
	}
	// Change the reason on bob's page, then reactivate from the list.
	navigate("bob", chromedp.Navigate(srv.URL+"/admin/manage/users/chart-user-b"))
	must("reason", chromedp.Do(ctx, chromedp.Clear(chromedp.ID("reason-edit")), chromedp.SendKeys(chromedp.ID("reason-edit"), "shared the token")))
	navigate("save reason", chromedp.Click(chromedp.ID("save-reason")))
	if got := text("#reason"); got != "shared the token" {
		t.Errorf("reason shown %q", got)
	}
	navigate("list again", chromedp.Navigate(srv.URL+"/admin/manage/users?sort=nickname"))
	navigate("row reactivate", chromedp.Click(chromedp.CSS(row+` button[data-action="reactivate"]`)))
	if got := text(row + " .badge"); got != "active" {
		t.Errorf("bob's row shows %q after reactivate", got)
	}

	// Anti-abuse: live lists, copy as environment, force-expire.
	navigate("abuse", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/abuse"]`)))
	must("type lists", chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("whitelist"), "10.20.0.0/16"),
		chromedp.SendKeys(chromedp.ID("blacklist"), "203.0.113.66\n198.51.100.0/24"),
	))
	navigate("save lists", chromedp.Click(chromedp.ID("save-lists")))
	if got := text(".flash"); !strings.HasPrefix(got, "IP lists saved (3 entries in all)") {
		t.Errorf("lists flash %q", got)
	}
	if env, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("env-blacklist"))); err != nil || env != "IP_BLACKLIST=203.0.113.66,198.51.100.0/24" {
		t.Errorf("copy as environment: %q %v", env, err)
	}
	if l, _ := store.IPLists(bg); strings.Join(l.Blacklist, ",") != "203.0.113.66,198.51.100.0/24" || strings.Join(l.Whitelist, ",") != "10.20.0.0/16" {
		t.Errorf("stored lists %+v", l)
	}
	if got := text("#subnets tbody tr:first-child td:nth-child(2)"); got != "2" {
		t.Errorf("the /24 report counts %q temporary users in 203.0.113.0/24", got)
	}
	before := confirms.Load()
	navigate("force-expire", chromedp.Click(chromedp.ID("run-expire-all-temporary")))
	if confirms.Load() != before+1 {
		t.Error("force-expire did not ask for confirmation")
	}
	if got := text("#temp-active"); got != "0" {
		t.Errorf("after force-expire %s temporary users are active", got)
	}
	for _, tok := range []string{"temp-user-1", "temp-user-2"} {
		if u, _ := store.Get(bg, tok); !u.Disabled() {
			t.Errorf("%s not expired", tok)
		}
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	must("abuse screenshot", err)
	must("writing", os.WriteFile(filepath.Join(shots, "admin-abuse.png"), shot, 0o644))

	// Keys: one set aside; it works again after "recheck now".
	navigate("maintenance", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/maintenance"]`)))
	if got := text("#upstream-keys tbody tr td:nth-child(3)"); got != "1" {
		t.Fatalf("set aside before: %q", got)
	}
	up.Set(upstreamfake.Behavior{})
	navigate("recheck", chromedp.Click(chromedp.ID("recheck-keys")))
	if got := text("#upstream-keys tbody tr td:nth-child(3)"); got != "0" {
		t.Errorf("set aside after recheck: %q", got)
	}

	// Stats download from the dashboard's form.
	navigate("dashboard again", chromedp.Click(chromedp.CSS(`nav a[href="/admin/manage/dashboard"]`)))
	downloads := t.TempDir()
	_, err = chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: ptr(true),
	})
	must("download behaviour", err)
	begin := chromedp.BrowserEvents(ctx, browser.DownloadWillBegin)
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	must("click stats", chromedp.Do(ctx, chromedp.Click(chromedp.ID("stats-download"))))
	var guid string
	for ev, err := range begin {
		must("download start", err)
		if ev.SuggestedFilename != "stats.md" {
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
	}
	data, err := os.ReadFile(filepath.Join(downloads, guid))
	must("reading stats", err)
	if !strings.Contains(string(data), "| # | User | Prompts | Tokens | Families |") || !strings.Contains(string(data), "| User 1 |") || strings.Contains(string(data), "alice") {
		t.Errorf("stats.md (anonymised table by default):\n%s", data)
	}
}

// checkChart reads the bars of the chart sel as laid out, checks there
// are the wanted ones in order with heights in proportion to their
// tokens, then screenshots the chart and checks each bar's pixels are
// its colour and the space above the shorter bars is not.
func checkChart(t *testing.T, ctx context.Context, sel string, want []renderedBar, shots string) {
	t.Helper()
	js := `(() => { const svg = document.querySelector(` + quoteJS(sel) + `); const o = svg.getBoundingClientRect();
	  return Array.from(svg.querySelectorAll("rect.bar")).map(r => { const b = r.getBoundingClientRect();
	    return {X: b.x - o.x, Y: b.y - o.y, W: b.width, H: b.height, Fill: r.getAttribute("fill"), Family: r.dataset.family, Tokens: Number(r.dataset.tokens)}; }); })()`
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[[]renderedBar](js))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	if len(bars) != len(want) {
		t.Fatalf("%s has %d bars, want %d: %+v", sel, len(bars), len(want), bars)
	}
	tallest := bars[0]
	for _, b := range bars {
		if b.Tokens > tallest.Tokens {
			tallest = b
		}
	}
	for i, b := range bars {
		if b.Family != want[i].Family || b.Tokens != want[i].Tokens {
			t.Errorf("%s bar %d is %s %d, want %s %d", sel, i, b.Family, b.Tokens, want[i].Family, want[i].Tokens)
		}
		// Stacked bars of one day share the tallest day's scale: a bar's
		// height is its tokens over the scale's tokens per pixel.
		if b.H <= 0 || b.W <= 0 {
			t.Errorf("%s bar %d is not drawn: %+v", sel, i, b)
		}
	}
	// The scale: every bar's height per token is the same.
	perToken := bars[0].H / float64(bars[0].Tokens)
	for i, b := range bars {
		if got := b.H / float64(b.Tokens); math.Abs(got-perToken)/perToken > 0.02 {
			t.Errorf("%s bar %d: %.4f px per token, bar 0 has %.4f", sel, i, got, perToken)
		}
	}
	shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("screenshot %s: %v", sel, err)
	}
	_ = os.WriteFile(filepath.Join(shots, "chart-"+strings.TrimPrefix(sel, "#")+".png"), shot, 0o644)
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decoding the screenshot: %v", err)
	}
	scale := float64(img.Bounds().Dx()) / chartWidth(t, ctx, sel)
	for i, b := range bars {
		cx, cy := (b.X+b.W/2)*scale, (b.Y+b.H/2)*scale
		if got := hexAt(img, cx, cy); !near(got, b.Fill) {
			t.Errorf("%s bar %d (%s): the pixel at its centre is %s, want %s", sel, i, b.Family, got, b.Fill)
		}
		// Just above the top of a bar that does not fill the plot is
		// background, not bar colour.
		if b.Y > 20 {
			if got := hexAt(img, cx, (b.Y-6)*scale); near(got, b.Fill) {
				t.Errorf("%s bar %d: the pixel above it is still %s: the bar is taller than drawn", sel, i, got)
			}
		}
	}
}

func chartWidth(t *testing.T, ctx context.Context, sel string) float64 {
	w, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector(`+quoteJS(sel)+`).getBoundingClientRect().width`))
	if err != nil || w == 0 {
		t.Fatalf("width of %s: %v %v", sel, w, err)
	}
	return w
}

func hexAt(img image.Image, x, y float64) string {
	r, g, b, _ := img.At(img.Bounds().Min.X+int(x), img.Bounds().Min.Y+int(y)).RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

// near compares two #rrggbb colours within a little rendering noise.
func near(a, b string) bool {
	pa, pb := rgb(a), rgb(b)
	for i := range pa {
		if d := pa[i] - pb[i]; d > 6 || d < -6 {
			return false
		}
	}
	return true
}

func rgb(s string) [3]int {
	var out [3]int
	for i := range out {
		v, _ := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		out[i] = int(v)
	}
	return out
}
