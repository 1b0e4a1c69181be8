package rtdb

import (
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// A user's deltas sent without an answer stay apart, each under its own
// number, but no more than maxSent of them: a database that takes every
// write and loses every answer does not make an instance's memory grow
// with each flush. Nothing is lost: the two oldest are joined under the
// newer's number, and every prompt is still sent.
func TestSentDeltasAreBounded(t *testing.T) {
	s := &Store{pending: map[string]*delta{}}
	const flushes = maxSent + 5
	for i := range flushes {
		d := s.pending["tok"]
		if d == nil {
			d = &delta{}
		}
		delete(s.pending, "tok")
		d.add(users.Usage{Family: "gpt4o", Tokens: 10, At: time.UnixMilli(1)})
		d.seq = int64(i + 1)
		s.keepLocked("tok", d, outcome{sent: true})
	}
	p := s.pending["tok"]
	if len(p.sent) != maxSent || p.prompts != 0 {
		t.Fatalf("%d deltas kept apart (and %d prompts unsent), want %d", len(p.sent), p.prompts, maxSent)
	}
	if n := p.allPrompts(); n != flushes {
		t.Fatalf("%d prompts kept, want %d: usage lost", n, flushes)
	}
	for i, x := range p.sent {
		if want := int64(flushes - maxSent + 1 + i); x.seq != want {
			t.Fatalf("delta %d has number %d, want %d (the oldest joined under the newer's)", i, x.seq, want)
		}
	}
	// The database holding the first 10 flushes: the rest is added.
	delete(s.pending, "tok")
	p.seq = flushes + 1
	s.keepLocked("tok", p, outcome{applied: 10})
	if n := s.pending["tok"].allPrompts(); n != flushes-10 {
		t.Fatalf("after a read showing 10 flushes in: %d prompts kept, want %d", n, flushes-10)
	}
}
