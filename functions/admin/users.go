package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// listBody is GET /users's answer, the original's {users, count}; count is
// the number of users before limit/offset.
type listBody struct {
	Users []*users.User `json:"users"`
	Count int           `json:"count"`
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	keys, err := users.ParseAPISort(strings.Join(q["sort"], ","))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var issues []users.Issue
	limit := queryInt(q, "limit", &issues)
	offset := queryInt(q, "offset", &issues)
	if len(issues) > 0 {
		a.fail(w, r, invalid(issues))
		return
	}
	list, err := a.svc.Store.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if list == nil {
		list = []*users.User{} // [] rather than null
	}
	users.Sort(list, keys)
	total := len(list)
	list = list[min(offset, total):]
	if limit > 0 {
		list = list[:min(limit, len(list))]
	}
	writeJSON(w, http.StatusOK, listBody{Users: list, Count: total})
}

// queryInt reads a non-negative integer query parameter (0 when absent).
func queryInt(q url.Values, name string, issues *[]users.Issue) int {
	raw := q.Get(name)
	if raw == "" {
		return 0
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		*issues = append(*issues, users.Issue{Path: name, Message: "must be a whole number, 0 or more"})
		return 0
	}
	return n
}

// userAction serves a route that only names a user: act reads or changes
// the {token} user, who is the answer.
func (a *api) userAction(act func(ctx context.Context, token string) (*users.User, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := a.pathToken(r)
		u, err := act(r.Context(), token)
		a.answerUser(w, r, u, err)
	}
}

// createIssues refuses the fields that only make sense for an existing
// user (counts, IPs, dates of use): those are set with PUT.
func createIssues(p users.Patch) []users.Issue {
	var issues []users.Issue
	refuse := func(set bool, field string) {
		if set {
			issues = append(issues, users.Issue{Path: field, Message: "cannot be set when creating a user; use PUT /users/{token}"})
		}
	}
	refuse(p.IP.Set, "ip")
	refuse(p.PromptCount.Set, "promptCount")
	refuse(p.TokenCounts.Set, "tokenCounts")
	refuse(p.CreatedAt.Set, "createdAt")
	refuse(p.LastUsedAt.Set, "lastUsedAt")
	refuse(p.DisabledAt.Set, "disabledAt")
	refuse(p.DisabledReason.Set, "disabledReason")
	refuse(p.RefreshedAt.Set, "refreshedAt")
	return issues
}

// createdBody is POST /users's answer, the original's {token}.
type createdBody struct {
	Token string `json:"token"`
}

func (a *api) createUser(w http.ResponseWriter, r *http.Request) {
	data, err := readJSON(w, r, maxUserBody, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var p users.Patch
	if data != nil {
		if p, err = users.ParsePatch(data); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	issues := createIssues(p)
	temporary := p.Type.Set && p.Type.Value == users.Temporary
	hasExpiry := p.ExpiresAt.Set && !p.ExpiresAt.Null
	switch {
	case temporary && !hasExpiry:
		issues = append(issues, users.Issue{Path: "expiresAt", Message: "required for temporary users"})
	case temporary && p.ExpiresAt.Value <= a.now().UnixMilli():
		issues = append(issues, users.Issue{Path: "expiresAt", Message: "must be in the future"})
	case !temporary && hasExpiry:
		issues = append(issues, users.Issue{Path: "expiresAt", Message: "only temporary users expire"})
	}
	if temporary && (!p.TokenLimits.Set || p.TokenLimits.Null) {
		issues = append(issues, users.Issue{Path: "tokenLimits", Message: "required for temporary users"})
	}
	if len(issues) > 0 {
		a.fail(w, r, invalid(issues))
		return
	}
	u, err := a.svc.Create(r.Context(), p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	logging.FromContext(r.Context()).SetToken(u.Token)
	w.Header().Set("Location", web.BasePath(r.Context())+"/users/"+u.Token)
	writeJSON(w, http.StatusCreated, createdBody{Token: u.Token})
}

// upsertUser applies a partial user; a missing user is created. Both
// answer 200 with the user, as the original did.
func (a *api) upsertUser(w http.ResponseWriter, r *http.Request) {
	token := a.pathToken(r)
	p, err := readParsed(w, r, maxUserBody, users.ParsePatch)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	u, _, err := a.svc.Upsert(r.Context(), token, p)
	a.answerUser(w, r, u, err)
}

// importBody is PUT /users's answer: the original's {upserted_users,
// count}, plus the entries that validated but could not be written.
type importBody struct {
	Upserted []*users.User   `json:"upserted_users"`
	Count    int             `json:"count"`
	Failed   []importFailure `json:"failed"`
}

// importFailure is one entry not written, with the status a single-user
// call would have got and its error in the API's error shape.
type importFailure struct {
	Index  int         `json:"index"`
	Token  string      `json:"token"`
	Status int         `json:"status"`
	Error  errorDetail `json:"error"`
}

// importUsers validates {users:[…]} all or nothing, then writes each user
// on its own (see users.Service.ImportEach) and reports the entries it
// could not write.
func (a *api) importUsers(w http.ResponseWriter, r *http.Request) {
	ps, err := readParsed(w, r, maxImportBody, users.ParsePatchList)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	rep, err := a.svc.ImportEach(r.Context(), ps)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body := importBody{Upserted: rep.Written, Count: len(rep.Written), Failed: []importFailure{}}
	for _, f := range rep.Failed {
		_, st, msg, _ := web.Failure(f.Err)
		body.Failed = append(body.Failed, importFailure{Index: f.Index, Token: f.Token, Status: st,
			Error: errorDetail{Message: msg, Issues: f.Err.Issues}})
	}
	if len(rep.Failed) > 0 {
		logging.FromContext(r.Context()).SetError(fmt.Sprintf("import: %d of %d users not written; first: %s",
			len(rep.Failed), len(ps), logging.Redact(rep.Failed[0].Err.Error())))
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *api) disableUser(w http.ResponseWriter, r *http.Request) {
	token := a.pathToken(r)
	reason := r.URL.Query().Get("disabledReason")
	if utf8.RuneCountInString(reason) > users.MaxTextLen {
		a.fail(w, r, invalid([]users.Issue{{Path: "disabledReason", Message: "must be at most " + strconv.Itoa(users.MaxTextLen) + " characters"}}))
		return
	}
	u, err := a.svc.Disable(r.Context(), token, reason)
	a.answerUser(w, r, u, err)
}

// maintainBody is POST /maintenance/{action}'s answer.
type maintainBody struct {
	Affected int `json:"affected"`
}

// maintain runs a maintenance action over every user (Cloud Scheduler
// calls it with the admin key).
func (a *api) maintain(w http.ResponseWriter, r *http.Request) {
	n, err := a.svc.Maintain(r.Context(), r.PathValue("action"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, maintainBody{Affected: n})
}

// pathToken is the {token} of the route, noted (as its tail) for the log.
func (a *api) pathToken(r *http.Request) string {
	token := r.PathValue("token")
	logging.FromContext(r.Context()).SetToken(token)
	return token
}

func (a *api) answerUser(w http.ResponseWriter, r *http.Request, u *users.User, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}
