package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

type importPage struct {
	*layout
	Count int
}

func (h *handler) importForm(w http.ResponseWriter, r *http.Request, s session) {
	h.render(w, r, http.StatusOK, "import", &importPage{layout: h.layout(r, &s, "Import and export", "import")})
}

// importUsers upserts the uploaded users.json, all or nothing, through the
// same parser and service call as PUT /users.
func (h *handler) importUsers(w http.ResponseWriter, r *http.Request, s session) {
	p := &importPage{layout: h.layout(r, &s, "Import and export", "import")}
	fail := func(status int, err error) {
		p.SetError(err)
		h.render(w, r, status, "import", p)
	}
	file, _, err := r.FormFile("file")
	if err != nil {
		fail(http.StatusBadRequest, invalid("file", "choose a users.json file to upload"))
		return
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err != nil {
		fail(http.StatusBadRequest, invalid("file", "could not be read"))
		return
	}
	ps, err := users.ParsePatchList(data)
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), web.AllUsersTimeout)
	defer cancel()
	written, err := h.svc.Import(ctx, ps)
	if err != nil {
		h.formFailed(w, r, err, fail)
		return
	}
	redirect(w, r, "/manage/import?done=imported&n="+strconv.Itoa(len(written)))
}

// exportBody is users.json: what the import (and PUT /users) takes.
type exportBody struct {
	Users []*users.User `json:"users"`
}

// exportUsers downloads every user as users.json, oldest first.
func (h *handler) exportUsers(w http.ResponseWriter, r *http.Request, _ session) {
	list, ok := h.listAll(w, r)
	if !ok {
		return
	}
	if list == nil {
		list = []*users.User{}
	}
	users.Sort(list, []users.SortKey{{Field: "createdAt"}})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(exportBody{Users: list}); err != nil {
		h.fail(w, r, fmt.Errorf("encoding export: %w", err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Disposition", `attachment; filename="users.json"`)
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}
