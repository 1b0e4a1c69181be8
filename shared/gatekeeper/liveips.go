package gatekeeper

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"tollgate.dev/tollgate/shared/config"
	"tollgate.dev/tollgate/shared/netutil"
	"tollgate.dev/tollgate/shared/users"
)

// liveListsTimeout bounds one read of the live IP lists.
const liveListsTimeout = 3 * time.Second

// LiveIPs enforces ADMIN_WHITELIST and IP_BLACKLIST together with the
// operator's live additions kept in the store (users.LiveLists). Each
// instance re-reads them once its copy is older than USER_CACHE_TTL, so a
// change reaches every instance within that time (and the read's). The
// environment's lists are the floor: a store that cannot be read leaves
// the last lists read (at first, the environment's alone) in force.
type LiveIPs struct {
	cfg *config.Config
	src users.LiveLists // nil: the environment's lists only
	now func() time.Time

	mu       sync.Mutex
	cur      *ipLists
	inflight chan struct{}
	// saved counts this instance's saves: a read begun before one is
	// not kept as fresh.
	saved uint64
}

type ipLists struct {
	white, black netutil.IPSet
	at           time.Time
}

// NewLiveIPs reads live lists from store when it keeps them.
func NewLiveIPs(cfg *config.Config, store users.Store, now func() time.Time) *LiveIPs {
	if now == nil {
		now = time.Now
	}
	l := &LiveIPs{cfg: cfg, now: now}
	if src, ok := store.(users.LiveLists); ok {
		l.src = src
	}
	return l
}

// Blacklisted reports whether ip is refused everywhere.
func (l *LiveIPs) Blacklisted(ctx context.Context, ip string) bool {
	if l.cfg.IPBlacklist.Contains(ip) {
		return true
	}
	cur := l.lists(ctx)
	return cur != nil && cur.black.Contains(ip)
}

// Whitelisted reports whether ip may reach the admin routes and use
// ADMIN_KEY.
func (l *LiveIPs) Whitelisted(ctx context.Context, ip string) bool {
	if l.cfg.AdminWhitelist.Contains(ip) {
		return true
	}
	cur := l.lists(ctx)
	return cur != nil && cur.white.Contains(ip)
}

// Invalidate makes the next check read the lists again (after this
// instance changed them).
func (l *LiveIPs) Invalidate() {
	l.mu.Lock()
	l.saved++
	if l.cur != nil {
		l.cur.at = time.Time{}
	}
	l.mu.Unlock()
}

// lists returns the live lists, reading them when this copy is too old;
// concurrent callers share one read. The read runs beside the callers:
// those with older lists to fall back on wait listsWait for it at most,
// then go on with those (a database that has stopped answering must not
// hold every request for the read's deadline); its answer serves from
// when it comes. Nothing waits for it to finish, and nothing depends on
// its finishing: on a frozen instance it fails, and the next check reads
// again.
func (l *LiveIPs) lists(ctx context.Context) *ipLists {
	if l.src == nil {
		return nil
	}
	l.mu.Lock()
	cur := l.cur
	if cur != nil && l.now().Sub(cur.at) < l.cfg.UserCacheTTL && !cur.at.IsZero() {
		l.mu.Unlock()
		return cur
	}
	ch := l.inflight
	if ch == nil {
		ch = make(chan struct{})
		l.inflight = ch
		go l.refresh(ctx, cur, l.saved, ch) // read outlives the caller: it drops ctx's cancel
	}
	l.mu.Unlock()
	var fallBack <-chan time.Time
	if cur != nil {
		t := time.NewTimer(listsWait)
		defer t.Stop()
		fallBack = t.C
	}
	select {
	case <-ch:
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.cur
	case <-fallBack:
		return cur
	case <-ctx.Done():
		return cur
	}
}

// listsWait is how long a check with lists to fall back on waits for a
// read under way: a database that answers does so well within it.
const listsWait = 250 * time.Millisecond

// refresh reads the lists and installs them; saved is the count of this
// instance's saves when it began: a read begun before a save is not kept
// as fresh.
func (l *LiveIPs) refresh(ctx context.Context, prev *ipLists, saved uint64, done chan struct{}) {
	next := l.read(ctx, prev)
	l.mu.Lock()
	if l.saved != saved {
		next.at = time.Time{} // lists saved meanwhile: read them at the next check
	}
	l.cur, l.inflight = next, nil
	l.mu.Unlock()
	close(done)
}

// read fetches the lists; on failure the previous ones stay, counted as
// fresh so that an outage is not retried by every request.
func (l *LiveIPs) read(ctx context.Context, prev *ipLists) *ipLists {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), liveListsTimeout)
	defer cancel()
	now := l.now()
	stored, err := l.src.IPLists(ctx)
	if err != nil {
		if prev == nil {
			return &ipLists{at: now}
		}
		return &ipLists{white: prev.white, black: prev.black, at: now}
	}
	white, err1 := netutil.ParseIPSet(strings.Join(stored.Whitelist, ","))
	black, err2 := netutil.ParseIPSet(strings.Join(stored.Blacklist, ","))
	if err1 != nil || err2 != nil {
		return &ipLists{at: now} // stores validate what they return: not reached
	}
	return &ipLists{white: white, black: black, at: now}
}

// Editable reports whether the store keeps live lists.
func (l *LiveIPs) Editable() bool { return l.src != nil }

// Stored reads the live lists as stored, with their version (for editing:
// a save carrying that version is refused once someone else has saved).
func (l *LiveIPs) Stored(ctx context.Context) (users.IPLists, error) {
	if l.src == nil {
		return users.IPLists{Whitelist: []string{}, Blacklist: []string{}}, nil
	}
	return l.src.IPLists(ctx)
}

// Replace writes new live lists on behalf of the admin at requester's
// address, and applies them on this instance at once. Lists that would
// shut that admin out (their address blacklisted, or no longer
// whitelisted) are refused: only the environment could undo them. With
// lists.Version set, the save is made only over that version
// (users.ErrListsChanged otherwise, nothing written). It returns the lists
// as saved (their UpdatedAt set), to tell them from a later save.
func (l *LiveIPs) Replace(ctx context.Context, lists users.IPLists, requester string) (users.IPLists, error) {
	if l.src == nil {
		return users.IPLists{}, &users.Error{Code: users.CodeInternal, Message: "Internal error.", Err: errors.New("this store keeps no live IP lists")}
	}
	if err := lists.Validate(); err != nil {
		return users.IPLists{}, err
	}
	white, _ := netutil.ParseIPSet(strings.Join(lists.Whitelist, ","))
	black, _ := netutil.ParseIPSet(strings.Join(lists.Blacklist, ","))
	if black.Contains(requester) {
		return users.IPLists{}, &users.Error{Code: users.CodeInvalid, Message: "The blacklist would include your own address (" + requester + "): you would be shut out.",
			Issues: []users.Issue{{Path: "blacklist", Message: "includes your own address"}}}
	}
	if !l.cfg.AdminWhitelist.Contains(requester) && !white.Contains(requester) {
		return users.IPLists{}, &users.Error{Code: users.CodeInvalid, Message: "The whitelist would leave out your own address (" + requester + "): you would be shut out.",
			Issues: []users.Issue{{Path: "whitelist", Message: "leaves out your own address"}}}
	}
	lists.UpdatedAt = l.now().UnixMilli()
	if err := l.src.SetIPLists(ctx, lists); err != nil {
		return users.IPLists{}, err
	}
	l.Invalidate()
	lists.Version = ""
	return lists, nil
}
