package rtdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"firebase.google.com/go/v4/db"

	"tollgate.dev/tollgate/shared/users"
)

// Marks live beside the users node, at <FIREBASE_USERS_REF_NAME>_marks, so
// that listing users never meets them. A mark's node name starts with its
// expiry (13 digits of epoch ms): pruning is one key-ordered query for
// names below now, with no index to declare.

var (
	errMarked = errors.New("rtdb: already marked")
	errOurs   = errors.New("rtdb: marked by this call's own write")
)

var _ users.Marks = (*Store)(nil)

func (s *Store) marksRef() *db.Ref {
	parent := s.users.Parent()
	return parent.Child(s.users.Key + "_marks")
}

func markNode(key string, expires time.Time) string {
	return fmt.Sprintf("%013d-%s", max(expires.UnixMilli(), 0), key)
}

// Mark creates the mark with a transaction: the SDK's conditional write
// (If-Match on the ETag of the empty node) lets exactly one writer create
// it; the others see it exist and stop. The mark holds a random id of the
// call that made it: the SDK sends a write again itself when its answer
// is lost, and the transaction then runs on the mark its own first write
// made, which is this call's.
func (s *Store) Mark(ctx context.Context, key string, expires time.Time) (bool, error) {
	if !users.ValidToken(key) {
		return false, users.InvalidMarkKey()
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	var b [12]byte
	_, _ = rand.Read(b[:])
	by := hex.EncodeToString(b[:])
	ref := s.marksRef().Child(markNode(key, expires))
	err := ref.Transaction(ctx, func(node db.TransactionNode) (any, error) {
		var cur json.RawMessage
		if err := node.Unmarshal(&cur); err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(cur)) != "null" && len(cur) != 0 {
			var m struct {
				By string `json:"by"`
			}
			if json.Unmarshal(cur, &m) == nil && m.By == by {
				return nil, errOurs
			}
			return nil, errMarked
		}
		return map[string]any{"expiresAt": expires.UnixMilli(), "by": by}, nil
	})
	switch {
	case err == nil, errors.Is(err, errOurs):
		return true, nil
	case errors.Is(err, errMarked):
		return false, nil
	}
	return false, unavailable(err)
}

// PruneMarks deletes up to limit marks whose expiry is before now, in one
// multi-path update.
func (s *Store) PruneMarks(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	ref := s.marksRef()
	var raw json.RawMessage
	// "<now>" sorts after every name of an earlier expiry ("<earlier>-key")
	// and before the names of marks expiring at now or later.
	q := ref.OrderByKey().EndAt(fmt.Sprintf("%013d", max(now.UnixMilli(), 0))).LimitToFirst(limit)
	if err := q.Get(ctx, &raw); err != nil {
		return 0, unavailable(err)
	}
	nodes, err := children(raw)
	if err != nil {
		return 0, users.AsError(err)
	}
	if len(nodes) == 0 {
		return 0, nil
	}
	del := make(map[string]any, len(nodes))
	for _, n := range nodes {
		del[n.key] = nil
	}
	if err := ref.Update(ctx, del); err != nil {
		return 0, unavailable(err)
	}
	return len(nodes), nil
}
