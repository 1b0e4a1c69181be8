package rtdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"firebase.google.com/go/v4/db"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
)

// entry is a cached read: user nil means "known missing".
type entry struct {
	user *users.User
	// at is when the call that gave the copy was made, on the store's
	// clock: an answer can arrive late (it waited through a freeze of
	// the instance), and is no younger than the question.
	at  time.Time
	seq uint64
}

// delta is one user's usage not yet in the database, and the addresses
// to record (users.IPRecorder), oldest first, under the IP limit ipMax.
type delta struct {
	prompts  int64
	tokens   map[string]int64
	lastUsed int64 // epoch ms, the latest
	ips      []string
	ipMax    int64 // MAX_IPS_PER_USER

	// seq is the number of the flush that sent the delta (0: not sent).
	// A delta sent without an answer may be in the database already: it
	// takes no more usage, and is sent again under its own number until
	// a read of the user's usageFlushed tells it is there.
	seq int64
	// sent are the user's earlier deltas sent without an answer, oldest
	// first; each flush of the user sends them with it.
	sent []*delta
}

// each calls fn on the deltas of the user's flush, oldest first: the
// ones sent without an answer, then d.
func (d *delta) each(fn func(*delta)) {
	for _, x := range d.sent {
		fn(x)
	}
	fn(d)
}

// allPrompts counts the prompts of d and the deltas sent before it.
func (d *delta) allPrompts() int64 {
	var n int64
	d.each(func(x *delta) { n += x.prompts })
	return n
}

// addIP keeps ip to record, the latest users.MaxRecordedIPs at most (a
// record keeps no more).
func (d *delta) addIP(ip string) {
	if slices.Contains(d.ips, ip) {
		return
	}
	if len(d.ips) >= users.MaxRecordedIPs {
		d.ips = slices.Delete(d.ips, 0, 1)
	}
	d.ips = append(d.ips, ip)
}

func (d *delta) add(u users.Usage) {
	d.prompts++
	if d.tokens == nil {
		d.tokens = map[string]int64{}
	}
	d.tokens[u.Family] += u.Tokens
	d.lastUsed = max(d.lastUsed, u.At.UnixMilli())
}

func (d *delta) merge(o *delta) {
	d.prompts += o.prompts
	for f, n := range o.tokens {
		if d.tokens == nil {
			d.tokens = map[string]int64{}
		}
		d.tokens[f] += n
	}
	d.lastUsed = max(d.lastUsed, o.lastUsed)
	for _, ip := range o.ips {
		d.addIP(ip)
	}
	if len(o.ips) > 0 {
		d.ipMax = o.ipMax
	}
}

// applyTo charges u as users.User.Charge would have, once per prompt,
// with d and the deltas sent before it (Lookup's view). The addresses are
// written (applyIPs), not shown in Lookup's view: no check needs them
// there, and each would cost every Lookup a pass over the user's
// addresses.
func (d *delta) applyTo(u *users.User) {
	d.each(func(x *delta) { x.applyOwn(u) })
}

// applyOwn charges u with d's usage alone.
func (d *delta) applyOwn(u *users.User) {
	u.PromptCount += d.prompts
	if u.TokenCounts == nil {
		u.TokenCounts = map[string]int64{}
	}
	for f, n := range d.tokens {
		u.TokenCounts[f] += n
	}
	u.LastUsedAt = max(u.LastUsedAt, d.lastUsed)
}

// applyIPs records the addresses of d alone that u, as it is now, has
// room for.
func (d *delta) applyIPs(u *users.User) {
	for _, ip := range d.ips {
		users.RecordIP(u, ip, d.ipMax)
	}
}

func (s *Store) curSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

// installLocked caches u for token, as of asked (when the call that gave
// it was made), and returns the entry to answer from (nil: none). A read
// (force false) that started at seq start does not replace what was
// installed after it started, which is newer (a write's result). Nor is
// a read installed while a flush of the user is under way: it may or may
// not include that flush, and counting the in-flight usage on top of it
// could count it twice; the flush installs its result when done.
func (s *Store) installLocked(token string, u *users.User, start uint64, force bool, asked time.Time) *entry {
	if e := s.cache[token]; !force && (s.inflight[token] != nil || e != nil && e.seq > start) {
		return e
	}
	s.seq++
	if u != nil {
		u = u.Clone()
	}
	e := &entry{user: u, at: asked, seq: s.seq}
	s.cache[token] = e
	return e
}

func (s *Store) freshLocked(e *entry) bool {
	return e != nil && s.o.CacheTTL > 0 && s.o.Now().Sub(e.at) < s.o.CacheTTL
}

// viewLocked is the cached user with this instance's unflushed usage on top.
func (s *Store) viewLocked(token string, e *entry) *users.User {
	if e.user == nil {
		return nil
	}
	u := e.user.Clone()
	if d := s.inflight[token]; d != nil {
		d.applyTo(u)
	}
	if d := s.pending[token]; d != nil {
		d.applyTo(u)
	}
	return u
}

// Lookup answers from the cache while it is fresh (no database call), else
// reads the user and caches it; this instance's pending usage is applied.
// While this instance is flushing the user, a cached copy is used even if
// stale: the flush refreshes it within CallTimeout.
func (s *Store) Lookup(ctx context.Context, token string, read func(*users.User)) error {
	if !users.ValidToken(token) {
		return users.ErrNotFound
	}
	s.mu.Lock()
	if e := s.cache[token]; s.freshLocked(e) && e.user != nil && s.inflight[token] == nil && s.pending[token] == nil {
		// Nothing of this instance's to apply: the view is the cached
		// user, which is never changed once installed (installLocked
		// caches a copy of its own), so read shares it without the lock.
		u := e.user
		s.mu.Unlock()
		read(u)
		return nil
	}
	s.mu.Unlock()
	u, err := s.lookup(ctx, token)
	if err != nil {
		return err
	}
	read(u) // this call's own copy
	return nil
}

func (s *Store) lookup(ctx context.Context, token string) (*users.User, error) {
	if !users.ValidToken(token) {
		return nil, users.ErrNotFound
	}
	s.mu.Lock()
	if e := s.cache[token]; s.freshLocked(e) || e != nil && s.inflight[token] != nil {
		u := s.viewLocked(token, e)
		s.mu.Unlock()
		if u == nil {
			return nil, users.ErrNotFound
		}
		return u, nil
	}
	start := s.seq
	s.mu.Unlock()

	asked := s.o.Now()
	u, in, err := s.read(ctx, token)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.settleLocked(token, in)
	e := s.installLocked(token, u, start, false, asked)
	if e == nil {
		e = &entry{user: u} // flushing a user never looked up here
	}
	v := s.viewLocked(token, e)
	s.mu.Unlock()
	if v == nil {
		return nil, users.ErrNotFound
	}
	return v, nil
}

// settleLocked drops from token's pending usage the deltas sent without
// an answer that a read of the user shows are in it (numbered up to in):
// Lookup's view does not count them again on top of a copy that has them.
func (s *Store) settleLocked(token string, in int64) {
	if p := s.pending[token]; p != nil && len(p.sent) > 0 {
		p.sent = slices.DeleteFunc(slices.Clone(p.sent), func(x *delta) bool { return x.seq <= in })
	}
}

// RecordUsage adds u to the user's pending usage; the flusher writes it.
// A user this instance knows to be missing is refused.
func (s *Store) RecordUsage(ctx context.Context, token string, u users.Usage) error {
	return s.addPending(token, func(d *delta) { d.add(u) })
}

// RecordIP implements users.IPRecorder: ip is kept with the user's
// pending usage and written by the next flush.
func (s *Store) RecordIP(ctx context.Context, token, ip string, defaultMax int64) error {
	return s.addPending(token, func(d *delta) {
		d.addIP(ip)
		d.ipMax = defaultMax
	})
}

// addPending adds to token's pending delta with add, under the store's
// lock; a user this instance knows to be missing is refused.
func (s *Store) addPending(token string, add func(*delta)) error {
	if !users.ValidToken(token) {
		return users.ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.cache[token]; s.freshLocked(e) && e.user == nil {
		return users.ErrNotFound
	}
	d := s.pending[token]
	if d == nil {
		d = &delta{}
		s.pending[token] = d
	}
	add(d)
	return nil
}

// Flush writes all pending usage now, one transaction per user, a few at a
// time. Usage that cannot be written is kept for the next flush and the
// first error is returned; an unavailable database ends the round: no
// further user is tried. A write the database made whose answer was lost
// is counted once (flushUser). Calls already sent are not canceled: their
// answer settles what they sent. A user's usage becomes in flight only
// when a worker takes it up, not while it waits its turn: Lookup answers
// from a stale copy only while that user's own write is under way. A
// flush waits for the one under way, until ctx ends at most.
func (s *Store) Flush(ctx context.Context) error {
	select {
	case s.flushing <- struct{}{}:
	case <-ctx.Done():
		return unavailable(fmt.Errorf("waiting for the flush under way: %w", ctx.Err()))
	}
	defer func() { <-s.flushing }()

	s.mu.Lock()
	tokens := slices.Collect(maps.Keys(s.pending))
	s.mu.Unlock()
	if len(tokens) == 0 {
		return nil
	}

	work := make(chan string)
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		down     atomic.Bool // the database is likely down: keep the rest for later
	)
	for range min(readParallel, len(tokens)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for token := range work {
				if down.Load() {
					continue // its usage stays pending
				}
				s.mu.Lock()
				d := s.pending[token]
				delete(s.pending, token)
				if d != nil {
					s.inflight[token] = d
				}
				s.mu.Unlock()
				if d == nil {
					continue
				}
				err := s.flushUser(ctx, token, d)
				if err == nil {
					continue
				}
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				if users.ErrorCode(err) == users.CodeUnavailable {
					down.Store(true)
				}
				errMu.Unlock()
			}
		}()
	}
	for _, token := range tokens {
		work <- token
	}
	close(work)
	wg.Wait()
	return firstErr
}

// flushUser applies d, and the deltas sent before it without an answer,
// to token's user in one transaction, which writes d's number as this
// Store's in the user's usageFlushed. A write the database made whose
// answer was lost, sent again by the Firebase client (it then finds the
// value changed and the transaction runs again) or by the next flush,
// finds its number there and adds nothing: counted once. It holds the
// user's lock until the cache is updated, so that no write of this
// instance lands between the transaction and the update.
func (s *Store) flushUser(ctx context.Context, token string, d *delta) error {
	unlock := s.lock(token)
	defer unlock()
	if d.seq == 0 {
		d.seq = s.nextFlush()
	}
	asked := s.o.Now()
	written, out, err := s.applyUsage(ctx, token, d)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, token)
	switch {
	case err == nil:
		s.installLocked(token, written, 0, true, asked)
		return nil
	case errors.Is(err, errGone):
		s.installLocked(token, nil, 0, true, asked)
		s.o.Logf("rtdb: user %s no longer exists: dropping its %d unflushed prompts", logging.TokenTail(token), d.allPrompts())
		return nil
	}
	s.keepLocked(token, d, out)
	return err
}

// nextFlush numbers a flush of this Store: its epoch ms, or one more
// than the previous number when that is not smaller.
func (s *Store) nextFlush() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastFlush = max(s.lastFlush+1, s.o.Now().UnixMilli())
	return s.lastFlush
}

// outcome is what a failed flush of a user learnt: the user's
// usageFlushed number for this Store at its last read (deltas numbered up
// to it are in the database), and whether it sent a write whose outcome
// it does not know.
type outcome struct {
	applied int64
	sent    bool
}

// keepLocked puts back what d's failed flush may not have written, ahead
// of what was recorded meanwhile. The deltas known to be in the database
// are dropped. The others that were sent keep their numbers and stay
// apart, each to be added only if its number is not in the record; d,
// if its flush sent nothing, takes the usage recorded meanwhile.
func (s *Store) keepLocked(token string, d *delta, out outcome) {
	var sent []*delta
	for _, x := range d.sent {
		if x.seq > out.applied {
			sent = append(sent, x)
		}
	}
	next := &delta{}
	if d.seq > out.applied {
		own := *d
		own.sent = nil
		if out.sent {
			sent = append(sent, &own)
		} else {
			own.seq = 0
			next = &own
		}
	}
	if p := s.pending[token]; p != nil {
		next.merge(p)
		for _, x := range p.sent { // none: p was begun after d was taken
			if x.seq > out.applied {
				sent = append(sent, x)
			}
		}
	}
	for len(sent) > maxSent {
		merged := *sent[0]
		merged.merge(sent[1])
		merged.seq = sent[1].seq
		sent = append([]*delta{&merged}, sent[2:]...)
	}
	next.sent = sent
	s.pending[token] = next
}

// maxSent bounds a user's deltas sent without an answer, kept apart. A
// flush adds one only when it sent a write and heard nothing back, so
// they pile up only while the database takes writes and loses every
// answer. Beyond maxSent the two oldest become one under the newer's
// number: it counts twice what the older added if the database has the
// older and not the newer, and never loses it.
const maxSent = 16

// errInAlready ends a flush's transaction that finds all its deltas in
// the record: nothing to write.
var errInAlready = errors.New("rtdb: the usage is in the record already")

func (s *Store) applyUsage(ctx context.Context, token string, d *delta) (*users.User, outcome, error) {
	var out outcome
	if ctx.Err() != nil {
		return nil, out, unavailable(ctx.Err())
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	var written *users.User
	var fnErr error
	err := s.transaction(ctx, token, func(node db.TransactionNode) (any, error) {
		raw, cur, exists, err := decodeNode(token, node)
		if err != nil {
			fnErr = err
			return nil, err
		}
		if !exists {
			return nil, errGone
		}
		flushed := decodeFlushed(raw)
		in := flushed[s.writer]
		out.applied = max(out.applied, in)
		adds := false
		d.each(func(x *delta) {
			if x.seq > in {
				x.applyOwn(cur)
				x.applyIPs(cur)
				adds = true
			}
		})
		written = cur
		if !adds {
			return nil, errInAlready
		}
		flushed[s.writer] = d.seq
		pruneFlushed(flushed, s.writer, s.o.Now().UnixMilli())
		enc, err := encodeUser(cur)
		if err != nil {
			fnErr = err
			return nil, err
		}
		enc[flushedField] = encodeFlushed(flushed)
		out.sent = true
		return enc, nil
	})
	switch {
	case err == nil, errors.Is(err, errInAlready):
		return written, out, nil
	case errors.Is(err, errGone):
		return nil, out, err
	case fnErr != nil:
		return nil, out, users.AsError(fnErr)
	}
	return nil, out, unavailable(err)
}

// runFlusher flushes every FlushEvery until ctx ends, and drops cache
// entries past their TTL so the cache holds only recently used users.
func (s *Store) runFlusher(ctx context.Context) {
	defer close(s.flusherDone)
	t := time.NewTicker(s.o.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Stopping ends the loop, never a flush under way: a call canceled
		// once sent would leave its usage unsettled (sent again by the next
		// flush, to be added only if it is not in the record).
		if err := s.Flush(context.WithoutCancel(ctx)); err != nil && ctx.Err() == nil {
			s.o.Logf("rtdb: flushing usage failed; it is kept and retried in %s: %v", s.o.FlushEvery, err)
		}
		s.sweep()
	}
}

func (s *Store) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for token, e := range s.cache {
		if !s.freshLocked(e) && s.pending[token] == nil && s.inflight[token] == nil {
			delete(s.cache, token)
		}
	}
}

// Close stops the flusher, lets a flush under way finish, and flushes what
// is pending (the SIGTERM path), all within ctx: past its deadline Close
// returns, and a flush under way (a request's) goes on without it. It
// may be called more than once; each call flushes.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(s.stopFlusher)
	select {
	case <-s.flusherDone:
	case <-ctx.Done():
		return unavailable(fmt.Errorf("waiting for the flush under way: %w", ctx.Err()))
	}
	return s.Flush(ctx)
}
