package admin

import (
	_ "embed"
	"io"
	"net/http"
	"strconv"
)

// openAPIPath serves the document; it is public (within ADMIN_WHITELIST)
// so that tools can fetch it without the key.
const openAPIPath = "/openapi.yaml"

// openAPI is the API's contract; openapi_test.go checks every response of
// the code against it.
//
//go:embed openapi.yaml
var openAPI string

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPI)))
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = io.WriteString(w, openAPI)
}
