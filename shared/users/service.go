package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

// Service is what the admin API and UI do to users, on any Store.
type Service struct {
	Store Store
	// Defaults are the TOKEN_QUOTA_* quotas by family.
	Defaults map[string]int64
	Now      func() time.Time
	// EventRetention is how long events are kept (EVENT_RETENTION_DAYS).
	EventRetention time.Duration
	// PurgeAfter is how long purge-temporary keeps a disabled temporary
	// user (POW_TOKEN_PURGE_HOURS: config.PoW.PurgeAfter); 0 is
	// DefaultPurgeAfter.
	PurgeAfter time.Duration
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Create makes a user with a new token; p may set any field but the token.
func (s *Service) Create(ctx context.Context, p Patch) (*User, error) {
	if p.Token.Set {
		return nil, invalid([]Issue{{Path: "token", Message: "is generated; use PUT /users/{token} to choose one"}})
	}
	token := uuid.NewString()
	tried := false
	return s.Store.Modify(ctx, token, true, func(u *User, exists bool) error {
		switch {
		case exists && tried:
			// Run again on the user this call's own write made (the
			// database client sent it again, its answer lost): no other
			// writer knows the new token.
			return ErrNoWrite
		case exists:
			return Errorf(CodeConflict, "Token collision; try again.")
		}
		tried = true
		return s.fill(u, token, p)
	})
}

// fill turns the fresh record u into a new user with defaults, then p.
func (s *Service) fill(u *User, token string, p Patch) error {
	t := Normal
	if p.Type.has() {
		t = p.Type.Value
	}
	*u = *New(token, t, s.now(), s.Defaults)
	p.Apply(u)
	return u.Validate()
}

// Upsert applies a partial update to token's user, creating it if missing.
func (s *Service) Upsert(ctx context.Context, token string, p Patch) (u *User, created bool, err error) {
	if !ValidToken(token) {
		return nil, false, invalid([]Issue{{Path: "token", Message: "must be 1-128 letters, digits, '-' or '_'"}})
	}
	if p.Token.has() && p.Token.Value != token {
		return nil, false, invalid([]Issue{{Path: "token", Message: "does not match the token in the path"}})
	}
	u, err = s.Store.Modify(ctx, token, true, func(u *User, exists bool) error {
		created = !exists
		if !exists {
			return s.fill(u, token, p)
		}
		p.Apply(u)
		return u.Validate()
	})
	return u, created, err
}

// Update applies a partial update to an existing user; ErrNotFound if it is
// gone (it is never re-created, unlike Upsert).
func (s *Service) Update(ctx context.Context, token string, p Patch) (*User, error) {
	if p.Token.has() && p.Token.Value != token {
		return nil, invalid([]Issue{{Path: "token", Message: "does not match the token in the path"}})
	}
	return s.Store.Modify(ctx, token, false, func(u *User, _ bool) error {
		p.Apply(u)
		return u.Validate()
	})
}

// Disable soft-deletes the user with reason (a default when empty).
func (s *Service) Disable(ctx context.Context, token, reason string) (*User, error) {
	if reason == "" {
		reason = "Disabled by an administrator."
	}
	return s.Store.Modify(ctx, token, false, func(u *User, _ bool) error {
		u.Ban(s.now(), reason)
		return nil
	})
}

// Reactivate re-enables a disabled user.
func (s *Service) Reactivate(ctx context.Context, token string) (*User, error) {
	return s.Store.Modify(ctx, token, false, func(u *User, _ bool) error {
		u.Reactivate()
		return nil
	})
}

// RefreshQuota refreshes one user's quotas now, whatever its type.
func (s *Service) RefreshQuota(ctx context.Context, token string) (*User, error) {
	return s.Store.Modify(ctx, token, false, func(u *User, _ bool) error {
		RefreshQuota(u, s.Defaults, s.now())
		return nil
	})
}

// Maintenance actions.
const (
	ActionRefreshQuotas   = "refresh-quotas"
	ActionResetCounts     = "reset-counts"
	ActionExpireTemporary = "expire-temporary"
	ActionPurgeTemporary  = "purge-temporary"
	// ActionExpireAllTemporary ends every temporary user now, expired or
	// not (the anti-abuse page's "force-expire").
	ActionExpireAllTemporary = "expire-all-temporary"
	// ActionPruneEvents deletes events older than EventRetention.
	ActionPruneEvents = "prune-events"
	// ActionPruneLimits deletes the cluster-wide limits records that keep
	// nothing (LIMITS_SCOPE=cluster).
	ActionPruneLimits = "prune-limits"
)

// A prune-limits call looks at no more than limitsPrunePages pages of
// limitsPrunePage records, so that a pile of them cannot hold the admin
// function past its deadline; a later call goes on with what is left.
const (
	limitsPrunePage  = 500
	limitsPrunePages = 10
)

// ForceExpiredReason is the reason of a temporary user ended early.
const ForceExpiredReason = "Temporary token expired by an administrator."

// Actions lists the maintenance actions in a stable order.
var Actions = []string{ActionRefreshQuotas, ActionResetCounts, ActionExpireTemporary, ActionPurgeTemporary, ActionExpireAllTemporary, ActionPruneEvents, ActionPruneLimits}

// ScheduledActions are the actions meant to run on a schedule, which the
// deploy's DEPLOY_SCHEDULER_ACTIONS accepts: reset-counts and
// expire-all-temporary take from every user what they hold, an
// administrator's decision made by hand.
var ScheduledActions = []string{ActionRefreshQuotas, ActionExpireTemporary, ActionPurgeTemporary, ActionPruneEvents, ActionPruneLimits}

// Maintain runs a maintenance action over every user and returns how many
// users it changed.
func (s *Service) Maintain(ctx context.Context, action string) (int, error) {
	var change func(u *User, now time.Time) bool
	switch action {
	case ActionRefreshQuotas:
		change = func(u *User, now time.Time) bool {
			if u.Type == Temporary && !u.Refreshable() {
				return false
			}
			return RefreshQuota(u, s.Defaults, now)
		}
	case ActionResetCounts:
		change = func(u *User, _ time.Time) bool {
			// Only users with something to reset are written and counted.
			changed := false
			for f, n := range u.TokenCounts {
				if n != 0 {
					u.TokenCounts[f] = 0
					changed = true
				}
			}
			return changed
		}
	case ActionExpireTemporary:
		change = func(u *User, now time.Time) bool {
			if !u.Expired(now) || u.Disabled() {
				return false
			}
			u.Disable(now, ExpiredReason)
			return true
		}
	case ActionExpireAllTemporary:
		change = func(u *User, now time.Time) bool {
			if u.Type != Temporary || u.Disabled() {
				return false
			}
			if u.ExpiresAt == 0 || u.ExpiresAt > now.UnixMilli() {
				u.ExpiresAt = now.UnixMilli()
			}
			u.Ban(now, ForceExpiredReason)
			return true
		}
	case ActionPurgeTemporary:
		return s.purge(ctx)
	case ActionPruneEvents:
		ev, ok := s.Store.(Events)
		if !ok {
			return 0, nil
		}
		retention := s.EventRetention
		if retention <= 0 {
			retention = DefaultEventRetention
		}
		return ev.PruneEvents(ctx, s.now().Add(-retention))
	case ActionPruneLimits:
		return s.pruneLimits(ctx)
	default:
		return 0, Errorf(CodeNotFound, "Unknown maintenance action %q.", action)
	}
	list, err := s.Store.List(ctx)
	if err != nil {
		return 0, err
	}
	affected := 0
	for _, cur := range list {
		touched := false
		_, err := s.Store.Modify(ctx, cur.Token, false, func(u *User, _ bool) error {
			touched = change(u, s.now())
			if !touched {
				return ErrNoWrite
			}
			return nil
		})
		if IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return affected, err
		}
		if touched {
			affected++
		}
	}
	return affected, nil
}

// pruneLimits walks the limits records page by page and reports how many
// it deleted. It begins at a random name and wraps round: records in use
// are never deleted, so a walk from the first name would stop at the same
// ones call after call were they more than a call looks at, and never
// reach those after them.
func (s *Service) pruneLimits(ctx context.Context) (int, error) {
	l, ok := s.Store.(Limits)
	if !ok {
		return 0, nil
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	start := hex.EncodeToString(b[:]) // the database store's names are 32 hex digits
	pruned, after, wrapped := 0, start, false
	for range limitsPrunePages {
		sw, err := l.PruneLimits(ctx, LimitsSweep{Now: s.now(), Window: LimitsWindow, Max: limitsPrunePage, After: after})
		pruned += sw.Pruned
		switch {
		case err != nil:
			return pruned, err
		case sw.Next != "" && (!wrapped || sw.Next < start):
			after = sw.Next
		case !wrapped:
			after, wrapped = "", true // on from the first name, up to start
		default:
			return pruned, nil
		}
	}
	return pruned, nil
}

// purge deletes disabled temporary users disabled PurgeAfter ago or more.
func (s *Service) purge(ctx context.Context) (int, error) {
	list, err := s.Store.List(ctx)
	if err != nil {
		return 0, err
	}
	after := s.PurgeAfter
	if after <= 0 {
		after = DefaultPurgeAfter
	}
	cutoff := s.now().Add(-after).UnixMilli()
	purgeable := func(u *User) bool { return u.Type == Temporary && u.Disabled() && u.DisabledAt <= cutoff }
	cd, conditional := s.Store.(CondDeleter)
	affected := 0
	for _, u := range list {
		if !purgeable(u) {
			continue
		}
		// Judged again on the user's latest state where the store can: an
		// admin may have reactivated it, or made it permanent, meanwhile.
		deleted := true
		if conditional {
			deleted, err = cd.DeleteIf(ctx, u.Token, purgeable)
		} else {
			err = s.Store.Delete(ctx, u.Token)
		}
		switch {
		case IsNotFound(err):
			continue // deleted meanwhile: not this run's
		case err != nil:
			return affected, err
		case deleted:
			affected++
		}
	}
	return affected, nil
}
