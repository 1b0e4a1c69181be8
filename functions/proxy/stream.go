package proxy

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"tollgate.dev/tollgate/internal/framing"
	"tollgate.dev/tollgate/shared/providers"
)

// streamReader wraps an upstream stream's body: it relays every complete
// event as soon as it has arrived, reading usage from each on the way, and
// drops only the usage chunk the proxy asked for on the client's behalf.
// It never holds more than the current, incomplete event.
type streamReader struct {
	src   io.ReadCloser
	ctx   context.Context
	split framing.Splitter
	st    *providers.StreamState
	// native is the native stream behind a translated one (nil: none):
	// its answer may pass its last text before the translation shows it.
	native *providers.StreamState
	// onEnd is called once: when the stream's end event is about to be
	// relayed, or when the body ends or breaks.
	onEnd func()
	// brokenEvent renders the event relayed when the upstream breaks the
	// stream (nil: none).
	brokenEvent func(msg string) []byte
	// endsAtEOF: the stream has no end event; a clean end of the body is
	// its end (Google).
	endsAtEOF bool
	event     func(st *providers.StreamState, name, data []byte) bool
	// clean edits the bytes of a relayed event (nil: none).
	clean func(st *providers.StreamState, raw []byte) []byte
	// unreadOutput is the output charged at least when part of an event
	// could not be read for usage (framing.Cut): the request's limit.
	unreadOutput int64

	// final mirrors st.Final for the goroutine that decides, when the
	// client leaves, whether to cancel the upstream.
	final *atomic.Bool
	// cancel ends the upstream request (nil: nothing to cancel).
	cancel   context.CancelFunc
	draining bool // reading on for usage after the client left: nothing kept

	chunk []byte     // read buffer
	pool  *chunkPool // where chunk comes from and goes back to (nil: none)
	out   []byte     // bytes ready for the client
	pos   int        // read position in out
	err   error      // what to return once out is drained
	ended bool
	// held is relayed only once the stream is charged: what came past
	// the answer's last text of a stream that ends with its body
	// (endsAtEOF) while its usage is not known final.
	held []byte
}

const chunkSize = 16 << 10

// chunkPool recycles the read buffers of streams: one per stream in
// flight, given back when the upstream body ends.
type chunkPool struct{ p sync.Pool }

func newChunkPool() *chunkPool {
	return &chunkPool{p: sync.Pool{New: func() any { return new([chunkSize]byte) }}}
}

func newStreamReader(ctx context.Context, src io.ReadCloser, s framing.Splitter, st *providers.StreamState, event func(*providers.StreamState, []byte, []byte) bool) *streamReader {
	return &streamReader{src: src, ctx: ctx, split: s, st: st, event: event}
}

// buffer is the read buffer, taken from the pool when there is one.
func (r *streamReader) buffer() []byte {
	if r.chunk == nil {
		if r.pool != nil {
			r.chunk = r.pool.p.Get().(*[chunkSize]byte)[:]
		} else {
			r.chunk = make([]byte, chunkSize)
		}
	}
	return r.chunk
}

func (r *streamReader) Read(p []byte) (int, error) {
	for r.pos == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		r.out, r.pos = r.out[:0], 0
		chunk := r.buffer()
		n, err := r.src.Read(chunk)
		r.nativeUnread()
		if n > 0 {
			r.split.Feed(chunk[:n], r.emit)
		}
		r.syncFinal()
		if err != nil {
			r.finish(err)
		}
	}
	n := copy(p, r.out[r.pos:])
	r.pos += n
	return n, nil
}

func (r *streamReader) emit(raw, name, data []byte) {
	if string(name) == framing.Cut {
		// Part of this event was relayed unread: the usage of an earlier
		// one is not final, and unless this one's own is read, it is
		// charged as a stream cut short, its output at the limit.
		name = nil
		r.unread()
	} else if len(data) > 0 && !jsonData(data) {
		// Data in another format (Google's protobuf, for a client that
		// accepts it) is as unreadable as a cut event ("[DONE]" is JSON
		// enough: an array).
		r.unread()
	}
	keep := len(data) == 0 || r.event == nil || r.event(r.st, name, data)
	r.syncFinal()
	if r.st.Done {
		// Charged before the client sees the end, so that a client that
		// stops reading there finds its usage recorded.
		r.end()
	}
	if keep && !r.draining {
		if r.clean != nil {
			raw = r.clean(r.st, raw)
		}
		r.out, r.held = append(r.out, r.held...), r.held[:0]
		if r.endsAtEOF && r.isFinal() && !r.st.Done {
			r.held = append(r.held, raw...)
		} else {
			r.out = append(r.out, raw...)
		}
	}
}

// jsonData reports event data that is a JSON object or array, as every
// event of the streams read is, after any leading whitespace.
func jsonData(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return true
}

func (r *streamReader) unread() {
	r.st.HaveOut = false
	r.st.Hidden = max(r.st.Hidden, r.unreadOutput)
}

// nativeUnread charges a native event the translation dropped unread
// (too big to hold) as a cut event of the relayed stream: before the
// translated chunks of the same read, which can only follow it.
func (r *streamReader) nativeUnread() {
	if r.native != nil && r.native.Unread {
		r.native.Unread = false
		r.unread()
	}
}

// isFinal reports that the answer's last text has passed: in the stream
// relayed, or in the native one behind a translation.
func (r *streamReader) isFinal() bool {
	return r.st.Final || r.native != nil && r.native.Final
}

// syncFinal mirrors isFinal for the goroutine that decides, when the
// client leaves, whether to cancel the upstream.
func (r *streamReader) syncFinal() {
	if f := r.isFinal(); r.final != nil && r.final.Load() != f {
		r.final.Store(f)
	}
}

// finish handles the end of the upstream body, which is not read again:
// the read buffer goes back to the pool.
func (r *streamReader) finish(err error) {
	if r.pool != nil && r.chunk != nil {
		r.pool.p.Put((*[chunkSize]byte)(r.chunk))
	}
	r.chunk = nil
	var broken []byte
	switch {
	case errors.Is(err, io.EOF):
		if r.endsAtEOF {
			r.st.Done = true
		}
		r.err = io.EOF
	case r.ctx.Err() != nil:
		// The client is gone (or the deadline passed): nothing to tell it.
		r.err = err
	default:
		// The upstream broke the stream: tell the client in the stream's
		// own terms, then end it normally.
		if r.brokenEvent != nil {
			broken = r.brokenEvent("The upstream ended the stream unexpectedly; the answer is incomplete.")
		}
		r.err = io.EOF
	}
	r.end()
	// Charged: what was held goes out, then what the body left unended.
	r.out = append(append(append(r.out, r.held...), r.split.Rest()...), broken...)
	r.held = nil
}

func (r *streamReader) end() {
	if !r.ended {
		r.ended = true
		if r.onEnd != nil {
			r.onEnd()
		}
	}
}

// Close ends the relay. When the client left after the answer's last text
// and before its usage, the rest of the upstream stream is read first (at
// most usageDrainBytes, within usageDrainTime) to charge what the upstream
// reports rather than an estimate.
func (r *streamReader) Close() error {
	if !r.ended && r.isFinal() && r.err == nil {
		r.drain()
	}
	return r.src.Close()
}

func (r *streamReader) drain() {
	if r.cancel != nil {
		t := time.AfterFunc(usageDrainTime, r.cancel)
		defer t.Stop()
	}
	r.draining = true
	r.out, r.pos = r.out[:0], 0
	for read := 0; !r.ended && read < usageDrainBytes; {
		chunk := r.buffer()
		n, err := r.src.Read(chunk)
		r.nativeUnread()
		read += n
		if n > 0 {
			r.split.Feed(chunk[:n], r.emit)
		}
		if err != nil {
			r.finish(err)
		}
	}
	r.out = r.out[:0]
}
