package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestShellcheck lints every shell script in deploy/. Without shellcheck it
// skips, except in CI (CI=true), where a missing linter is a failure.
func TestShellcheck(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("shellcheck is not installed (apt-get install -y shellcheck)")
		}
		t.Skip("shellcheck is not installed")
	}
	dir := deployDir(t)
	scripts := shellScripts(t, dir)
	if len(scripts) < 2 {
		t.Fatalf("expected deploy.sh and lib.sh, found %q", scripts)
	}
	// -x follows `source` (lib.sh); severity style is the strictest level.
	cmd := exec.Command(bin, append([]string{"-x", "--severity=style", "--shell=bash"}, scripts...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out.String())
	}
}

// shellScripts lists the files in dir that are shell: *.sh or a bash shebang.
func shellScripts(t *testing.T, dir string) []string {
	t.Helper()
	var scripts []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasSuffix(path, ".sh") {
			scripts = append(scripts, rel)
			return nil
		}
		head, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(head, []byte("#!")) && bytes.Contains(bytes.SplitN(head, []byte("\n"), 2)[0], []byte("sh")) {
			scripts = append(scripts, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return scripts
}
