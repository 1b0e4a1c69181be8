package ui

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// latestEvents is how many events the user page lists.
const latestEvents = 20

// maxChartPages bounds the pages of events one user page reads for its
// chart (MaxEventPage each).
const maxChartPages = 20

// userEvents reads the user's events of the chart's days, newest first;
// more reports that older ones exist.
func (h *handler) userEvents(ctx context.Context, ev users.Events, token string) ([]users.Event, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, web.AllUsersTimeout)
	defer cancel()
	since := h.now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -(chartDays - 1)).UnixMilli()
	var out []users.Event
	cursor := ""
	for range maxChartPages {
		page, err := ev.EventPage(ctx, token, cursor, users.MaxEventPage)
		if err != nil {
			return nil, false, err
		}
		for _, e := range page.Events {
			if e.At < since {
				return out, true, nil
			}
			out = append(out, e)
		}
		if page.Next == "" {
			return out, false, nil
		}
		cursor = page.Next
	}
	return out, true, nil
}

// editReason changes a disabled user's disabledReason after the fact.
func (h *handler) editReason(w http.ResponseWriter, r *http.Request, s session) {
	u, ok := h.loadUser(w, r)
	if !ok {
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	switch {
	case !u.Disabled():
		h.showUser(w, r, s, u, http.StatusConflict, users.Errorf(users.CodeConflict, "This user is not disabled: there is no reason to change."))
		return
	case reason == "":
		h.showUser(w, r, s, u, http.StatusBadRequest, invalid("disabledReason", "must not be empty"))
		return
	case utf8.RuneCountInString(reason) > users.MaxTextLen:
		h.showUser(w, r, s, u, http.StatusBadRequest, invalid("disabledReason", "must be at most "+strconv.Itoa(users.MaxTextLen)+" characters"))
		return
	}
	h.userAction(w, r, s, u, "reason", func(ctx context.Context) (*users.User, error) {
		return h.svc.Store.Modify(ctx, u.Token, false, func(cur *users.User, _ bool) error {
			if !cur.Disabled() {
				return users.Errorf(users.CodeConflict, "This user was reactivated meanwhile: there is no reason to change.")
			}
			cur.DisabledReason = reason
			return nil
		})
	})
}
