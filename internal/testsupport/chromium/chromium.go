// Package chromium finds the headless Chromium that the browser tests
// drive through chromedp.
package chromium

import (
	"os"
	"os/exec"
	"testing"
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
