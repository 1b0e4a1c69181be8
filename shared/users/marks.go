package users

import (
	"context"
	"time"
)

// Marks record one-time facts shared by every instance of a store: a
// solved challenge spent, an address's issuance slot taken. A mark is a
// key kept until it expires and is pruned.
//
// expires must follow from key (both derived from one signed or computed
// value): a shared store may file the mark under both.
type Marks interface {
	// Mark creates the mark key until expires. It reports false, writing
	// nothing, when key is already marked: of concurrent calls with one
	// key, on any instance, exactly one gets true. Keys are 1-128 letters,
	// digits, '-' or '_'.
	Mark(ctx context.Context, key string, expires time.Time) (bool, error)
	// PruneMarks deletes up to limit marks that expired before now and
	// reports how many it deleted.
	PruneMarks(ctx context.Context, now time.Time, limit int) (int, error)
}

// InvalidMarkKey answers a mark key that is not 1-128 letters, digits, '-'
// or '_'.
func InvalidMarkKey() error {
	return &Error{Code: CodeInvalid, Message: "Invalid mark key.",
		Issues: []Issue{{Path: "key", Message: "must be 1-128 letters, digits, '-' or '_'"}}}
}
