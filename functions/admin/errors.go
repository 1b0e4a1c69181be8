package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"tollgate.dev/tollgate/shared/web"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
)

// errorBody is the API's error shape.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string        `json:"message"`
	Issues  []users.Issue `json:"issues,omitempty"`
}

// fail writes err as {"error":{"message","issues"?}} with its status. An
// error that is not an *users.Error is an internal one: clients see only
// "Internal error.", the log line gets a redacted cause.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, code, msg, logText := web.Failure(err)
	logging.FromContext(r.Context()).SetError(logText)
	if e.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfterSeconds))
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate admin"`)
	}
	body := errorBody{Error: errorDetail{Message: msg}}
	if code == http.StatusBadRequest {
		body.Error.Issues = e.Issues
	}
	writeJSON(w, code, body)
}

// writeJSON writes v with status. Encoding our own types cannot fail.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":{"message":"Internal error."}}`)
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// invalid builds a 400 error listing issues, worded like the users
// package's own.
func invalid(issues []users.Issue) error {
	if len(issues) == 1 {
		return &users.Error{Code: users.CodeInvalid, Issues: issues,
			Message: fmt.Sprintf("Invalid value at %s: %s", issues[0].Path, issues[0].Message)}
	}
	return &users.Error{Code: users.CodeInvalid, Issues: issues,
		Message: fmt.Sprintf("Invalid user: %d problems, first at %s: %s", len(issues), issues[0].Path, issues[0].Message)}
}
