// Package secrets resolves Secret Manager references held in configuration
// variables (SPEC §2 "Secrets") into the secret values, once per instance.
package secrets

import (
	"fmt"
	"regexp"
	"strings"
)

const smScheme = "sm://"

// The patterns are compiled when a reference is actually resolved (once per
// instance, and only where one is configured): compiled at package init
// they cost every cold start about 5 ms.
const (
	// secretIDPattern is Secret Manager's own rule for secret names.
	secretIDPattern = `^[A-Za-z0-9_-]{1,255}$`
	// fullNamePattern is a global (not regional) secret version. Projects
	// may be IDs, numbers or domain-scoped ("example.com:proj"); versions a
	// number, "latest" or an alias.
	fullNamePattern = `^projects/([a-z0-9][a-z0-9:.-]{0,99})/secrets/([A-Za-z0-9_-]{1,255})/versions/(latest|[1-9][0-9]*|[A-Za-z][A-Za-z0-9_-]{0,62})$`
)

// IsReference reports whether v is a Secret Manager reference:
// "sm://NAME" (latest version) or "projects/P/secrets/S/versions/V".
//
// It deliberately matches anything that looks like one (any "sm://" value,
// any "projects/…/secrets/…" path) so that a mistyped reference is reported
// by Resolve as malformed instead of silently becoming a literal key.
func IsReference(v string) bool {
	v = strings.TrimSpace(v)
	return strings.HasPrefix(v, smScheme) ||
		(strings.HasPrefix(v, "projects/") && strings.Contains(v, "/secrets/"))
}

// versionName turns a reference into the resource name AccessSecretVersion
// takes. project is used only for sm:// references; needProject reports that
// the reference is sm:// and project was empty.
func versionName(ref, project string) (name string, needProject bool, err error) {
	ref = strings.TrimSpace(ref)
	if id, ok := strings.CutPrefix(ref, smScheme); ok {
		if !regexp.MustCompile(secretIDPattern).MatchString(id) {
			return "", false, fmt.Errorf("malformed secret reference %q: expected sm://NAME with NAME of letters, digits, - and _ (or projects/P/secrets/S/versions/V)", ref)
		}
		if project == "" {
			return "", true, nil
		}
		return "projects/" + project + "/secrets/" + id + "/versions/latest", false, nil
	}
	if !regexp.MustCompile(fullNamePattern).MatchString(ref) {
		return "", false, fmt.Errorf("malformed secret reference %q: expected projects/P/secrets/S/versions/V with V a version number or latest (regional secrets are not supported)", ref)
	}
	return ref, false, nil
}
