package ui

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"tollgate.dev/tollgate/shared/users"
	"tollgate.dev/tollgate/shared/web"
)

// abusePage is the anti-abuse page: the live IP lists, force-expiring
// temporary users, and where temporary users come from.
type abusePage struct {
	*layout
	Editable     bool
	Whitelist    string // the live additions, one per line
	Blacklist    string
	EnvWhitelist string
	EnvBlacklist string
	// The lists as environment values (the environment's and the live
	// ones together), to copy into a deployment.
	WhitelistEnv string
	BlacklistEnv string
	UpdatedAt    int64
	// Version is the version of the lists the form was made from: saving
	// it is refused once someone else has saved since.
	Version string
	// Theirs, after a save refused for that reason, are the lists as
	// someone else saved them, shown beside what this admin typed.
	Theirs     *listsText
	CacheTTL   string
	TempActive int
	Subnets    []subnetRow
	ExpireAll  maintenanceAction
}

// subnetRow is one /24 (IPv4) or /48 (IPv6) network that temporary users
// came from.
type subnetRow struct {
	Subnet string
	Users  int
	Active int
	IPs    int
}

// listsText is a pair of lists as the page shows them, one entry a line.
type listsText struct{ Whitelist, Blacklist string }

// typedLists is a save the page refused: what the admin typed, the
// version of the lists it was made from, and whether it was refused
// because someone else saved since (stale).
type typedLists struct {
	listsText
	version string
	stale   bool
}

// errListsChangedUI is a stale save, as the page explains it.
var errListsChangedUI = &users.Error{Code: users.CodeConflict, Message: "Someone else saved the IP lists after you opened this page, so your save was not applied: nothing was written. " +
	"What they saved is shown below; your text is still in the boxes. Merge the two and save again."}

func (h *handler) abuseForm(w http.ResponseWriter, r *http.Request, s session) {
	h.showAbuse(w, r, s, http.StatusOK, nil, nil)
}

// showAbuse renders the page; typed keeps what the admin typed when an
// edit was refused.
func (h *handler) showAbuse(w http.ResponseWriter, r *http.Request, s session, code int, err error, typed *typedLists) {
	ctx, cancel := context.WithTimeout(r.Context(), web.AllUsersTimeout)
	defer cancel()
	lists, lerr := h.ips.Stored(ctx)
	if lerr != nil {
		h.fail(w, r, lerr)
		return
	}
	list, ok := h.listAll(w, r)
	if !ok {
		return
	}
	p := &abusePage{
		layout:       h.layout(r, &s, "Anti-abuse", "abuse"),
		Editable:     h.ips.Editable(),
		Whitelist:    strings.Join(lists.Whitelist, "\n"),
		Blacklist:    strings.Join(lists.Blacklist, "\n"),
		EnvWhitelist: h.cfg.AdminWhitelist.String(),
		EnvBlacklist: h.cfg.IPBlacklist.String(),
		WhitelistEnv: users.EnvLine(h.cfg.AdminWhitelist.String(), lists.Whitelist),
		BlacklistEnv: users.EnvLine(h.cfg.IPBlacklist.String(), lists.Blacklist),
		UpdatedAt:    lists.UpdatedAt,
		Version:      lists.Version,
		CacheTTL:     h.cfg.UserCacheTTL.String(),
	}
	for _, a := range maintenanceActions() {
		if a.Name == users.ActionExpireAllTemporary {
			p.ExpireAll = a
		}
	}
	if typed != nil {
		if typed.stale {
			p.Theirs = &listsText{Whitelist: p.Whitelist, Blacklist: p.Blacklist} // and the form now saves over them
		} else {
			p.Version = typed.version // not over lists the admin has not seen
		}
		p.Whitelist, p.Blacklist = typed.Whitelist, typed.Blacklist
	}
	if err != nil {
		p.SetError(err)
	}
	now := h.now()
	for _, u := range list {
		if u.Type == users.Temporary && status(u, now) == "active" {
			p.TempActive++
		}
	}
	p.Subnets = subnetReport(list, now)
	h.render(w, r, code, "abuse", p)
}

// subnetReport groups temporary users by the /24 (IPv4) or /48 (IPv6)
// of each address they used, most users first: many tokens from one
// network is what a token farm looks like.
func subnetReport(list []*users.User, now time.Time) []subnetRow {
	type agg struct {
		users, active map[string]bool
		ips           map[string]bool
	}
	nets := map[string]*agg{}
	for _, u := range list {
		if u.Type != users.Temporary {
			continue
		}
		active := !u.Disabled() && (u.ExpiresAt == 0 || u.ExpiresAt > now.UnixMilli())
		for _, ip := range u.IP {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				continue
			}
			a = a.Unmap()
			bits := 24
			if a.Is6() {
				bits = 48
			}
			p, _ := a.Prefix(bits)
			g := nets[p.String()]
			if g == nil {
				g = &agg{users: map[string]bool{}, active: map[string]bool{}, ips: map[string]bool{}}
				nets[p.String()] = g
			}
			g.users[u.Token] = true
			g.ips[a.String()] = true
			if active {
				g.active[u.Token] = true
			}
		}
	}
	out := make([]subnetRow, 0, len(nets))
	for n, g := range nets {
		out = append(out, subnetRow{Subnet: n, Users: len(g.users), Active: len(g.active), IPs: len(g.ips)})
	}
	slices.SortFunc(out, func(a, b subnetRow) int {
		return cmp.Or(cmp.Compare(b.Users, a.Users), cmp.Compare(b.Active, a.Active), strings.Compare(a.Subnet, b.Subnet))
	})
	return out
}

// saveLists replaces the live lists from the page's two text areas, over
// the version of the lists the page showed: when someone else saved
// since, nothing is written and the page shows their lists beside the
// admin's text.
func (h *handler) saveLists(w http.ResponseWriter, r *http.Request, s session) {
	typed := typedLists{listsText: listsText{r.PostFormValue("whitelist"), r.PostFormValue("blacklist")}, version: r.PostFormValue("version")}
	refuse := func(err error) {
		if errors.Is(err, users.ErrListsChanged) {
			typed.stale = true
			h.showAbuse(w, r, s, http.StatusConflict, errListsChangedUI, &typed)
			return
		}
		if e := users.AsError(err); e.Code == users.CodeInvalid {
			h.showAbuse(w, r, s, http.StatusBadRequest, e, &typed)
			return
		}
		h.fail(w, r, err)
	}
	white, err := users.ParseIPList("whitelist", typed.Whitelist)
	if err != nil {
		refuse(err)
		return
	}
	black, err := users.ParseIPList("blacklist", typed.Blacklist)
	if err != nil {
		refuse(err)
		return
	}
	if typed.version == "" { // the page always sends one: this form predates versions
		refuse(users.ErrListsChanged)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), web.OneUserTimeout)
	defer cancel()
	if _, err := h.ips.Replace(ctx, users.IPLists{Whitelist: white, Blacklist: black, Version: typed.version}, h.clientIP(r)); err != nil {
		refuse(err)
		return
	}
	redirect(w, r, "/manage/abuse?done=lists&n="+strconv.Itoa(len(white)+len(black)))
}
