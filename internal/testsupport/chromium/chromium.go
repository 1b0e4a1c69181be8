// Package chromium finds the headless Chromium that the browser tests
// drive through chromedp.
package chromium

import (
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path returns the browser to drive. Under CI=true a missing browser
// fails the test; elsewhere it skips.
func Path(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("CHROMIUM_PATH"), "/usr/bin/chromium"}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required under CI=true (install Debian's chromium, or set CHROMIUM_PATH)")
	}
	t.Skip("chromium not found; set CHROMIUM_PATH to run the browser test")
	return ""
}

// Options are the allocator options of the browser tests: the browser at
// Path, headless, sandbox off (CI runs as root), no background traffic, a
// fresh profile; extra options are added last.
func Options(t testing.TB, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	return append(opts, extra...)
}
