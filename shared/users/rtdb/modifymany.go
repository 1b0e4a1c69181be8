package rtdb

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"

	"tollgate.dev/tollgate/shared/users"
)

// ModifyMany runs every fn on the current state of its user, then, if none
// failed, writes all the changes in one multi-path update, which RTDB
// applies atomically: all or nothing. Only the fields a fn changed are
// written (down to single families and meta keys), so concurrent changes to
// other fields survive; a concurrent change to one of those same fields
// between the read and the write is overwritten (last writer wins), and a
// user deleted in that window comes back with only the changed fields.
// Single-user Modify has none of these windows.
func (s *Store) ModifyMany(ctx context.Context, fns map[string]users.ModifyFunc) ([]*users.User, error) {
	tokens := make([]string, 0, len(fns))
	for token := range fns {
		if !users.ValidToken(token) {
			return nil, invalidToken()
		}
		tokens = append(tokens, token)
	}
	slices.Sort(tokens)
	defer s.lockAll(tokens)()

	start := s.curSeq()
	current, err := s.readMany(ctx, tokens)
	if err != nil {
		return nil, err
	}
	update := map[string]any{}
	var written []*users.User
	for _, token := range tokens {
		cur := current[token]
		exists := cur.user != nil
		next := &users.User{Token: token}
		if exists {
			next = cur.user.Clone()
		}
		next.Normalize()
		err := fns[token](next, exists)
		if errors.Is(err, users.ErrNoWrite) {
			continue
		}
		if err != nil {
			return nil, err
		}
		next.Token = token
		next.Normalize()
		enc, err := encodeUser(next)
		if err != nil {
			return nil, err
		}
		stored := roundTrip(enc).(map[string]any)
		if old, ok := cur.raw.(map[string]any); ok {
			diff(token, old, stored, update)
		} else {
			update[token] = stored
		}
		u, err := userFromValue(token, stored)
		if err != nil {
			return nil, users.AsError(err)
		}
		written = append(written, u)
	}
	if len(update) > 0 {
		cctx, cancel := s.callCtx(ctx)
		err := s.users.Update(cctx, update)
		cancel()
		if err != nil {
			return nil, unavailable(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for token, cur := range current {
		s.installLocked(token, cur.user, start, false)
	}
	out := make([]*users.User, len(written))
	for i, u := range written {
		s.installLocked(u.Token, u, 0, true)
		out[i] = u.Clone()
	}
	return out, nil
}

// diff adds to update the multi-path writes that turn the stored old into
// new below prefix: objects are compared member by member, anything else
// is replaced, and members new lacks are deleted (fields this code does not
// know included, as a Modify's whole-node write would).
func diff(prefix string, old, new map[string]any, update map[string]any) {
	for k, o := range old {
		n, ok := new[k]
		if !ok {
			update[prefix+"/"+k] = nil
			continue
		}
		om, oObj := o.(map[string]any)
		nm, nObj := n.(map[string]any)
		switch {
		case oObj && nObj:
			diff(prefix+"/"+k, om, nm, update)
		case !reflect.DeepEqual(o, n):
			update[prefix+"/"+k] = n
		}
	}
	for k, n := range new {
		if _, ok := old[k]; !ok {
			update[prefix+"/"+k] = n
		}
	}
}

// stored is one user as read: raw (json.Number) and decoded; both nil when
// the user is missing.
type stored struct {
	raw  any
	user *users.User
}

// readMany reads tokens' users: one by one when few, else the whole users
// node page by page.
func (s *Store) readMany(ctx context.Context, tokens []string) (map[string]stored, error) {
	out := make(map[string]stored, len(tokens))
	if len(tokens) > listPage/10 {
		nodes, err := s.listRaw(ctx)
		if err != nil {
			return nil, err
		}
		want := make(map[string]bool, len(tokens))
		for _, t := range tokens {
			want[t] = true
			out[t] = stored{}
		}
		for _, n := range nodes {
			if !want[n.key] {
				continue
			}
			u, err := userFromValue(n.key, n.val)
			if err != nil {
				return nil, users.AsError(err)
			}
			out[n.key] = stored{n.val, u}
		}
		return out, nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, readParallel)
	for _, token := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			raw, err := s.readRaw(ctx, token)
			var u *users.User
			if err == nil && raw != nil {
				if u, err = userFromValue(token, raw); err != nil {
					err = users.AsError(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			out[token] = stored{raw, u}
		}()
	}
	wg.Wait()
	return out, firstErr
}

// lockAll takes the per-user locks of tokens in index order (no deadlock
// with one another or with single-user writers).
func (s *Store) lockAll(tokens []string) func() {
	idx := make([]int, 0, len(tokens))
	for _, t := range tokens {
		idx = append(idx, lockIndex(t))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.locks[i].Lock()
	}
	return func() {
		for _, i := range idx {
			s.locks[i].Unlock()
		}
	}
}
