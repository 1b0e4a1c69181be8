package proxy

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"tollgate.dev/tollgate/internal/testsupport/upstreamfake"
	"tollgate.dev/tollgate/shared/users"
)

// The model lists of OpenAI's API (OpenAI, Azure OpenAI, Mistral) leave
// out the account's own models: fine-tunes, whose ids and owners name
// the operator's organisation, user or resource, and what that
// organisation owns. The list is otherwise the upstream's, entry for
// entry, in OpenAI's shape; one of those models asked for by id is
// answered as a model that does not exist.
func TestModelListsHideTheAccountsModels(t *testing.T) {
	e, _ := paidMounts(t, nil)
	tk := e.user(users.Patch{})
	list := func(path string) (ids []string, entries []map[string]any) {
		t.Helper()
		a := e.do(call{method: http.MethodGet, path: path, header: bearerH(tk)})
		if a.status != 200 {
			t.Fatalf("%s: %d %s", path, a.status, a.body)
		}
		var l struct {
			Object string           `json:"object"`
			Data   []map[string]any `json:"data"`
		}
		if err := json.Unmarshal(a.body, &l); err != nil || l.Object != "list" {
			t.Fatalf("%s: not OpenAI's list (%v): %s", path, err, a.body)
		}
		for _, leak := range []string{"ft:", ".ft-", "acme", "user-Q2w3", "587a6b29", "ftjob"} {
			if strings.Contains(string(a.body), leak) {
				t.Errorf("%s: the list shows %q: %s", path, leak, a.body)
			}
		}
		for _, m := range l.Data {
			ids = append(ids, m["id"].(string))
		}
		return ids, l.Data
	}

	ids, entries := list("/proxy/openai/v1/models")
	if want := []string{"gpt-4.1", "gpt-5"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("OpenAI list %v, want %v", ids, want)
	}
	// The entries kept are the upstream's, member for member.
	for _, m := range entries {
		for _, up := range upstreamfake.OpenAIModels() {
			if up["id"] == m["id"] {
				b, _ := json.Marshal(up)
				var want map[string]any
				_ = json.Unmarshal(b, &want)
				if !reflect.DeepEqual(m, want) {
					t.Errorf("entry %v, upstream's %v", m, want)
				}
			}
		}
	}
	if ids, _ := list("/proxy/mistral-ai/v1/models"); !reflect.DeepEqual(ids, []string{"mistral-large-latest", "mistral-small-latest"}) {
		t.Errorf("Mistral list %v", ids)
	}
	if ids, _ := list("/proxy/azure/openai/v1/models"); len(ids) != 5 || ids[0] != "gpt-35-turbo" {
		t.Errorf("Azure list %v: the resource's base models are kept", ids)
	}

	for _, id := range []string{"ft:gpt-4o-mini-2024-07-18:acme-corp:support-bot:AbC123xy", "ft:gpt-4.1-2025-04-14:acme-corp::BXyz123:ckpt-step-100"} {
		a := e.do(call{method: http.MethodGet, path: "/proxy/openai/v1/models/" + id, header: bearerH(tk)})
		if a.status != 404 || strings.Contains(string(a.body), "acme") || strings.Contains(string(a.body), "user-") {
			t.Errorf("%s: %d %s", id, a.status, a.body)
			continue
		}
		openAIShape(t, a)
	}
	a := e.do(call{method: http.MethodGet, path: "/proxy/openai/v1/models/gpt-5", header: bearerH(tk)})
	if a.status != 200 || a.json(t)["id"] != "gpt-5" {
		t.Errorf("a model of OpenAI's: %d %s", a.status, a.body)
	}
}
