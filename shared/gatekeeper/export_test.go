package gatekeeper

import "time"

// RenewLease runs what the admission's timer runs half a lease after it
// entered (real time, which tests do not wait for), and returns when the
// timer runs it next (0: never).
func (a *Admission) RenewLease() time.Duration { return a.renewLease() }

// WaitPrunes waits for the prune steps under way.
func (g *Gatekeeper) WaitPrunes() { g.pruner.wg.Wait() }
