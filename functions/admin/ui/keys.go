package ui

import "net/http"

// recheckKeys checks every upstream key now, whatever the last check's
// age (see package upstreamkeys).
func (h *handler) recheckKeys(w http.ResponseWriter, r *http.Request, s session) {
	h.keys.Counts(r.Context(), true)
	redirect(w, r, "/manage/maintenance?done=rechecked")
}
