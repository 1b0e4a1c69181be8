package gatekeeper

import (
	"context"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// eventTimeout bounds one event write.
const eventTimeout = 10 * time.Second

// An event is written beside its charge, never in its way: it starts as
// the charge is counted and runs while the charge is flushed, so it
// usually lands within the request, but neither the charge nor the answer
// waits for it. A failed event write loses that event only; it is
// reported to OnEventError.

// OnEventError sets what is told of an event that could not be written
// (the proxy logs a warning). Set it before serving.
func (g *Gatekeeper) OnEventError(fn func(token string, err error)) { g.eventFailed = fn }

func (g *Gatekeeper) recordEvent(token string, e users.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	if err := g.events.AddEvent(ctx, token, e); err != nil && g.eventFailed != nil {
		g.eventFailed(token, err)
	}
}
