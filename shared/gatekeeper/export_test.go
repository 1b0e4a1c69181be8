package gatekeeper

// RenewLease runs what the admission's timer runs half a lease after it
// entered (real time, which tests do not wait for).
func (a *Admission) RenewLease() { a.renewLease() }

// WaitPrunes waits for the prune steps under way.
func (g *Gatekeeper) WaitPrunes() { g.pruner.wg.Wait() }
