package rtdb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"firebase.google.com/go/v4/db"

	"tollgate.dev/tollgate/shared/users"
)

// Events live beside the users node, at <ref>_events/<token>/<event id>:
// an event ID starts with its time (13 digits of epoch ms), so a page is
// one key-ordered query, and pruning one query per user for the names
// below the cut-off, with no index to declare. The live IP lists are one
// node, <ref>_iplists.

// eventPruneBatch bounds the events one prune request deletes.
const eventPruneBatch = 1000

var (
	_ users.Events    = (*Store)(nil)
	_ users.LiveLists = (*Store)(nil)
)

func (s *Store) eventsRef() *db.Ref {
	return s.users.Parent().Child(s.users.Key + "_events")
}

func (s *Store) listsRef() *db.Ref {
	return s.users.Parent().Child(s.users.Key + "_iplists")
}

// storedEvent is an event as written: its ID is the node's name.
type storedEvent struct {
	At     int64  `json:"at"`
	Family string `json:"family"`
	Model  string `json:"model,omitempty"`
	Input  int64  `json:"in"`
	Output int64  `json:"out"`
	IPTail string `json:"ip,omitempty"`
	Status int    `json:"status"`
}

// AddEvent writes e under a new ID: one write, no transaction (an ID is
// never reused).
func (s *Store) AddEvent(ctx context.Context, token string, e users.Event) error {
	if !users.ValidToken(token) {
		return invalidToken()
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	id := users.NewEventID(time.UnixMilli(e.At))
	v := storedEvent{At: e.At, Family: e.Family, Model: e.Model, Input: e.Input, Output: e.Output, IPTail: e.IPTail, Status: e.Status}
	if err := s.eventsRef().Child(token).Child(id).Set(ctx, v); err != nil {
		return unavailable(err)
	}
	return nil
}

// EventPage reads up to limit events older than cursor, newest first.
func (s *Store) EventPage(ctx context.Context, token, cursor string, limit int) (users.EventPage, error) {
	limit, err := users.CheckEventPage(cursor, limit)
	if err != nil {
		return users.EventPage{}, err
	}
	page := users.EventPage{Events: []users.Event{}}
	if !users.ValidToken(token) {
		return page, nil
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	q := s.eventsRef().Child(token).OrderByKey()
	if cursor != "" {
		// EndAt includes the cursor itself: one more is read and dropped.
		q = q.EndAt(cursor).LimitToLast(limit + 2)
	} else {
		q = q.LimitToLast(limit + 1)
	}
	list, err := readEvents(ctx, q)
	if err != nil {
		return users.EventPage{}, err
	}
	list = slices.DeleteFunc(list, func(e users.Event) bool { return e.ID == cursor })
	slices.Reverse(list)
	if len(list) > limit {
		list = list[:limit]
		page.Next = list[limit-1].ID
	}
	page.Events = append(page.Events, list...)
	return page, nil
}

// readEvents runs q and returns its events oldest first.
func readEvents(ctx context.Context, q *db.Query) ([]users.Event, error) {
	var raw map[string]json.RawMessage
	if err := q.Get(ctx, &raw); err != nil {
		return nil, unavailable(err)
	}
	out := make([]users.Event, 0, len(raw))
	for id, b := range raw {
		var v storedEvent
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, users.AsError(fmt.Errorf("rtdb: event %s: %w", id, err))
		}
		out = append(out, users.Event{ID: id, At: v.At, Family: v.Family, Model: v.Model, Input: v.Input, Output: v.Output, IPTail: v.IPTail, Status: v.Status})
	}
	slices.SortFunc(out, func(a, b users.Event) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// eventTokens lists the users that have events (names only).
func (s *Store) eventTokens(ctx context.Context) ([]string, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	var shallow map[string]any
	if err := s.eventsRef().GetShallow(ctx, &shallow); err != nil {
		return nil, unavailable(err)
	}
	out := make([]string, 0, len(shallow))
	for k := range shallow {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

// eachEventUser runs fn for every user with events, readParallel at a
// time; the first error wins.
func (s *Store) eachEventUser(ctx context.Context, fn func(ctx context.Context, token string) error) error {
	tokens, err := s.eventTokens(ctx)
	if err != nil {
		return err
	}
	return eachParallel(tokens, func(token string) error { return fn(ctx, token) })
}

// EventsSince reads every user's events at or after since.
func (s *Store) EventsSince(ctx context.Context, since time.Time, perUser int) (map[string][]users.Event, error) {
	var mu sync.Mutex
	out := map[string][]users.Event{}
	err := s.eachEventUser(ctx, func(ctx context.Context, token string) error {
		ctx, cancel := s.callCtx(ctx)
		defer cancel()
		list, err := readEvents(ctx, s.eventsRef().Child(token).OrderByKey().StartAt(users.EventIDPrefix(since)).LimitToLast(max(perUser, 1)))
		if err != nil || len(list) == 0 {
			return err
		}
		mu.Lock()
		out[token] = list
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PruneEvents deletes the events older than before, a batch per request.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	var mu sync.Mutex
	total := 0
	cut := users.EventIDPrefix(before)
	err := s.eachEventUser(ctx, func(ctx context.Context, token string) error {
		ref := s.eventsRef().Child(token)
		for {
			n, err := s.pruneBatch(ctx, ref, cut)
			mu.Lock()
			total += n
			mu.Unlock()
			if err != nil || n < eventPruneBatch {
				return err
			}
		}
	})
	return total, err
}

func (s *Store) pruneBatch(ctx context.Context, ref *db.Ref, cut string) (int, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	// Names of earlier events ("<earlier>-id") sort before cut ("<before>").
	var shallow map[string]json.RawMessage
	if err := ref.OrderByKey().EndAt(cut).LimitToFirst(eventPruneBatch).Get(ctx, &shallow); err != nil {
		return 0, unavailable(err)
	}
	if len(shallow) == 0 {
		return 0, nil
	}
	del := make(map[string]any, len(shallow))
	for id := range shallow {
		del[id] = nil
	}
	if err := ref.Update(ctx, del); err != nil {
		return 0, unavailable(err)
	}
	return len(shallow), nil
}

// IPLists reads the live lists; their version is the node's ETag.
func (s *Store) IPLists(ctx context.Context) (users.IPLists, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	var l users.IPLists
	etag, err := s.listsRef().GetWithETag(ctx, &l)
	if err != nil {
		return users.IPLists{}, unavailable(err)
	}
	if !users.WellFormedVersion(etag) { // a version the next save could not be conditioned on
		return users.IPLists{}, &users.Error{Code: users.CodeInternal, Message: "Internal error.", Err: fmt.Errorf("rtdb: the IP lists came with the ETag %q", etag)}
	}
	l.Version = etag
	if l.Whitelist == nil {
		l.Whitelist = []string{}
	}
	if l.Blacklist == nil {
		l.Blacklist = []string{}
	}
	if err := l.Validate(); err != nil {
		return users.IPLists{}, &users.Error{Code: users.CodeInternal, Message: "Internal error.", Err: fmt.Errorf("rtdb: the stored IP lists are damaged: %w", err)}
	}
	return l, nil
}

// SetIPLists replaces the live lists in one write; with l.Version, a
// conditional one (If-Match on that ETag), which the database refuses
// when another save came first.
func (s *Store) SetIPLists(ctx context.Context, l users.IPLists) error {
	if err := l.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	if l.Version == "" {
		if err := s.listsRef().Set(ctx, l); err != nil {
			return unavailable(err)
		}
		return nil
	}
	if !users.WellFormedVersion(l.Version) {
		return users.ErrListsChanged // never an ETag we gave
	}
	written, err := s.listsRef().SetIfUnchanged(ctx, l.Version, l)
	if err != nil {
		return unavailable(err)
	}
	if !written {
		// The SDK sends a write again itself when its answer is lost:
		// refused then because this very save changed the version, the
		// lists hold what it saved (its UpdatedAt included).
		var cur users.IPLists
		if err := s.listsRef().Get(ctx, &cur); err == nil && sameLists(cur, l) {
			return nil
		}
		return users.ErrListsChanged
	}
	return nil
}

func sameLists(a, b users.IPLists) bool {
	return a.UpdatedAt == b.UpdatedAt && slices.Equal(a.Whitelist, b.Whitelist) && slices.Equal(a.Blacklist, b.Blacklist)
}
