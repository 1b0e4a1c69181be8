package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// Event is one charged request of a user (EVENT_LOGGING=true). It holds
// no secret: the client's address is kept as its last part only.
type Event struct {
	// ID orders a user's events by time; it is also the paging cursor.
	ID     string `json:"id"`
	At     int64  `json:"at"` // epoch ms
	Family string `json:"family"`
	Model  string `json:"model,omitempty"`
	Input  int64  `json:"inputTokens"`
	Output int64  `json:"outputTokens"`
	IPTail string `json:"ipTail,omitempty"`
	Status int    `json:"status"`
}

// Tokens is what the event charged.
func (e Event) Tokens() int64 { return e.Input + e.Output }

// EventPage is one page of a user's events, newest first. Next is the
// cursor of the following page; empty on the last one.
type EventPage struct {
	Events []Event `json:"events"`
	Next   string  `json:"next,omitempty"`
}

// Events keeps each user's charged requests, shared by every instance of
// a store, for the retention the maintenance endpoint prunes to.
type Events interface {
	// AddEvent records e for token; its ID is made from e.At.
	AddEvent(ctx context.Context, token string, e Event) error
	// EventPage returns up to limit of token's events older than cursor
	// (the newest when cursor is empty), newest first.
	EventPage(ctx context.Context, token, cursor string, limit int) (EventPage, error)
	// EventsSince returns every user's events at or after since, by token,
	// oldest first (for charts): at most perUser of each user's newest.
	EventsSince(ctx context.Context, since time.Time, perUser int) (map[string][]Event, error)
	// PruneEvents deletes every event older than before and reports how
	// many it deleted.
	PruneEvents(ctx context.Context, before time.Time) (int, error)
}

// DefaultEventRetention is EVENT_RETENTION_DAYS's default.
const DefaultEventRetention = 30 * 24 * time.Hour

// Page sizes of EventPage.
const (
	DefaultEventPage = 50
	MaxEventPage     = 500
)

// NewEventID is an event's ID: its time (13 digits of epoch ms, so that
// IDs sort by time as strings) and a random part.
func NewEventID(at time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%013d-%s", max(at.UnixMilli(), 0), hex.EncodeToString(b[:]))
}

// EventIDPrefix is the smallest ID of an event at t or later.
func EventIDPrefix(t time.Time) string { return fmt.Sprintf("%013d", max(t.UnixMilli(), 0)) }

var eventIDPattern = regexp.MustCompile(`^[0-9]{13}-[0-9a-f]{12}$`)

// CheckEventPage validates a page request: the cursor must be an event ID
// (as a previous page gave it) and the limit 1..MaxEventPage (0: the
// default). It returns the limit to use.
func CheckEventPage(cursor string, limit int) (int, error) {
	var issues []Issue
	if cursor != "" && !eventIDPattern.MatchString(cursor) {
		issues = append(issues, Issue{Path: "cursor", Message: "must be the next cursor of a previous page"})
	}
	if limit < 0 || limit > MaxEventPage {
		issues = append(issues, Issue{Path: "limit", Message: fmt.Sprintf("must be 1-%d", MaxEventPage)})
	}
	if issues != nil {
		return 0, invalid(issues)
	}
	if limit == 0 {
		limit = DefaultEventPage
	}
	return limit, nil
}

// MaxModelLen bounds an event's model name: it comes from the client's
// request.
const MaxModelLen = 100

// ClampModel cuts a model name to MaxModelLen characters.
func ClampModel(m string) string {
	if len(m) <= MaxModelLen {
		return m
	}
	r := []rune(m)
	if len(r) <= MaxModelLen {
		return m
	}
	return string(r[:MaxModelLen]) + "…"
}

// IPTail is the part of a client address an event keeps: the last octet
// of an IPv4 address, the last group of an IPv6 one.
func IPTail(ip string) string {
	for i := len(ip) - 1; i >= 0; i-- {
		if ip[i] == '.' || ip[i] == ':' {
			return "…" + ip[i:]
		}
	}
	return ""
}
