package users

import (
	"net/netip"
	"strings"
)

// RisuIP is how a RisuAI user's address is recorded in a user's IP list,
// as the original recorded it: RisuAI's users share a few addresses, so
// each signed RisuAI id counts as an address of its own.
func RisuIP(id, ip string) string { return "risu" + id + "-" + ip }

// risuAddr reads an entry written by RisuIP: a non-empty id and an IP
// address after its last '-'.
func risuAddr(s string) (netip.Addr, bool) {
	i := strings.LastIndexByte(s, '-')
	if !strings.HasPrefix(s, "risu") || i <= len("risu") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s[i+1:])
	return a, err == nil
}
