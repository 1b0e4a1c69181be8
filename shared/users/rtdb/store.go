package rtdb

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"firebase.google.com/go/v4/db"

	"tollgate.dev/tollgate/shared/logging"
	"tollgate.dev/tollgate/shared/users"
)

// listPage is how many users List reads per request.
const listPage = 500

// readParallel bounds the concurrent reads of a flush.
const readParallel = 8

// eachParallel runs fn for every item, readParallel at a time, and
// returns the first error; every item is tried.
func eachParallel[T any](items []T, fn func(T) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, readParallel)
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// errGone aborts a transaction on a user that does not exist.
var errGone = errors.New("rtdb: user does not exist")

// invalidToken answers writes to a token that cannot be a database key;
// reads of one simply find nothing.
func invalidToken() error {
	return &users.Error{Code: users.CodeInvalid, Message: "Invalid token.",
		Issues: []users.Issue{{Path: "token", Message: "must be 1-128 letters, digits, '-' or '_'"}}}
}

// Get reads the user from the database (never from the cache) and
// refreshes the cache with it.
func (s *Store) Get(ctx context.Context, token string) (*users.User, error) {
	if !users.ValidToken(token) {
		return nil, users.ErrNotFound
	}
	start := s.curSeq()
	asked := s.o.Now()
	u, in, err := s.read(ctx, token)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.installLocked(token, u, start, false, asked)
	s.settleLocked(token, in)
	s.mu.Unlock()
	if u == nil {
		return nil, users.ErrNotFound
	}
	return u.Clone(), nil
}

// read is one GET of the user; nil when missing. in is this Store's
// number in the user's usageFlushed: its flushes numbered up to it are in
// the user.
func (s *Store) read(ctx context.Context, token string) (u *users.User, in int64, err error) {
	raw, err := s.readRaw(ctx, token)
	if err != nil || raw == nil {
		return nil, 0, err
	}
	u, err = userFromValue(token, raw)
	if err != nil {
		return nil, 0, users.AsError(err)
	}
	return u, flushedBy(raw, s.writer), nil
}

// readRaw is one GET of the user's stored value, decoded with json.Number.
func (s *Store) readRaw(ctx context.Context, token string) (any, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	var raw json.RawMessage
	if err := s.users.Child(token).Get(ctx, &raw); err != nil {
		return nil, unavailable(err)
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, users.AsError(fmt.Errorf("rtdb: user %s: %w", logging.TokenTail(token), err))
	}
	return v, nil
}

func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// List reads every user.
func (s *Store) List(ctx context.Context) ([]*users.User, error) {
	nodes, err := s.listRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*users.User, 0, len(nodes))
	for _, n := range nodes {
		u, err := userFromValue(n.key, n.val)
		if err != nil {
			return nil, users.AsError(err)
		}
		out = append(out, u)
	}
	return out, nil
}

// listRaw reads the users node in pages ordered by key, so that no answer
// grows with the number of users.
func (s *Store) listRaw(ctx context.Context) ([]child, error) {
	var out []child
	after := ""
	for {
		q := s.users.OrderByKey().LimitToFirst(listPage + 1)
		if after != "" {
			q = q.StartAt(after)
		}
		var raw json.RawMessage
		cctx, cancel := s.callCtx(ctx)
		err := q.Get(cctx, &raw)
		cancel()
		if err != nil {
			return nil, unavailable(err)
		}
		nodes, err := children(raw)
		if err != nil {
			return nil, users.AsError(err)
		}
		read := 0
		for _, n := range nodes {
			if n.key == after {
				continue // startAt is inclusive
			}
			read++
			out = append(out, n)
			after = n.key
		}
		if read < listPage {
			return out, nil
		}
	}
}

type child struct {
	key string
	val any
}

// children parses a query answer (an object, or the array RTDB makes of
// integer keys) into its non-null children in $key order.
func children(raw []byte) ([]child, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("rtdb: listing users: %w", err)
	}
	var out []child
	switch t := v.(type) {
	case nil:
	case map[string]any:
		for k, c := range t {
			out = append(out, child{k, c})
		}
	case []any:
		for i, c := range t {
			if c != nil {
				out = append(out, child{strconv.Itoa(i), c})
			}
		}
	default:
		return nil, fmt.Errorf("rtdb: the users node holds a %T, not users", v)
	}
	slices.SortFunc(out, func(a, b child) int { return compareKeys(a.key, b.key) })
	return out, nil
}

// compareKeys is RTDB's $key order: 32-bit integer keys first, by value,
// then the others as strings.
func compareKeys(a, b string) int {
	ai, aInt := intKey(a)
	bi, bInt := intKey(b)
	switch {
	case aInt && bInt:
		return int(min(max(ai-bi, -1), 1))
	case aInt:
		return -1
	case bInt:
		return 1
	}
	return strings.Compare(a, b)
}

func intKey(k string) (int64, bool) {
	n, err := strconv.ParseInt(k, 10, 32)
	return n, err == nil && strconv.FormatInt(n, 10) == k
}

// Modify is a transaction on the user node: fn runs on the latest stored
// state and again whenever another writer got there first; the write is
// conditional on the state fn saw.
func (s *Store) Modify(ctx context.Context, token string, create bool, fn users.ModifyFunc) (*users.User, error) {
	if !users.ValidToken(token) {
		if create {
			return nil, invalidToken()
		}
		return nil, users.ErrNotFound
	}
	unlock := s.lock(token)
	defer unlock()
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	asked := s.o.Now()

	var (
		result, seen *users.User
		fnErr        error
	)
	err := s.transaction(ctx, token, func(node db.TransactionNode) (any, error) {
		result, seen, fnErr = nil, nil, nil
		raw, cur, exists, err := decodeNode(token, node)
		if err != nil {
			fnErr = users.AsError(err)
			return nil, fnErr
		}
		seen = cur
		if !exists && !create {
			fnErr = users.ErrNotFound
			return nil, fnErr
		}
		next := &users.User{Token: token}
		if exists {
			next = cur.Clone()
		}
		next.Normalize()
		if err := fn(next, exists); err != nil {
			fnErr = err
			return nil, fnErr
		}
		next.Token = token
		next.Normalize()
		enc, err := encodeUser(next)
		if err != nil {
			fnErr = err
			return nil, fnErr
		}
		keepFlushed(raw, enc)
		stored := roundTrip(enc)
		if exists && reflect.DeepEqual(raw, stored) {
			result = cur
			fnErr = users.ErrNoWrite // nothing changed: spare the write
			return nil, fnErr
		}
		// Return what a read will give back (meta numbers as float64...).
		if result, err = userFromValue(token, stored); err != nil {
			fnErr = users.AsError(err)
			return nil, fnErr
		}
		return enc, nil
	})
	switch {
	case err == nil:
	case fnErr != nil && errors.Is(err, users.ErrNoWrite):
		s.mu.Lock()
		s.installLocked(token, seen, 0, true, asked)
		s.mu.Unlock()
		if result == nil {
			result = seen
		}
		if result == nil {
			return nil, nil // the memory store's answer for a missing user
		}
		return result.Clone(), nil
	case fnErr != nil: // the SDK returns the update function's error as is
		return nil, fnErr // fn's own error, unchanged
	default:
		return nil, unavailable(err)
	}
	s.mu.Lock()
	s.installLocked(token, result, 0, true, asked)
	s.mu.Unlock()
	return result.Clone(), nil
}

// maxAttempts bounds one transaction's conditional writes. Beyond that
// much contention on one user the caller gets the store's "unavailable"
// error (a flush keeps its usage and retries it later).
const maxAttempts = 25

// transaction runs fn on token's node as a conditional write of our own
// (not the SDK's Transaction): read the value with its ETag, run fn on it,
// and write fn's result only if the ETag still matches; on a mismatch,
// after a short jittered pause, read again and rerun fn, at most
// maxAttempts times and within ctx's deadline. fn's error is returned as
// is; a nil result deletes the node.
func (s *Store) transaction(ctx context.Context, token string, fn db.UpdateFn) error {
	return transactionAt(ctx, s.users.Child(token), "user "+logging.TokenTail(token), fn)
}

// transactionAt is transaction on any node; what names it in errors.
func transactionAt(ctx context.Context, ref *db.Ref, what string, fn db.UpdateFn) error {
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return err
			}
		}
		var raw json.RawMessage
		etag, err := ref.GetWithETag(ctx, &raw)
		if err != nil {
			return err
		}
		next, err := fn(node(raw))
		if err != nil {
			return err
		}
		written, err := ref.SetIfUnchanged(ctx, etag, next)
		if err != nil || written {
			return err
		}
	}
	return fmt.Errorf("%s: %d conditional writes in a row lost to other writers", what, maxAttempts)
}

// pause waits a random 0-2×attempt ms (at most 50 ms), so that writers
// that collided do not collide again in step.
func pause(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(min(2*attempt, 50))*int64(time.Millisecond) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// node is a value read for a transaction.
type node json.RawMessage

func (n node) Unmarshal(v any) error { return json.Unmarshal(n, v) }

// decodeNode reads a transaction's current value, raw (json.Number) and
// decoded; exists is false for null.
func decodeNode(token string, node db.TransactionNode) (raw any, u *users.User, exists bool, err error) {
	var b json.RawMessage
	if err := node.Unmarshal(&b); err != nil {
		return nil, nil, false, fmt.Errorf("rtdb: user %s: %w", logging.TokenTail(token), err)
	}
	if raw, err = decodeJSON(b); err != nil {
		return nil, nil, false, fmt.Errorf("rtdb: user %s: %w", logging.TokenTail(token), err)
	}
	if raw == nil {
		return nil, nil, false, nil
	}
	u, err = userFromValue(token, raw)
	return raw, u, err == nil, err
}

// roundTrip gives an encoded user the types a read decodes it to
// (json.Number, []any), to compare it with what is stored.
func roundTrip(enc map[string]any) any {
	b, _ := json.Marshal(enc)
	v, _ := decodeJSON(b)
	return v
}

// Delete removes the user with a conditional delete, so that a missing user
// is reported; this instance's pending usage for it is dropped.
func (s *Store) Delete(ctx context.Context, token string) error {
	_, err := s.deleteIf(ctx, token, nil)
	return err
}

// DeleteIf implements users.CondDeleter: the condition is judged on the
// state the conditional delete is made on.
func (s *Store) DeleteIf(ctx context.Context, token string, cond func(*users.User) bool) (bool, error) {
	return s.deleteIf(ctx, token, cond)
}

// errKept ends a conditional delete whose condition no longer holds.
var errKept = errors.New("rtdb: the user no longer meets the delete's condition")

func (s *Store) deleteIf(ctx context.Context, token string, cond func(*users.User) bool) (bool, error) {
	if !users.ValidToken(token) {
		return false, users.ErrNotFound
	}
	unlock := s.lock(token)
	defer unlock()
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	asked := s.o.Now()
	err := s.transaction(cctx, token, func(node db.TransactionNode) (any, error) {
		if cond != nil {
			_, u, exists, err := decodeNode(token, node)
			switch {
			case err != nil:
				return nil, err
			case !exists:
				return nil, errGone
			case !cond(u):
				return nil, errKept
			}
			return nil, nil
		}
		var raw json.RawMessage
		if err := node.Unmarshal(&raw); err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return nil, errGone
		}
		return nil, nil // PUT null: delete
	})
	if errors.Is(err, errKept) {
		return false, nil
	}
	if errors.Is(err, errGone) {
		err = users.ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil || users.IsNotFound(err) {
		s.installLocked(token, nil, 0, true, asked)
		if d := s.pending[token]; d != nil {
			s.o.Logf("rtdb: user %s deleted: dropping its %d unflushed prompts", logging.TokenTail(token), d.allPrompts())
			delete(s.pending, token)
		}
	}
	if err != nil && !users.IsNotFound(err) {
		return false, unavailable(err)
	}
	return err == nil, err
}
