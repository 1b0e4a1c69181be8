package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// deployDir is this package's directory (deploy/), found from this file so
// the tests work from any working directory.
func deployDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Dir(file)
}

func repoRoot(t *testing.T) string { return filepath.Dir(deployDir(t)) }

// fakeGcloud is a gcloud stand-in: it logs every call (arguments, the stdin
// of secret writes, the --flags-file contents) and answers describes.
// FAKE_EXISTS=0 makes resources exist; functions describe prints a URL.
const fakeGcloud = `#!/usr/bin/env bash
set -u
log=$FAKE_GCLOUD_LOG
{ printf 'ARGV'; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >>"$log"
case " $* " in
*" secrets create "* | *" secrets versions add "*) printf 'STDIN\t%s\n' "$(cat)" >>"$log" ;;
esac
for a in "$@"; do
	case $a in
	--flags-file=*) printf 'FLAGSFILE\t%s\n' "$(tr '\n' '|' <"${a#--flags-file=}")" >>"$log" ;;
	--env-vars-file=*) printf 'ENVFILE\t%s\n' "$(tr '\n' '|' <"${a#--env-vars-file=}")" >>"$log" ;;
	esac
done
case "$1 $2" in
"functions describe") printf 'https://fake-%s.example\n' "$3"; exit 0 ;;
"secrets versions") if [[ $3 == access ]]; then printf '%s' "$FAKE_ADMIN_KEY"; exit 0; fi ;;
esac
case " $* " in
*" describe "*) exit "${FAKE_EXISTS:-1}" ;;
esac
exit 0
`

type runResult struct {
	stdout, stderr string
	err            error
	gcloudLog      string // empty when gcloud was never called
	tmp            string // the run's TMPDIR
}

// runDeploy runs deploy.sh with a config text, extra environment and
// arguments, a fake gcloud first on PATH and no standard input.
func runDeploy(t *testing.T, config string, env map[string]string, args ...string) runResult {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{bin, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte(fakeGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "env.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "gcloud.log")
	cmd := exec.Command("bash", append([]string{filepath.Join(deployDir(t), "deploy.sh"), "--config", cfg}, args...)...)
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + dir,
		"TMPDIR=" + tmp,
		"LANG=C.UTF-8",
		"FAKE_GCLOUD_LOG=" + logPath,
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	logText, _ := os.ReadFile(logPath)
	return runResult{stdout: stdout.String(), stderr: stderr.String(), err: err, gcloudLog: string(logText), tmp: tmp}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listing is the dry run's output taken apart: the gcloud commands (as
// argument lists) and the files it writes (heredocs), by path.
type listing struct {
	commands [][]string
	files    map[string]string
}

func parseListing(t *testing.T, out string) listing {
	t.Helper()
	l := listing{files: map[string]string{}}
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if path, ok := strings.CutPrefix(line, "cat > "); ok {
			path = strings.TrimSuffix(path, " <<'EOF'")
			var body []string
			for i++; i < len(lines) && lines[i] != "EOF"; i++ {
				body = append(body, lines[i])
			}
			l.files[path] = strings.Join(body, "\n")
			continue
		}
		if _, after, ok := strings.Cut(line, "| gcloud "); ok && strings.HasPrefix(line, "printf ") {
			line = "gcloud " + after
		}
		if !strings.HasPrefix(line, "gcloud ") {
			continue
		}
		line, _, _ = strings.Cut(line, "  # exists?")
		l.commands = append(l.commands, shellWords(t, line))
	}
	return l
}

// shellWords splits a line printed by deploy.sh: bare words and
// single-quoted words (with '\” for a quote), as a POSIX shell would.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted:
			if c == '\'' {
				quoted = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'':
			quoted, inWord = true, true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// find returns the commands that start with the given words.
func (l listing) find(prefix ...string) [][]string {
	var found [][]string
	for _, c := range l.commands {
		if len(c) >= len(prefix) && slicesEqual(c[:len(prefix)], prefix) {
			found = append(found, c)
		}
	}
	return found
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hasArg(cmd []string, arg string) bool {
	for _, a := range cmd {
		if a == arg {
			return true
		}
	}
	return false
}

// flagValue is the value of --name=value in cmd, or "" and false.
func flagValue(cmd []string, name string) (string, bool) {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
