package gatekeeper

import "time"

// RenewLease runs what the admission's timer runs half a lease after it
// entered (real time, which tests do not wait for), and returns when the
// timer runs it next (0: never).
func (a *Admission) RenewLease() time.Duration { return a.renewLease() }

// WaitPrunes waits for the prune steps under way.
func (g *Gatekeeper) WaitPrunes() { g.pruner.wg.Wait() }

// Quota is the principal's quota as read at authentication: the limit
// (of each family that has one above 0) and the count of each.
func (p *Principal) Quota() (limits, used map[string]int64) {
	limits, used = map[string]int64{}, map[string]int64{}
	for _, f := range p.quota.families {
		limits[f.family], used[f.family] = f.limit, f.used
	}
	return limits, used
}
