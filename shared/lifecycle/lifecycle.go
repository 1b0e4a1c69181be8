// Package lifecycle is how a function instance lives and ends: its handler
// built on the first request, requests counted so that shutdown lets them
// finish, and on SIGTERM a drain then a flush of the store, within the
// platform's shutdown window.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// ErrShuttingDown is the cause of the context of a request cut because
// the instance is shutting down.
var ErrShuttingDown = errors.New("tollgate is shutting down")

// cutGrace is how long requests cut at the end of a drain have to finish:
// a cut stream still charges what it relayed.
const cutGrace = time.Second

// Drain counts in-flight requests so that shutdown can let them finish,
// and cuts those that outlast the shutdown window.
type Drain struct {
	inflight atomic.Int64
	closing  atomic.Bool
	idle     chan struct{}
	// cut is canceled when the drain window ends: every request still
	// running sees its context canceled with ErrShuttingDown.
	cut    context.Context
	cutAll context.CancelCauseFunc
}

// NewDrain returns an open Drain.
func NewDrain() *Drain {
	cut, cutAll := context.WithCancelCause(context.Background())
	return &Drain{idle: make(chan struct{}, 1), cut: cut, cutAll: cutAll}
}

// Refusal answers a request the instance cannot serve (it is shutting
// down, or could not start) with 503 and message, in the function's own
// error shape.
type Refusal func(w http.ResponseWriter, r *http.Request, message string)

// plainRefusal is the Refusal of a function without an error shape.
func plainRefusal(w http.ResponseWriter, _ *http.Request, message string) {
	http.Error(w, message, http.StatusServiceUnavailable)
}

// Wrap counts h's requests; once closing, new requests get 503.
func (d *Drain) Wrap(h http.Handler) http.Handler { return d.WrapRefusing(h, nil) }

// WrapRefusing is Wrap with new requests refused by refuse once closing
// (plain text if nil).
func (d *Drain) WrapRefusing(h http.Handler, refuse Refusal) http.Handler {
	if refuse == nil {
		refuse = plainRefusal
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted before the closing check, so Close either sees this
		// request in flight or the request sees Close: none slips between.
		d.inflight.Add(1)
		defer func() {
			if d.inflight.Add(-1) == 0 && d.closing.Load() {
				select {
				case d.idle <- struct{}{}:
				default:
				}
			}
		}()
		if d.closing.Load() {
			w.Header().Set("Connection", "close")
			refuse(w, r, "tollgate is shutting down; retry")
			return
		}
		ctx, cancel := context.WithCancelCause(r.Context())
		c := &cutter{w: w}
		stop := context.AfterFunc(d.cut, func() {
			cancel(context.Cause(d.cut))
			c.cut()
		})
		defer func() {
			c.done() // also when h panics
			stop()
			cancel(nil)
		}()
		h.ServeHTTP(w, r.WithContext(ctx))
		c.done()
		if d.closing.Load() {
			// net/http writes what the handler left buffered only after
			// it returns: while counted, so that shutdown waits for it.
			// Only when closing: a flush makes a small answer chunked
			// and costs a write of its own. Errors (ErrNotSupported, a
			// client gone) leave nothing to do.
			_ = http.NewResponseController(w).Flush()
		}
	})
}

// cutter ends the writes of a request cut at the end of a drain. A
// write to a client that has stopped reading blocks whatever the
// request's context says; the handler would never return, and a stream
// never be charged. A write deadline makes it fail: the handler goes on
// to charge what it relayed, within cutGrace. Once the handler has
// returned (its charge made) the deadline is lifted, so that a client
// that reads gets the end of its answer however long the charge took.
type cutter struct {
	mu       sync.Mutex
	w        http.ResponseWriter
	served   bool
	deadline bool
}

// cutWrite is how long a cut request's writes may still take: a client
// that reads has had its bytes long before, and the handler has the rest
// of cutGrace to record its charge.
const cutWrite = cutGrace / 2

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.served {
		c.deadline = http.NewResponseController(c.w).SetWriteDeadline(time.Now().Add(cutWrite)) == nil
	}
}

// done marks the handler returned; a ResponseWriter is not to be used
// once served, and the cut has nothing left to unblock.
func (c *cutter) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadline && !c.served {
		_ = http.NewResponseController(c.w).SetWriteDeadline(time.Time{})
	}
	c.served = true
}

// InFlight is the number of requests being served.
func (d *Drain) InFlight() int64 { return d.inflight.Load() }

// Close refuses new requests and waits until none is in flight or ctx
// ends. Requests still running then are cut (their contexts canceled with
// ErrShuttingDown) and given cutGrace to finish, so that a stream ends
// cleanly and its usage is recorded before the store is closed.
func (d *Drain) Close(ctx context.Context) {
	d.closing.Store(true)
	if d.wait(ctx) {
		return
	}
	d.cutAll(ErrShuttingDown)
	grace, cancel := context.WithTimeout(context.Background(), cutGrace)
	defer cancel()
	d.wait(grace)
}

// wait reports whether no request was in flight before ctx ended.
func (d *Drain) wait(ctx context.Context) bool {
	for d.inflight.Load() > 0 {
		select {
		case <-d.idle:
		case <-ctx.Done():
			return d.inflight.Load() == 0
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// The shutdown budget: Cloud Run gives an instance 10 s after SIGTERM.
const (
	drainWindow = 6 * time.Second         // requests may finish
	flushBudget = 2500 * time.Millisecond // the store flushes pending usage
	// writeGrace, alongside the store's flush, is for what net/http
	// writes once the last handler has returned and no flush can send
	// first: a chunked answer's last chunk, an empty answer's header.
	writeGrace = 500 * time.Millisecond
)

// Shutdown drains d's requests (cutting those that outlast the window),
// then calls closeStore, which flushes pending usage, and returns no
// sooner than writeGrace after the drain. A deadline on ctx shortens the
// drain, never the flush's budget.
func Shutdown(ctx context.Context, d *Drain, closeStore func(context.Context) error) error {
	window := drainWindow
	if dl, ok := ctx.Deadline(); ok {
		window = min(window, time.Until(dl)-cutGrace-flushBudget)
	}
	drainCtx, cancel := context.WithTimeout(ctx, max(window, 0))
	d.Close(drainCtx)
	cancel()
	written := time.NewTimer(writeGrace)
	defer written.Stop()
	closeCtx, cancel := context.WithTimeout(ctx, flushBudget)
	defer cancel()
	err := closeStore(closeCtx)
	select {
	case <-written.C:
	case <-ctx.Done():
	}
	return err
}

// OnSIGTERM runs shutdown once when the process gets SIGTERM or SIGINT,
// then exits: 0 when it succeeded.
func OnSIGTERM(log zerolog.Logger, shutdown func(context.Context) error) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-ch
		log.Info().Str("signal", sig.String()).Msg("shutting down: draining requests and flushing usage")
		if err := shutdown(context.Background()); err != nil {
			log.Error().Err(err).Msg("shutdown: pending usage could not be flushed")
			os.Exit(1)
		}
		log.Info().Msg("shutdown complete")
		os.Exit(0)
	}()
}

// Lazy builds its handler on the first request, once per instance, so cold
// starts pay only for the function actually served. A build failure (bad
// configuration, unreachable database, missing secret) is logged as one
// line and stops the instance, as a platform would expect.
type Lazy struct {
	once  sync.Once
	build func(ctx context.Context) (http.Handler, error)
	h     http.Handler
	err   error
	fail  func(error)
	// refuse answers every request once the build has failed.
	refuse Refusal
}

// NewLazy returns a Lazy; fail is called with a build error (default: log
// to stderr and exit 1 after answering).
func NewLazy(build func(ctx context.Context) (http.Handler, error), fail func(error)) *Lazy {
	if fail == nil {
		fail = func(err error) {
			os.Stderr.WriteString(`{"severity":"CRITICAL","message":` + quote(err.Error()) + "}\n")
			go func() { time.Sleep(100 * time.Millisecond); os.Exit(1) }()
		}
	}
	return &Lazy{build: build, fail: fail, refuse: plainRefusal}
}

// Refusing makes refuse (plain text if nil) answer the requests of a
// Lazy whose build failed; it returns l.
func (l *Lazy) Refusing(refuse Refusal) *Lazy {
	if refuse == nil {
		refuse = plainRefusal
	}
	l.refuse = refuse
	return l
}

func (l *Lazy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l.h, l.err = l.buildOnce(ctx)
		if l.err != nil {
			l.fail(l.err)
		}
	})
	if l.err != nil {
		l.refuse(w, r, "tollgate could not start; the operator must check its logs")
		return
	}
	l.h.ServeHTTP(w, r)
}

// buildOnce runs build, a panic included: a build that panics fails as
// one that errs does, so the instance stops instead of serving a nil
// handler to every later request.
func (l *Lazy) buildOnce(ctx context.Context) (h http.Handler, err error) {
	defer func() {
		if p := recover(); p != nil {
			h, err = nil, fmt.Errorf("start-up panicked: %v\n%s", p, debug.Stack())
		}
	}()
	h, err = l.build(ctx)
	if err == nil && h == nil {
		err = errors.New("start-up built no handler")
	}
	return h, err
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
