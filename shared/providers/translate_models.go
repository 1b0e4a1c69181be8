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
