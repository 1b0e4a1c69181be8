package deploy_test

import (
	"slices"
	"strings"
	"testing"
)

// GCP_CREDENTIALS: adc calls Vertex AI as the functions' own account: the
// dry run enables the API and grants the account roles/aiplatform.user,
// and no secret is made of the word. A key (a Secret Manager reference)
// gets neither; a literal key is refused like any other secret.
func TestDryRunVertex(t *testing.T) {
	t.Parallel()
	sa := "serviceAccount:tollgate-functions@my-proj-123.iam.gserviceaccount.com"
	grants := func(l listing) int {
		n := 0
		for _, c := range l.find("gcloud", "projects", "add-iam-policy-binding", "my-proj-123") {
			checkFlags(t, c)
			if hasArg(c, "--role=roles/aiplatform.user") && hasArg(c, "--member="+sa) {
				n++
			}
		}
		return n
	}
	enabled := func(l listing) bool {
		return slices.ContainsFunc(l.find("gcloud", "services", "enable"), func(c []string) bool { return hasArg(c, "aiplatform.googleapis.com") })
	}

	res := runDeploy(t, baseConfig+"GCP_CREDENTIALS: adc\nGCP_REGION: europe-west1\n", nil, "--dry-run")
	if res.err != nil {
		t.Fatalf("dry run failed: %v\n%s", res.err, res.stderr)
	}
	l := parseListing(t, res.stdout)
	if grants(l) != 1 || !enabled(l) {
		t.Errorf("adc: %d aiplatform.user grants, API enabled %v; want 1 and true\n%s", grants(l), enabled(l), res.stdout)
	}
	if strings.Contains(res.stdout, "secrets create adc") || strings.Contains(res.stderr, "not a tollgate variable") {
		t.Errorf("adc taken for a secret, or GCP variables unknown:\n%s\n%s", res.stdout, res.stderr)
	}
	mustShow(t, res.stdout, `GCP_CREDENTIALS: "adc"`) // in the functions' environment

	res = runDeploy(t, baseConfig+"GCP_CREDENTIALS: sm://gcp-credentials\n", nil, "--dry-run")
	if res.err != nil {
		t.Fatalf("dry run failed: %v\n%s", res.err, res.stderr)
	}
	l = parseListing(t, res.stdout)
	if grants(l) != 0 || enabled(l) {
		t.Errorf("a key in Secret Manager: the account was granted Vertex AI anyway\n%s", res.stdout)
	}
	if len(l.find("gcloud", "secrets", "add-iam-policy-binding", "gcp-credentials")) != 1 {
		t.Errorf("the GCP_CREDENTIALS secret is not readable by the functions\n%s", res.stdout)
	}

	res = runDeploy(t, baseConfig+"GCP_CREDENTIALS: my-proj:sa@my-proj.iam.gserviceaccount.com:us-east5:MIIEv\n", nil, "--dry-run")
	if res.err == nil || !strings.Contains(res.stderr, "GCP_CREDENTIALS must be a Secret Manager reference") || strings.Contains(res.stderr, "MIIEv") {
		t.Errorf("a literal credential: err %v, stderr %s", res.err, res.stderr)
	}
}

func mustShow(t *testing.T, out, s string) {
	t.Helper()
	if !strings.Contains(out, s) {
		t.Errorf("output lacks %q:\n%s", s, out)
	}
}
