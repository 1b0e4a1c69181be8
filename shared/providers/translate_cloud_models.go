package providers

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// cloudModelsPath is where OpenAI clients list models on a cloud mount;
// Outbound sends it to the service's own model list.
const cloudModelsPath = "/v1/models"

// models translates Bedrock's ListFoundationModels to OpenAI's list. The
// ids are Bedrock model IDs, which the mount takes as they are: the
// mount's vendor's models that can be called on demand, through the
// cross-region inference profile of the credential's region (us.…, eu.…,
// apac.…) when Bedrock serves a model through profiles only. Models
// served on provisioned throughput only are left out: no request could
// name them.
func (m *bedrockModel) models() *Translation {
	return &Translation{Response: func(resp *http.Response, _ *Request) error {
		region := signedRegion(resp.Request)
		return addOpenAIList(resp, "modelSummaries", func(s gjson.Result) string {
			id := s.Get("modelId").String()
			if !servesVendor(id, m.vendor) {
				return ""
			}
			types := s.Get("inferenceTypesSupported")
			switch {
			case !types.Exists() || listHas(types, "ON_DEMAND"):
				return id
			case listHas(types, "INFERENCE_PROFILE"):
				return regionProfile(region) + "." + id
			}
			return ""
		}, m.vendor)
	}}
}

// vertexModels translates Vertex AI's publisher model list to OpenAI's,
// with the ids the mount takes: the model's name, and for Claude the
// version Vertex names it with (claude-sonnet-4-5@20250929).
func vertexModels(publisher string) *Translation {
	return &Translation{Response: func(resp *http.Response, _ *Request) error {
		return addOpenAIList(resp, "publisherModels", func(m gjson.Result) string {
			id, ok := strings.CutPrefix(m.Get("name").String(), "publishers/"+publisher+"/models/")
			if !ok || id == "" || strings.Contains(id, "/") {
				return ""
			}
			if v := m.Get("versionId").String(); publisher == "anthropic" && vertexVersionDate.MatchString(v) && !strings.Contains(id, "@") {
				id += "@" + v
			}
			return id
		}, publisher)
	}}
}

var vertexVersionDate = regexp.MustCompile(`^[0-9]{8}$`)

// addOpenAIList adds OpenAI's "data" beside a 2xx native list: one model
// per entry of the native array member whose id is not "" (each id once).
func addOpenAIList(resp *http.Response, member string, id func(gjson.Result) string, owner string) error {
	return editList(resp, func(body []byte) ([]byte, error) {
		data := []any{}
		seen := map[string]bool{}
		for _, m := range gjson.GetBytes(body, member).Array() {
			if id := id(m); id != "" && !seen[id] {
				seen[id] = true
				data = append(data, map[string]any{"id": id, "object": "model", "created": 0, "owned_by": owner})
			}
		}
		body, err := sjson.SetBytes(body, "data", data)
		if err != nil {
			return nil, err
		}
		return sjson.SetBytes(body, "object", "list")
	})
}

func listHas(list gjson.Result, s string) bool {
	for _, v := range list.Array() {
		if v.String() == s {
			return true
		}
	}
	return false
}

// signedRegion is the region a SigV4-signed request was signed for, from
// its credential scope (Credential=AKID/date/region/service/aws4_request);
// "" when it has none.
func signedRegion(req *http.Request) string {
	if req == nil {
		return ""
	}
	_, scope, ok := strings.Cut(req.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	scope, _, _ = strings.Cut(scope, ",")
	parts := strings.Split(scope, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[2]
}
