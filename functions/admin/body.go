package admin

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"tollgate.dev/tollgate/shared/users"
)

// Body limits: one user is small; an import carries a whole export.
const (
	maxUserBody   = 1 << 20  // 1 MiB
	maxImportBody = 32 << 20 // 32 MiB
)

// readJSON reads a JSON request body of at most limit bytes. It refuses a
// body that is not application/json (415) or too large (413). An empty body
// is returned as nil only when allowEmpty (then no Content-Type is needed).
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, allowEmpty bool) ([]byte, error) {
	if allowEmpty && r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil, nil
	}
	if err := checkJSONType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, &users.Error{Code: users.CodeInvalid, Message: "Could not read the request body.", Err: err}
	}
	if allowEmpty && len(data) == 0 {
		return nil, nil
	}
	return data, nil
}

// readParsed reads a JSON body as readJSON does (an empty one is refused)
// and parses it.
func readParsed[T any](w http.ResponseWriter, r *http.Request, limit int64, parse func([]byte) (T, error)) (T, error) {
	data, err := readJSON(w, r, limit, false)
	if err != nil {
		var zero T
		return zero, err
	}
	return parse(data)
}

// checkJSONType accepts application/json, with no charset or UTF-8.
func checkJSONType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return users.Errorf(users.CodeUnsupported, "Content-Type must be application/json (UTF-8).")
}

func tooLarge(limit int64) error {
	return users.Errorf(users.CodeTooLarge, "Request body too large: the limit is %d MiB.", limit>>20)
}
