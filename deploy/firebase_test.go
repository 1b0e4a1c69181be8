package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

type firebaseConfig struct {
	Database struct {
		Rules string `json:"rules"`
	} `json:"database"`
	Hosting struct {
		Public   string `json:"public"`
		Rewrites []struct {
			Source   string `json:"source"`
			Function struct {
				FunctionID string `json:"functionId"`
				Region     string `json:"region"`
			} `json:"function"`
		} `json:"rewrites"`
	} `json:"hosting"`
	Emulators struct {
		Database struct {
			Host string `json:"host"`
			Port int    `json:"port"`
		} `json:"database"`
	} `json:"emulators"`
}

func decodeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDatabaseRulesDenyAll(t *testing.T) {
	t.Parallel()
	var rules map[string]map[string]any
	decodeJSONFile(t, filepath.Join(repoRoot(t), "database.rules.json"), &rules)
	if len(rules) != 1 || rules["rules"] == nil {
		t.Fatalf("want exactly a top-level \"rules\" object, got %v", rules)
	}
	// Only the two root rules, both false: no child path re-opens access
	// (the Admin SDK bypasses rules, clients get nothing).
	want := map[string]any{".read": false, ".write": false}
	if len(rules["rules"]) != len(want) {
		t.Errorf("rules hold more than .read/.write: %v", rules["rules"])
	}
	for k, v := range want {
		if rules["rules"][k] != v {
			t.Errorf("rules[%q] = %v, want %v", k, rules["rules"][k], v)
		}
	}
}

func TestFirebaseJSON(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	var cfg firebaseConfig
	decodeJSONFile(t, filepath.Join(root, "firebase.json"), &cfg)

	if cfg.Database.Rules != "database.rules.json" {
		t.Errorf("database.rules = %q, want database.rules.json", cfg.Database.Rules)
	}
	if cfg.Emulators.Database.Port != 9000 || cfg.Emulators.Database.Host != "127.0.0.1" {
		t.Errorf("database emulator at %s:%d, want 127.0.0.1:9000", cfg.Emulators.Database.Host, cfg.Emulators.Database.Port)
	}
	if _, err := os.Stat(filepath.Join(root, cfg.Hosting.Public, "index.html")); err != nil {
		t.Errorf("hosting public dir %q has no index.html: %v", cfg.Hosting.Public, err)
	}

	// The rewrites must point at the region the deploy uses.
	region := exampleSetting(t, "DEPLOY_REGION")
	got := map[string]string{}
	for _, r := range cfg.Hosting.Rewrites {
		if r.Function.Region != region {
			t.Errorf("rewrite %s: region %q, want %q (deploy/env.example.yaml)", r.Source, r.Function.Region, region)
		}
		got[r.Source] = r.Function.FunctionID
	}
	for source, fn := range map[string]string{
		"/proxy/**": "proxy", "/proxy": "proxy",
		"/admin/**": "admin", "/admin": "admin",
		"/user/**": "proxy", "/user": "proxy", // the self-service pages, as the original's URLs
	} {
		if got[source] != fn {
			t.Errorf("rewrite %s -> %q, want function %s", source, got[source], fn)
		}
	}
}

// exampleSetting reads KEY's plain value from deploy/env.example.yaml.
func exampleSetting(t *testing.T, key string) string {
	t.Helper()
	text := readFile(t, filepath.Join(deployDir(t), "env.example.yaml"))
	m := regexp.MustCompile(`(?m)^` + key + `: *(\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("%s not in env.example.yaml", key)
	}
	return strings.Trim(m[1], `"'`)
}
