package users

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// importParallel bounds the reads and writes one import runs at once.
const importParallel = 8

// importListAbove is how many entries make the import read every user
// (one paged List) rather than each of its users.
const importListAbove = 50

// ImportFailure is one entry an import validated but could not write.
type ImportFailure struct {
	Index int    // in the request
	Token string // the entry's token
	Err   *Error // why; CodeNotFound when the user was deleted meanwhile
}

// ImportReport is what an import did: the users written, in the request's
// order, and the entries it could not write.
type ImportReport struct {
	Written []*User
	Failed  []ImportFailure
}

// ImportEach upserts every entry. First every entry is validated against
// its user's current state: if any is invalid, nothing is written and the
// error lists every issue (users[i].field). Then each user is written with
// its own Store.Modify, so that each is a conditional write on that user's
// latest state: a charge or an edit landing meanwhile is kept (only the
// entry's own fields change), a record is never written in part, and a
// user that existed when the import began and is gone when its write comes
// is not re-created but reported (CodeNotFound). Entries that fail at that
// stage are reported; the others are written.
func (s *Service) ImportEach(ctx context.Context, ps []Patch) (*ImportReport, error) {
	tokens := make([]string, len(ps))
	for i, p := range ps {
		if !p.Token.has() || !ValidToken(p.Token.Value) {
			return nil, invalid([]Issue{{Path: usersPath(i) + ".token", Message: "must be 1-128 letters, digits, '-' or '_'"}})
		}
		tokens[i] = p.Token.Value
	}
	before, err := s.current(ctx, tokens)
	if err != nil {
		return nil, err
	}
	var issues []Issue
	for i, p := range ps {
		var u *User
		if cur := before[tokens[i]]; cur != nil {
			u = cur.Clone()
			u.Normalize()
			p.Apply(u)
			err = u.Validate()
		} else {
			u = &User{}
			err = s.fill(u, tokens[i], p)
		}
		if err == nil {
			continue
		}
		e := AsError(prefixIssues(err, i))
		if e.Code != CodeInvalid {
			return nil, e
		}
		issues = append(issues, e.Issues...)
	}
	if len(issues) > 0 {
		return nil, invalid(issues)
	}

	written := make([]*User, len(ps))
	errs := make([]error, len(ps))
	each(len(ps), func(i int) {
		written[i], errs[i] = s.importOne(ctx, i, ps[i], before[tokens[i]])
	})
	rep := &ImportReport{Written: make([]*User, 0, len(ps))}
	for i, err := range errs {
		if err != nil {
			rep.Failed = append(rep.Failed, ImportFailure{Index: i, Token: tokens[i], Err: importError(err)})
			continue
		}
		rep.Written = append(rep.Written, written[i])
	}
	return rep, nil
}

// importOne writes one entry on its user's latest state. A user that
// existed when the import began (before) is only updated, never
// re-created, and usage charged since then stays on top of the entry's
// counts: an export restored on a live system would otherwise hand back
// what was spent during the import.
func (s *Service) importOne(ctx context.Context, i int, p Patch, before *User) (*User, error) {
	token := p.Token.Value
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "The import ran out of time before this user.", Err: err}
	}
	existed := before != nil
	var tried []byte // the user this call's last run asked to write
	u, err := s.Store.Modify(ctx, token, !existed, func(u *User, exists bool) error {
		if tried != nil && bytes.Equal(userJSON(u), tried) {
			// Run again on the user its own write made (the database
			// client sent it again, its answer lost): measured against
			// before, the entry's own change would count as a charge.
			return ErrNoWrite
		}
		if !exists {
			err := prefixIssues(s.fill(u, token, p), i)
			tried = userJSON(u)
			return err
		}
		var since map[string]int64
		var prompts int64
		if existed {
			for f, n := range u.TokenCounts {
				if d := n - before.TokenCounts[f]; d > 0 {
					if since == nil {
						since = map[string]int64{}
					}
					since[f] = d
				}
			}
			prompts = u.PromptCount - before.PromptCount
		}
		p.Apply(u)
		if p.TokenCounts.Set {
			for f, d := range since {
				if u.TokenCounts == nil {
					u.TokenCounts = map[string]int64{}
				}
				u.TokenCounts[f] += d
			}
		}
		if p.PromptCount.Set && prompts > 0 {
			u.PromptCount += prompts
		}
		tried = userJSON(u)
		return prefixIssues(u.Validate(), i)
	})
	if existed && IsNotFound(err) {
		return nil, Errorf(CodeNotFound, "The user was deleted during the import; it is not re-created.")
	}
	return u, err
}

// userJSON is u as a store holds it, to tell a user apart from another.
func userJSON(u *User) []byte {
	c := u.Clone()
	c.Normalize()
	b, _ := json.Marshal(c)
	return b
}

// importError gives a failed write its client-safe error.
func importError(err error) *Error {
	e := AsError(err)
	if e.Code == CodeInvalid {
		// Valid when the import began, invalid on the user's new state.
		return &Error{Code: CodeConflict, Message: "The user changed during the import and the entry no longer applies: " + e.Message, Issues: e.Issues}
	}
	return e
}

// Import is ImportEach for callers that want all or an error: when some
// entries could not be written, the error (CodeConflict) names them; the
// written users are returned either way.
func (s *Service) Import(ctx context.Context, ps []Patch) ([]*User, error) {
	rep, err := s.ImportEach(ctx, ps)
	if err != nil {
		return nil, err
	}
	if len(rep.Failed) == 0 {
		return rep.Written, nil
	}
	parts := make([]string, 0, min(len(rep.Failed), 3))
	for _, f := range rep.Failed[:min(len(rep.Failed), 3)] {
		parts = append(parts, usersPath(f.Index)+": "+f.Err.Message)
	}
	more := ""
	if len(rep.Failed) > 3 {
		more = fmt.Sprintf(" And %d more.", len(rep.Failed)-3)
	}
	return rep.Written, Errorf(CodeConflict, "Imported %d of %d users. Not written: %s%s",
		len(rep.Written), len(ps), strings.Join(parts, " "), more)
}

// current reads the users of tokens as they are now (absent: missing):
// each one when few, else every user in one paged List.
func (s *Service) current(ctx context.Context, tokens []string) (map[string]*User, error) {
	out := make(map[string]*User, len(tokens))
	if len(tokens) > importListAbove {
		list, err := s.Store.List(ctx)
		if err != nil {
			return nil, err
		}
		want := make(map[string]bool, len(tokens))
		for _, t := range tokens {
			want[t] = true
		}
		for _, u := range list {
			if want[u.Token] {
				out[u.Token] = u
			}
		}
		return out, nil
	}
	var mu sync.Mutex
	var firstErr error
	each(len(tokens), func(i int) {
		u, err := s.Store.Get(ctx, tokens[i])
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			out[tokens[i]] = u
		case !IsNotFound(err) && firstErr == nil:
			firstErr = err
		}
	})
	return out, firstErr
}

// each runs fn(0..n-1), importParallel at a time.
func each(n int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, importParallel)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

func prefixIssues(err error, i int) error {
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalid {
		return err
	}
	issues := make([]Issue, len(e.Issues))
	for j, is := range e.Issues {
		issues[j] = Issue{Path: usersPath(i) + "." + is.Path, Message: is.Message}
	}
	return invalid(issues)
}

func usersPath(i int) string { return "users[" + strconv.Itoa(i) + "]" }
