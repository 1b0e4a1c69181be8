package deploy_test

import (
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// ignoreRule is one .gcloudignore line; the syntax is gitignore's (gcloud
// topic gcloudignore): "!" re-includes, a trailing "/" matches directories
// only, a pattern with a "/" is anchored at the root, "**" spans directories.
type ignoreRule struct {
	re      *regexp.Regexp
	negate  bool
	dirOnly bool
}

func parseIgnore(t *testing.T, text string) []ignoreRule {
	t.Helper()
	var rules []ignoreRule
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if strings.HasPrefix(line, "!") {
			r.negate, line = true, line[1:]
		}
		line = strings.TrimPrefix(line, `\`)
		if strings.HasSuffix(line, "/") {
			r.dirOnly, line = true, strings.TrimSuffix(line, "/")
		}
		anchored := strings.Contains(line, "/")
		expr := globRegexp(strings.TrimPrefix(line, "/"))
		if anchored {
			expr = "^" + expr + "$"
		} else {
			expr = "(^|/)" + expr + "$"
		}
		r.re = regexp.MustCompile(expr)
		rules = append(rules, r)
	}
	return rules
}

func globRegexp(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(glob[i:], "/**") && i+3 == len(glob):
			b.WriteString("/.*")
			i += 2
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// ignored reports whether rel (slash-separated, from the upload root) is
// left out: it or one of its parent directories matches, last rule winning.
func ignored(rules []ignoreRule, rel string, isDir bool) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i <= len(parts); i++ {
		p, dir := strings.Join(parts[:i], "/"), i < len(parts) || isDir
		out := false
		for _, r := range rules {
			if (!r.dirOnly || dir) && r.re.MatchString(p) {
				out = !r.negate
			}
		}
		if out {
			return true
		}
	}
	return false
}

func loadIgnore(t *testing.T) []ignoreRule {
	t.Helper()
	return parseIgnore(t, readFile(t, filepath.Join(repoRoot(t), ".gcloudignore")))
}

func TestGcloudignoreRules(t *testing.T) {
	t.Parallel()
	rules := loadIgnore(t)
	cases := []struct {
		path   string
		dir    bool
		ignore bool
	}{
		{"go.mod", false, false},
		{"go.sum", false, false},
		{"function.go", false, false},
		{"functions/proxy/proxy.go", false, false},
		{"functions/admin/templates/users.html", false, false},
		{"functions/admin/openapi.yaml", false, false},
		{"functions/admin/static/style.css", false, false},
		{"shared/users/user.go", false, false},
		{"shared/config/config.go", false, false},
		{"internal/warm/warm.go", false, false},
		{"function_test.go", false, true},
		{"shared/users/user_test.go", false, true},
		{"shared/users/testdata/export.json", false, true},
		{"internal/testsupport/smfake/smfake.go", false, true},
		{".git", true, true},
		{".git/config", false, true},
		{".ci/run", false, true},
		{"deploy/env.yaml", false, true},
		{"deploy/deploy.sh", false, true},
		{"cmd/local/main.go", false, true},
		{"README.md", false, true},
		{"docs/guide.md", false, true},
		{"screenshots/admin.png", false, true},
		{"artifacts/report.html", false, true},
		{"Makefile", false, true},
		{"firebase.json", false, true},
		{".env", false, true},
		{"my-project-key.json", false, true},
	}
	for _, c := range cases {
		if got := ignored(rules, c.path, c.dir); got != c.ignore {
			t.Errorf("%s: ignored = %v, want %v", c.path, got, c.ignore)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(deployDir(t), ".gitignore")), "env.yaml") {
		t.Error("deploy/.gitignore does not keep deploy/env.yaml out of git")
	}
}

// TestGcloudignoreKeepsTheBuild walks the packages the functions' build
// compiles (the root package and what it imports inside the module) and
// fails when .gcloudignore leaves out one of their sources or embedded
// files, e.g. a non-test import of internal/testsupport.
func TestGcloudignoreKeepsTheBuild(t *testing.T) {
	t.Parallel()
	problems, pkgs := buildUploadProblems(t, repoRoot(t), loadIgnore(t))
	if pkgs == 0 {
		t.Skip("no function package yet")
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("packages in the build: %d", pkgs)
}

// TestBuildUploadProblemsFindsMistakes runs the check above on a made-up
// module, so a broken check cannot pass silently.
func TestBuildUploadProblemsFindsMistakes(t *testing.T) {
	t.Parallel()
	rules := loadIgnore(t)
	files := map[string]string{
		"go.mod":      "module example.dev/m\n",
		"function.go": "package m\n\nimport _ \"example.dev/m/shared/a\"\n",
		"shared/a/a.go": "package a\n\nimport (\n\t_ \"embed\"\n\t_ \"example.dev/m/internal/testsupport/fake\"\n)\n\n" +
			"//go:embed templates/*.html testdata/x.json\nvar f string\n",
		"shared/a/templates/page.html":      "<p>",
		"shared/a/testdata/x.json":          "{}",
		"shared/a/a_test.go":                "package a\n\nimport _ \"example.dev/m/cmd/local\"\n",
		"internal/testsupport/fake/fake.go": "package fake\n",
		"cmd/local/main.go":                 "package main\n",
	}
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, content)
	}
	problems, pkgs := buildUploadProblems(t, root, rules)
	if pkgs != 3 {
		t.Errorf("walked %d packages, want 3 (root, shared/a, internal/testsupport/fake)", pkgs)
	}
	sort.Strings(problems)
	want := []string{"internal/testsupport/fake is built but", "embeds shared/a/testdata/x.json"}
	if len(problems) != len(want) {
		t.Fatalf("problems = %q, want %d", problems, len(want))
	}
	for i, w := range want {
		if !strings.Contains(problems[i], w) {
			t.Errorf("problem %d = %q, want it to mention %q", i, problems[i], w)
		}
	}
}

// buildUploadProblems lists what the build needs that is not uploaded, and
// how many packages the build has.
func buildUploadProblems(t *testing.T, root string, rules []ignoreRule) (problems []string, pkgs int) {
	t.Helper()
	module := modulePath(t, root)
	var queue []string
	if len(goSources(root, ".", rules)) > 0 {
		queue = append(queue, ".")
	} else {
		// Before function.go exists, start from the function packages.
		entries, _ := os.ReadDir(filepath.Join(root, "functions"))
		for _, e := range entries {
			if e.IsDir() {
				queue = append(queue, "functions/"+e.Name())
			}
		}
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		if seen[pkg] {
			continue
		}
		seen[pkg] = true
		files := goSources(root, pkg, rules)
		if len(files) == 0 {
			problems = append(problems, fmt.Sprintf("package %s is built but .gcloudignore uploads none of its sources", pkg))
			continue
		}
		for _, f := range files {
			rel := path.Join(pkg, f)
			src := readFile(t, filepath.Join(root, rel))
			parsed, err := parser.ParseFile(token.NewFileSet(), rel, src, parser.ImportsOnly)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", rel, err))
				continue
			}
			for _, imp := range parsed.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if dep, ok := strings.CutPrefix(p, module+"/"); ok {
					queue = append(queue, dep)
				}
			}
			problems = append(problems, embedProblems(root, pkg, rel, src, rules)...)
		}
	}
	return problems, len(seen)
}

// goSources lists pkg's uploaded non-test Go files.
func goSources(root, pkg string, rules []ignoreRule) []string {
	entries, err := os.ReadDir(filepath.Join(root, pkg))
	if err != nil {
		return nil
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		if !ignored(rules, path.Join(pkg, n), false) {
			files = append(files, n)
		}
	}
	return files
}

var embedLine = regexp.MustCompile(`(?m)^//go:embed\s+(.+)$`)

// embedProblems lists the files a //go:embed in src matches that are not
// uploaded.
func embedProblems(root, pkg, rel, src string, rules []ignoreRule) []string {
	var problems []string
	for _, m := range embedLine.FindAllStringSubmatch(src, -1) {
		for _, pat := range strings.Fields(m[1]) {
			pat = strings.TrimPrefix(strings.Trim(pat, "\"`"), "all:")
			matches, _ := filepath.Glob(filepath.Join(root, pkg, filepath.FromSlash(pat)))
			if len(matches) == 0 {
				problems = append(problems, fmt.Sprintf("%s: //go:embed %s matches nothing", rel, pat))
			}
			for _, match := range matches {
				_ = filepath.WalkDir(match, func(p string, d os.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					r, _ := filepath.Rel(root, p)
					if r = filepath.ToSlash(r); ignored(rules, r, false) {
						problems = append(problems, fmt.Sprintf("%s embeds %s, which .gcloudignore leaves out", rel, r))
					}
					return nil
				})
			}
		}
	}
	return problems
}

func modulePath(t *testing.T, root string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^module\s+(\S+)`).FindStringSubmatch(readFile(t, filepath.Join(root, "go.mod")))
	if m == nil {
		t.Fatal("no module line in go.mod")
	}
	return m[1]
}
