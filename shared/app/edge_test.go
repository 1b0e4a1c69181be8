package app_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyEdgesImportApp: the functions receive their dependencies; none
// of their packages (tests included) may import the builder, even
// indirectly.
func TestOnlyEdgesImportApp(t *testing.T) {
	const builder = "tollgate.dev/tollgate/shared/app"
	out, err := exec.Command("go", "list", "-test", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../../functions/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 5 {
		t.Fatalf("go list listed %d packages: %s", len(lines), out)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, " ")
		for imp := range strings.FieldsSeq(imports) {
			if imp == builder {
				t.Errorf("%s imports %s", pkg, builder)
			}
		}
	}
}
