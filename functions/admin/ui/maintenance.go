package ui

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"tollgate.dev/tollgate/functions/admin/upstreamkeys"
	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

type maintenanceAction struct {
	Name    string
	Path    string
	Title   string
	Text    string
	Confirm string
}

type maintenancePage struct {
	*layout
	Actions []maintenanceAction
	Keys    []upstreamkeys.Provider
	KeysAt  time.Time
}

// maintenanceActions describes users.Actions for people.
func maintenanceActions() []maintenanceAction {
	text := map[string][3]string{
		users.ActionRefreshQuotas: {"Refresh quotas",
			"Gives every user (except non-refreshable temporary ones) a new limit per family: what they used plus their refresh amount, or the default quota.",
			"Refresh the quotas of every user now?"},
		users.ActionResetCounts: {"Reset token counts",
			"Sets every user's token counts to 0. Limits are not changed.",
			"Reset the token counts of every user to 0? This cannot be undone."},
		users.ActionExpireTemporary: {"Disable expired temporary users",
			"Disables temporary users whose time is up (they are already refused by the proxy).",
			"Disable every expired temporary user now?"},
		users.ActionPurgeTemporary: {"Purge old temporary users",
			"Deletes temporary users disabled POW_TOKEN_PURGE_HOURS ago (48 by default) or more.",
			"Delete temporary users disabled longer than POW_TOKEN_PURGE_HOURS? This cannot be undone."},
		users.ActionExpireAllTemporary: {"Force-expire temporary users",
			"Ends every active temporary user now, expired or not: disabled, and no longer refreshable.",
			"End every temporary user now? Their tokens stop working at once."},
		users.ActionPruneEvents: {"Prune old events",
			"Deletes the recorded requests older than EVENT_RETENTION_DAYS.",
			"Delete the events past their retention now?"},
		users.ActionPruneLimits: {"Prune limits records",
			"Deletes the cluster-wide rate and concurrency records (LIMITS_SCOPE=cluster) that keep nothing any more, up to 5,000 looked at per run.",
			"Delete the limits records that keep nothing now?"},
	}
	var out []maintenanceAction
	for _, a := range users.Actions {
		t := text[a]
		if t[0] == "" {
			t = [3]string{a, "", "Run " + a + " now?"}
		}
		out = append(out, maintenanceAction{Name: a, Path: "/manage/maintenance/" + a, Title: t[0], Text: t[1], Confirm: t[2]})
	}
	return out
}

func (h *handler) maintenanceForm(w http.ResponseWriter, r *http.Request, s session) {
	keys, at := h.keys.Counts(r.Context(), false)
	h.render(w, r, http.StatusOK, "maintenance", &maintenancePage{layout: h.layout(r, &s, "Maintenance", "maintenance"), Actions: maintenanceActions(), Keys: keys, KeysAt: at})
}

func (h *handler) maintain(w http.ResponseWriter, r *http.Request, s session) {
	action := r.PathValue("action")
	if !slices.Contains(users.Actions, action) {
		h.renderError(w, r, http.StatusNotFound, "Unknown maintenance action.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), web.AllUsersTimeout)
	defer cancel()
	n, err := h.svc.Maintain(ctx, action)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	back := "/manage/maintenance"
	if r.PostFormValue("back") == "abuse" {
		back = "/manage/abuse"
	}
	redirect(w, r, back+"?done=maintained&action="+action+"&n="+strconv.Itoa(n))
}
