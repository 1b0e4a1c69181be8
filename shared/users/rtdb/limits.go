package rtdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"firebase.google.com/go/v4/db"

	"tollgate.dev/tollgate/shared/users"
)

// Cluster-wide limits (LIMITS_SCOPE=cluster) live beside the users node,
// under <ref>_limits/<hash of the key>: a user's token or a client IP is
// never a path in the database. Each request is one conditional write to
// enter and one to leave.

func (s *Store) limitsRef(key string) *db.Ref {
	sum := sha256.Sum256([]byte(key))
	return s.users.Parent().Child(s.users.Key + "_limits").Child(hex.EncodeToString(sum[:16]))
}

// EnterLimits implements users.Limits.
func (s *Store) EnterLimits(ctx context.Context, key string, e users.LimitsEntry) (users.LimitsDecision, error) {
	var d users.LimitsDecision
	err := s.editLimits(ctx, key, func(r *users.LimitsRecord) { d = r.Enter(e) })
	return d, err
}

// LeaveLimits implements users.Limits.
func (s *Store) LeaveLimits(ctx context.Context, key, id string, refund bool) error {
	return s.editLimits(ctx, key, func(r *users.LimitsRecord) { r.Leave(id, refund) })
}

// RenewLimits implements users.Limits.
func (s *Store) RenewLimits(ctx context.Context, key, id string, until time.Time) error {
	return s.editLimits(ctx, key, func(r *users.LimitsRecord) { r.Renew(id, until) })
}

// editLimits applies edit to key's record in one conditional write (run
// again on the latest record when another writer got there first).
func (s *Store) editLimits(ctx context.Context, key string, edit func(r *users.LimitsRecord)) error {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	err := transactionAt(ctx, s.limitsRef(key), "limits", func(n db.TransactionNode) (any, error) {
		r, err := limitsRecord(n)
		if err != nil {
			return nil, err
		}
		edit(r)
		return limitsValue(r), nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

func limitsRecord(n db.TransactionNode) (*users.LimitsRecord, error) {
	var raw json.RawMessage
	if err := n.Unmarshal(&raw); err != nil {
		return nil, err
	}
	r := &users.LimitsRecord{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// limitsValue is what is written: nothing (the node deleted) when empty.
func limitsValue(r *users.LimitsRecord) any {
	if r.Empty() {
		return nil
	}
	return r
}
