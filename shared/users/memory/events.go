package memory

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// events are the store's users.Events and users.LiveLists: one process,
// like its users.
type events struct {
	mu     sync.Mutex
	byUser map[string][]users.Event // oldest first
	lists  users.IPLists
	saves  uint64 // the lists' version: how many times they were saved
}

var (
	_ users.Events    = (*Store)(nil)
	_ users.LiveLists = (*Store)(nil)
)

// AddEvent records e for token.
func (s *Store) AddEvent(ctx context.Context, token string, e users.Event) error {
	if !users.ValidToken(token) {
		return users.Errorf(users.CodeInvalid, "Invalid token.")
	}
	e.ID = users.NewEventID(time.UnixMilli(e.At))
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	if s.events.byUser == nil {
		s.events.byUser = map[string][]users.Event{}
	}
	list := s.events.byUser[token]
	i, _ := slices.BinarySearchFunc(list, e.ID, func(a users.Event, id string) int { return strings.Compare(a.ID, id) })
	s.events.byUser[token] = slices.Insert(list, i, e)
	return nil
}

// EventPage returns up to limit events older than cursor, newest first.
func (s *Store) EventPage(ctx context.Context, token, cursor string, limit int) (users.EventPage, error) {
	limit, err := users.CheckEventPage(cursor, limit)
	if err != nil {
		return users.EventPage{}, err
	}
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	list := s.events.byUser[token]
	end := len(list)
	if cursor != "" {
		end, _ = slices.BinarySearchFunc(list, cursor, func(a users.Event, id string) int { return strings.Compare(a.ID, id) })
	}
	page := users.EventPage{Events: []users.Event{}}
	for i := end - 1; i >= 0 && len(page.Events) < limit; i-- {
		page.Events = append(page.Events, list[i])
	}
	if n := len(page.Events); n == limit && end-n > 0 {
		page.Next = page.Events[n-1].ID
	}
	return page, nil
}

// EventsSince returns every user's events at or after since.
func (s *Store) EventsSince(ctx context.Context, since time.Time, perUser int) (map[string][]users.Event, error) {
	from := users.EventIDPrefix(since)
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	out := map[string][]users.Event{}
	for token, list := range s.events.byUser {
		i, _ := slices.BinarySearchFunc(list, from, func(a users.Event, id string) int { return strings.Compare(a.ID, id) })
		if i < len(list) {
			out[token] = slices.Clone(list[max(i, len(list)-perUser):])
		}
	}
	return out, nil
}

// PruneEvents deletes the events older than before.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	cut := users.EventIDPrefix(before)
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	n := 0
	for token, list := range s.events.byUser {
		i, _ := slices.BinarySearchFunc(list, cut, func(a users.Event, id string) int { return strings.Compare(a.ID, id) })
		n += i
		if i == len(list) {
			delete(s.events.byUser, token)
		} else if i > 0 {
			s.events.byUser[token] = slices.Clone(list[i:])
		}
	}
	return n, nil
}

// IPLists returns the live IP lists.
func (s *Store) IPLists(ctx context.Context) (users.IPLists, error) {
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	l := s.events.lists
	l.Whitelist = append([]string{}, l.Whitelist...)
	l.Blacklist = append([]string{}, l.Blacklist...)
	l.Version = strconv.FormatUint(s.events.saves, 10)
	return l, nil
}

// SetIPLists replaces the live IP lists; with l.Version, only over that
// version (see users.LiveLists).
func (s *Store) SetIPLists(ctx context.Context, l users.IPLists) error {
	if err := l.Validate(); err != nil {
		return err
	}
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	if l.Version != "" && l.Version != strconv.FormatUint(s.events.saves, 10) {
		return users.ErrListsChanged
	}
	s.events.lists = users.IPLists{Whitelist: slices.Clone(l.Whitelist), Blacklist: slices.Clone(l.Blacklist), UpdatedAt: l.UpdatedAt}
	s.events.saves++
	return nil
}
