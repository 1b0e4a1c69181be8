package providers

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Model lists answer both the provider's SDKs and OpenAI clients: the
// native list is kept whole and OpenAI's members are added beside it
// ("object":"list" and a "data" array of {id, object, created, owned_by}).

// AnthropicModels adds OpenAI's members to Anthropic's model list: its
// "data" entries gain object, created and owned_by.
var AnthropicModels = &Translation{Response: func(resp *http.Response, _ *Request) error {
	return editList(resp, func(body []byte) ([]byte, error) {
		var err error
		for i, m := range gjson.GetBytes(body, "data").Array() {
			at := "data." + strconv.Itoa(i) + "."
			created := int64(0)
			if t, perr := time.Parse(time.RFC3339, m.Get("created_at").String()); perr == nil {
				created = t.Unix()
			}
			for k, v := range map[string]any{"object": "model", "created": created, "owned_by": "anthropic"} {
				if body, err = sjson.SetBytes(body, at+k, v); err != nil {
					return nil, err
				}
			}
		}
		return sjson.SetBytes(body, "object", "list")
	})
}}

// GoogleModels adds OpenAI's "data" to Gemini's model list ("models").
var GoogleModels = &Translation{Response: func(resp *http.Response, _ *Request) error {
	return editList(resp, func(body []byte) ([]byte, error) {
		data := []any{}
		for _, m := range gjson.GetBytes(body, "models").Array() {
			id := strings.TrimPrefix(m.Get("name").String(), "models/")
			data = append(data, map[string]any{"id": id, "object": "model", "created": 0, "owned_by": "google"})
		}
		body, err := sjson.SetBytes(body, "data", data)
		if err != nil {
			return nil, err
		}
		return sjson.SetBytes(body, "object", "list")
	})
}}

// editList edits a 2xx JSON model list; other answers pass unchanged.
func editList(resp *http.Response, edit func([]byte) ([]byte, error)) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil
	}
	body, err := readNative(resp)
	if err != nil {
		return err
	}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return errNotList
	}
	if body, err = edit(body); err != nil {
		return err
	}
	setJSON(resp, body)
	return nil
}

var errNotList = errorString("the model list is not a JSON object")

type errorString string

func (e errorString) Error() string { return string(e) }

// OpenAIModels keeps out of the model lists of OpenAI's API (OpenAI,
// Azure OpenAI, Mistral and the gateways OPENAI_BASE_URL names) the models
// of the operator's own account: fine-tunes, whose ids and owned_by name
// the operator's organisation, user or resource. Every other entry, and
// every other member of the list, is kept as the upstream wrote it.
var OpenAIModels = &Translation{Response: func(resp *http.Response, _ *Request) error {
	return editList(resp, func(body []byte) ([]byte, error) {
		data := gjson.GetBytes(body, "data")
		if !data.IsArray() {
			return body, nil
		}
		// The owners of the account's fine-tunes (and the organisation
		// their ids name) own nothing else anyone may see.
		owners := map[string]bool{}
		data.ForEach(func(_, m gjson.Result) bool {
			if accountModel(m, nil) {
				m.ForEach(func(k, v gjson.Result) bool {
					switch s := strings.ToLower(v.String()); k.String() {
					case "owned_by":
						owners[s] = s != ""
					case "id":
						if parts := strings.Split(s, ":"); len(parts) > 2 && parts[0] == "ft" && parts[2] != "" {
							owners[parts[2]] = true
						}
					}
					return true
				})
			}
			return true
		})
		kept := make([]byte, 0, len(data.Raw))
		kept = append(kept, '[')
		dropped := false
		data.ForEach(func(_, m gjson.Result) bool {
			if accountModel(m, owners) {
				dropped = true
				return true
			}
			if len(kept) > 1 {
				kept = append(kept, ',')
			}
			kept = append(kept, m.Raw...)
			return true
		})
		if !dropped {
			return body, nil
		}
		return sjson.SetRawBytes(body, "data", append(kept, ']'))
	})
}}

// OpenAIModel answers one model of the operator's account (accountModel)
// as the upstream answers a model that does not exist: 404, in OpenAI's
// error shape.
var OpenAIModel = &Translation{Response: func(resp *http.Response, _ *Request) error {
	return editList(resp, func(body []byte) ([]byte, error) {
		m := gjson.ParseBytes(body)
		if !accountModel(m, nil) {
			return body, nil
		}
		resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
		return MustJSON(map[string]any{"error": map[string]any{
			"message": "The model does not exist or you do not have access to it.",
			"type":    "invalid_request_error", "param": nil, "code": "model_not_found"}}), nil
	})
}}

// accountModel reports a model list entry of the account's own: a
// fine-tune by its id (OpenAI's and Mistral's "ft:…", Azure's "….ft-…"),
// by Mistral's type "fine-tuned", by Azure's fine_tune job or base
// model members, or a model owned by an OpenAI organisation or user
// ("org-…", "user-…") rather than by OpenAI ("openai", "system", …), or
// by one of owners (lower case). Every occurrence of a member is read,
// whichever a client keeps.
func accountModel(m gjson.Result, owners map[string]bool) bool {
	if !m.IsObject() {
		return false
	}
	own := false
	m.ForEach(func(k, v gjson.Result) bool {
		s := strings.ToLower(v.String())
		switch k.String() {
		case "id", "root":
			own = strings.HasPrefix(s, "ft:") || strings.Contains(s, ".ft-") || strings.Contains(s, ":ft-")
		case "owned_by":
			own = strings.HasPrefix(s, "org-") || strings.HasPrefix(s, "user-") || strings.HasPrefix(s, "ft:") || owners[s]
		case "type":
			own = s == "fine-tuned"
		case "fine_tune", "model":
			// Azure: a fine-tune names its job and its base model; a base
			// model names neither (its capabilities say whether it can be
			// fine-tuned).
			own = v.Type == gjson.String && s != ""
		case "job":
			// Mistral: the fine-tuning job that made the model.
			own = v.Type == gjson.String && s != ""
		}
		return !own
	})
	return own
}
