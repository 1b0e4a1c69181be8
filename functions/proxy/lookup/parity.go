package lookup

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// renameRefusal is why u may not be renamed from r, as the original
// ruled: nicknames may be changed only with ALLOW_NICKNAME_CHANGES, and
// (unless MAX_IPS_AUTO_BAN makes a shared token cost its owner) only from
// an address the token has been used from. A token never used yet has no
// such address: whoever holds it could register one with a single
// request, so refusing would protect nothing. "" when it may.
func (h *handler) renameRefusal(r *http.Request, u *users.User) string {
	switch {
	case !h.cfg.SelfService.AllowNicknameChanges:
		return "Nickname changes are not allowed on this proxy."
	case !h.cfg.MaxIPsAutoBan && len(u.IP) > 0 && !u.HasIP(h.clientIP(r)):
		return "Nickname changes are only allowed from an address this token has been used from."
	}
	return ""
}

// redactIPs shows a user's addresses without identifying anyone: IPv4
// keeps its first two bytes, IPv6 its first 32 bits; a RisuAI user's
// entry (users.RisuIP) shows neither its id nor more of its address.
func redactIPs(ips []string) []string {
	out := make([]string, 0, len(ips))
	for _, s := range ips {
		prefix := ""
		if i := strings.LastIndexByte(s, '-'); strings.HasPrefix(s, "risu") && i > 0 {
			prefix, s = "RisuAI user at ", s[i+1:]
		}
		out = append(out, prefix+redactIP(s))
	}
	return out
}

func redactIP(s string) string {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return "(hidden)"
	case a.Unmap().Is4():
		b := a.Unmap().As4()
		return fmt.Sprintf("%d.%d.x.x", b[0], b[1])
	}
	b := a.As16()
	return fmt.Sprintf("%x:%x:…", uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3]))
}

// cost is what tokens cost at price US dollars per million.
func cost(price float64, tokens int64) float64 { return price * float64(max(tokens, 0)) / 1e6 }

func formatUSD(v float64) string { return fmt.Sprintf("$%.2f", v) }

// formatAt shows a moment to the second, in UTC: refreshes may come every
// few seconds.
func formatAt(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC") }
