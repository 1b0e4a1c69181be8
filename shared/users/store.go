package users

import (
	"context"
	"time"
)

// ModifyFunc changes u in place. exists is false when u is a fresh record
// for a missing user. Returning an error aborts: nothing is written and the
// error is returned by the store. Returning ErrNoWrite ends the call without
// writing and without error.
type ModifyFunc func(u *User, exists bool) error

// ErrNoWrite lets a ModifyFunc decide that nothing needs writing.
var ErrNoWrite = &Error{Code: "no_write", Message: "nothing to write"}

// Usage is one charged request.
type Usage struct {
	Family string
	Tokens int64
	At     time.Time
}

// Store holds users. Implementations are safe for concurrent use by many
// goroutines, and the shared ones (RTDB) by many instances: no write may
// lose another writer's change.
type Store interface {
	// Get reads the user from the store of record. ErrNotFound if missing.
	Get(ctx context.Context, token string) (*User, error)
	// List returns every user, in no particular order.
	List(ctx context.Context) ([]*User, error)
	// Modify applies fn atomically to the user. A missing user is given to fn
	// as New-like empty record (Token set, exists false) only when create is
	// true; otherwise ErrNotFound. Returns the user as written.
	Modify(ctx context.Context, token string, create bool, fn ModifyFunc) (*User, error)
	// Delete removes the user. ErrNotFound if missing.
	Delete(ctx context.Context, token string) error

	// Lookup is the proxy's hot-path read: it may answer from this instance's
	// cache (for at most the configured TTL), with this instance's pending
	// usage already applied. It gives the user to read, which may be the
	// store's own record under its lock, copied for no one: read copies
	// what it needs, and neither changes u nor keeps any of it (a map, a
	// slice, a pointer) once it returns, nor calls the store. ErrNotFound if
	// missing; read is not called then.
	Lookup(ctx context.Context, token string, read func(u *User)) error
	// RecordUsage charges a request. Shared stores batch it per instance and
	// apply the batch atomically; it is visible to this instance's Lookup at
	// once.
	RecordUsage(ctx context.Context, token string, u Usage) error
	// Flush writes pending usage now.
	Flush(ctx context.Context) error
	// Close flushes and releases resources.
	Close(ctx context.Context) error
}

// IPRecorder is a Store that records a user's new address that needs no
// judgement under the IP limit (its network is recorded already, or no
// limit applies) with the user's pending usage, in its next flush,
// instead of in a write of its own: an IPv6 client may bring a new
// address with every request.
type IPRecorder interface {
	// RecordIP records ip for token's user as users.RecordIP does (with
	// defaultMax, MAX_IPS_PER_USER), on the user as it is when written.
	// ErrNotFound if the user is known to be missing.
	RecordIP(ctx context.Context, token, ip string, defaultMax int64) error
}

// CondDeleter is a Store that deletes a user only while it still meets
// cond, judged on its latest state within the delete itself: a sweep
// decided on an older list must not delete a user changed meanwhile.
type CondDeleter interface {
	DeleteIf(ctx context.Context, token string, cond func(*User) bool) (deleted bool, err error)
}

// LookupCopy is Lookup's user as a copy of the caller's own.
func LookupCopy(ctx context.Context, s Store, token string) (*User, error) {
	var c *User
	err := s.Lookup(ctx, token, func(u *User) { c = u.Clone() })
	return c, err
}
