package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"tollgate.dev/tollgate/functions/admin/ui"
	"tollgate.dev/tollgate/functions/admin/upstreamkeys"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// eventsPage is GET /events/{token}: a page of the user's charged
// requests, newest first, and the cursor of the next page.
func (a *api) listEvents(w http.ResponseWriter, r *http.Request) {
	token := a.pathToken(r)
	if !users.ValidToken(token) {
		a.fail(w, r, users.ErrNotFound) // as GET /users/{token} answers
		return
	}
	q := r.URL.Query()
	cursor := q.Get("cursor")
	limit := 0
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil {
			a.fail(w, r, invalid([]users.Issue{{Path: "limit", Message: "must be a whole number from 1 to " + strconv.Itoa(users.MaxEventPage)}}))
			return
		}
		if n == 0 {
			n = -1 // 0 is no page size: refused as out of range
		}
		limit = n
	}
	if _, err := users.CheckEventPage(cursor, limit); err != nil {
		a.fail(w, r, err)
		return
	}
	page := users.EventPage{Events: []users.Event{}}
	if ev, ok := a.d.Store.(users.Events); ok && a.d.Config.EventLogging {
		var err error
		if page, err = ev.EventPage(r.Context(), token, cursor, limit); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// ipListsBody is GET /ip-lists: the live additions, and the environment's
// lists they add to.
type ipListsBody struct {
	users.IPLists
	Environment envLists `json:"environment"`
}

type envLists struct {
	AdminWhitelist string `json:"ADMIN_WHITELIST"`
	IPBlacklist    string `json:"IP_BLACKLIST"`
}

func (a *api) getIPLists(w http.ResponseWriter, r *http.Request) { a.answerIPLists(w, r, nil) }

// answerIPLists answers the lists as stored, with their version as ETag.
// After a save (saved), the ETag is sent only if they are still the lists
// that save wrote: a client may take a PUT's ETag for the version of what
// it sent, and must not get one of a save it has not seen.
func (a *api) answerIPLists(w http.ResponseWriter, r *http.Request, saved *users.IPLists) {
	l, err := a.ips.Stored(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if l.Version != "" && (saved == nil || sameLists(l, *saved)) {
		w.Header().Set("ETag", `"`+l.Version+`"`) // versions need no escaping (users.WellFormedVersion)
	}
	writeJSON(w, http.StatusOK, ipListsBody{IPLists: l, Environment: envLists{
		AdminWhitelist: a.d.Config.AdminWhitelist.String(), IPBlacklist: a.d.Config.IPBlacklist.String(),
	}})
}

// errStaleLists answers a PUT /ip-lists whose If-Match names lists that
// someone else has replaced since.
var errStaleLists = &users.Error{Code: web.CodeStaleVersion, Message: "The IP lists were changed by someone else since you read them: nothing was written. " +
	"Read them again (GET /ip-lists), apply your change to what they are now, and send the new ETag in If-Match."}

// ifMatch reads PUT /ip-lists's If-Match: absent or * saves over whatever
// is stored (as before versions existed); one entity tag saves only over
// that version. A weak tag never matches: If-Match compares strongly; nor
// does the empty tag "", which no version is.
func ifMatch(h http.Header) (version string, err error) {
	values := h.Values("If-Match")
	raw := strings.TrimSpace(strings.Join(values, ","))
	if len(values) == 0 || raw == "*" {
		return "", nil
	}
	tag, weak := strings.CutPrefix(raw, "W/")
	if len(tag) < 2 || tag[0] != '"' || strings.IndexByte(tag[1:], '"') != len(tag)-2 { // an empty field too: a client that found no ETag
		return "", invalid([]users.Issue{{Path: "If-Match", Message: `one entity tag, the ETag GET /ip-lists answers ("…"), or *`}})
	}
	version = tag[1 : len(tag)-1]
	if weak || version == "" { // "" is a tag no version has, not "no condition"
		return "", errStaleLists
	}
	return version, nil
}

// ipListsInput is PUT /ip-lists's body: both lists, replaced whole.
type ipListsInput struct {
	Whitelist *[]string `json:"whitelist"`
	Blacklist *[]string `json:"blacklist"`
}

func (a *api) putIPLists(w http.ResponseWriter, r *http.Request) {
	version, err := ifMatch(r.Header)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	data, err := readJSON(w, r, maxUserBody, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in, err := parseIPListsInput(data)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	lists := users.IPLists{Whitelist: canonical(*in.Whitelist), Blacklist: canonical(*in.Blacklist), Version: version}
	saved, err := a.ips.Replace(r.Context(), lists, a.clientIP(r))
	if err != nil {
		if errors.Is(err, users.ErrListsChanged) {
			err = errStaleLists
		}
		a.fail(w, r, err)
		return
	}
	a.answerIPLists(w, r, &saved)
}

// sameLists reports whether a and b hold the same entries, saved at the
// same moment.
func sameLists(a, b users.IPLists) bool {
	return a.UpdatedAt == b.UpdatedAt && slices.Equal(a.Whitelist, b.Whitelist) && slices.Equal(a.Blacklist, b.Blacklist)
}

// canonical rewrites entries as ParseIPList does (masked, each once);
// bad entries are kept as given, for Validate to name them by index.
func canonical(list []string) []string {
	out := make([]string, 0, len(list))
	for _, e := range list {
		if c, err := users.ParseIPList("", e); err == nil && len(c) == 1 {
			e = c[0]
			if slices.Contains(out, e) {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// parseIPListsInput reads PUT /ip-lists's body: one JSON object holding
// both lists as arrays of strings. Each problem is an issue naming its
// field, in the words the users parser uses (never the decoder's, which
// speak of Go types).
func parseIPListsInput(data []byte) (ipListsInput, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&fields)
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return ipListsInput{}, invalidJSON("malformed JSON")
	case err != nil || fields == nil:
		return ipListsInput{}, invalidJSON("body must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return ipListsInput{}, invalidJSON("one JSON object expected")
	}
	var in ipListsInput
	var issues []users.Issue
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		var list *[]string
		switch k {
		case "whitelist":
			list = new([]string)
			in.Whitelist = list
		case "blacklist":
			list = new([]string)
			in.Blacklist = list
		default:
			issues = append(issues, users.Issue{Path: k, Message: "unknown field"})
			continue
		}
		if err := json.Unmarshal(fields[k], list); err != nil {
			issues = append(issues, users.Issue{Path: k, Message: "must be an array of strings (addresses or CIDR ranges)"})
		} else if *list == nil { // null
			issues = append(issues, users.Issue{Path: k, Message: "required (an array, possibly empty)"})
		}
	}
	if in.Whitelist == nil {
		issues = append(issues, users.Issue{Path: "whitelist", Message: "required (an array, possibly empty)"})
	}
	if in.Blacklist == nil {
		issues = append(issues, users.Issue{Path: "blacklist", Message: "required (an array, possibly empty)"})
	}
	if issues != nil {
		return ipListsInput{}, invalid(issues)
	}
	return in, nil
}

// invalidJSON is a body that is no JSON object, worded as the users
// parser words it.
func invalidJSON(msg string) error {
	return &users.Error{Code: users.CodeInvalid, Message: "Invalid JSON: " + msg, Issues: []users.Issue{{Path: "", Message: msg}}}
}

// stats is the original's "generate stats" as Markdown (see ui.Stats).
func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	if _, err := ui.Stats(nil, r.URL.Query(), a.now()); err != nil {
		a.fail(w, r, err)
		return
	}
	list, err := a.svc.Store.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body, _ := ui.Stats(list, r.URL.Query(), a.now())
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write([]byte(body))
}

// keysBody is GET /keys: each served provider's keys by their last 4
// characters, and when they were checked.
type keysBody struct {
	Providers []upstreamkeys.Provider `json:"providers"`
	CheckedAt int64                   `json:"checkedAt"`
}

func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	list, at := a.keys.Counts(r.Context(), false)
	writeJSON(w, http.StatusOK, keysBody{Providers: list, CheckedAt: at.UnixMilli()})
}

func (a *api) recheckKeys(w http.ResponseWriter, r *http.Request) {
	list, at := a.keys.Counts(r.Context(), true)
	writeJSON(w, http.StatusOK, keysBody{Providers: list, CheckedAt: at.UnixMilli()})
}
