package proxy

import (
	"context"
	"io"
	"math"
	"runtime/debug"
	"time"

	"golang.org/x/sync/semaphore"

	"tollgate.dev/tollgate/shared/providers"
	"tollgate.dev/tollgate/shared/users"
)

// The memory budget bounds what the requests in flight on one instance
// hold together past their first freeBytes each: request bodies as read,
// what a translation may allocate (it asks through Request.Reserve), and whole
// answers held to read their usage. Without it, a dozen 32 MiB bodies at
// once (or two translated ones, which take several times their size while
// they are translated) outgrow a 512 MiB instance, and the platform stops
// it with every stream in flight. What finds no room waits for it (at
// most the budget's wait; after the body has arrived, not after its
// client has gone: before, the server cannot tell), then is
// refused with 503 and Retry-After: the SDKs retry it. Weights are bytes;
// one larger than the whole budget takes the whole budget, so it runs
// alone rather than never.
type memBudget struct {
	sem  *semaphore.Weighted
	size int64
	wait time.Duration
}

const (
	// defaultBudget is the budget when neither BODY_MEMORY_LIMIT_MB nor a
	// Go memory limit (GOMEMLIMIT, which the deploy sets) says otherwise.
	defaultBudget = 256 << 20
	// defaultBudgetWait is how long a body waits for room.
	defaultBudgetWait = 15 * time.Second
	// freeBytes is what each request uses without taking from the
	// budget: its body, translation and answer up to 1 MiB (nearly every
	// chat request and answer), so small requests never wait, and 80 at
	// once use at most 80 MiB beside it.
	freeBytes = 1 << 20
)

// newMemBudget sizes the budget: mib MiB when set, otherwise half the Go
// memory limit when one is set, otherwise defaultBudget.
func newMemBudget(mib int, wait time.Duration) *memBudget {
	size := int64(defaultBudget)
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		size = limit / 2
	}
	if mib > 0 {
		size = int64(mib) << 20
	}
	if wait <= 0 {
		wait = defaultBudgetWait
	}
	return &memBudget{sem: semaphore.NewWeighted(size), size: size, wait: wait}
}

// errBusy refuses a request the budget has had no room for.
var errBusy = &users.Error{Code: users.CodeUnavailable, RetryAfterSeconds: 2,
	Message: "This proxy instance is busy with large requests; try again in a moment."}

// memHold is what one exchange uses and holds: its first freeBytes are
// its own, what it uses past them is held of the budget.
type memHold struct {
	b    *memBudget
	used int64 // bytes asked for, all told
	held int64 // of the budget: used past freeBytes, at most all of it
}

// take waits for room for n more bytes.
func (m *memHold) take(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	want := min(max(m.used+n-freeBytes, 0), m.b.size)
	if more := want - m.held; more > 0 && !m.b.sem.TryAcquire(more) {
		// Never wait holding: two exchanges each holding part of the
		// budget and waiting for more would wait for each other (a body
		// read, then its translation). What is given back is still in
		// memory while this waits, uncounted: at most the bodies read of
		// the requests waiting so.
		m.b.sem.Release(m.held)
		m.held = 0
		ctx, cancel := context.WithTimeout(ctx, m.b.wait)
		defer cancel()
		if err := m.b.sem.Acquire(ctx, want); err != nil {
			return errBusy
		}
	}
	m.held = want
	m.used += n
	return nil
}

// keep says the exchange uses n bytes now, and gives back what it held
// past them.
func (m *memHold) keep(n int64) {
	if n >= m.used {
		return
	}
	m.used = max(n, 0)
	if want := min(max(m.used-freeBytes, 0), m.b.size); want < m.held {
		m.b.sem.Release(m.held - want)
		m.held = want
	}
}

// release gives back everything held.
func (m *memHold) release() { m.keep(0) }

// weighedBody counts a whole answer against the budget as it is read, for
// the hooks that read it before readWhole does (a provider's Inbound, a
// translation, whose answer weighs what translating it may allocate:
// providers.TranslatedAnswerCost).
type weighedBody struct {
	io.ReadCloser
	x *exchange
}

func (b weighedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		w := int64(n)
		if b.x.ep.Translate != nil {
			w = providers.TranslatedAnswerCost(p[:n])
		}
		if terr := b.x.mem.take(b.x.r.Context(), w); terr != nil {
			return n, terr
		}
	}
	return n, err
}
