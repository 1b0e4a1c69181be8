package rtdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"firebase.google.com/go/v4/db"

	"tollgate.dev/tollgate/shared/users"
)

// Cluster-wide limits (LIMITS_SCOPE=cluster) live beside the users node,
// under <ref>_limits/<hash of the key>: a user's token or a client IP is
// never a path in the database. Each request is one conditional write to
// enter and one to leave. The names are uniform hex, so a page of them
// read from a random name on is a random sample: PruneLimits pages in
// name order, needing no index.

var _ users.Limits = (*Store)(nil)

func (s *Store) limitsRoot() *db.Ref {
	return s.users.Parent().Child(s.users.Key + "_limits")
}

func (s *Store) limitsRef(key string) *db.Ref {
	sum := sha256.Sum256([]byte(key))
	return s.limitsRoot().Child(hex.EncodeToString(sum[:16]))
}

// EnterLimits implements users.Limits.
func (s *Store) EnterLimits(ctx context.Context, key string, e users.LimitsEntry) (users.LimitsDecision, error) {
	var d users.LimitsDecision
	err := s.editLimits(ctx, key, func(r *users.LimitsRecord) {
		was := r.Empty() // as read: an empty record is no record
		d = r.Enter(e)
		d.Created = was && !r.Empty()
	})
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

// PruneLimits implements users.Limits: one query reads a page of records,
// and each that looks stale is deleted by a transaction that judges it
// again on the state its conditional delete is made on.
func (s *Store) PruneLimits(ctx context.Context, sw users.LimitsSweep) (users.LimitsSwept, error) {
	if sw.Max <= 0 {
		return users.LimitsSwept{}, nil
	}
	page, err := s.limitsPage(ctx, sw)
	if err != nil {
		return users.LimitsSwept{}, err
	}
	names := slices.Sorted(maps.Keys(page))
	out := sw.Swept(names)
	stale := slices.DeleteFunc(names, func(name string) bool {
		var r users.LimitsRecord
		return json.Unmarshal(page[name], &r) != nil || !r.Stale(sw.Now, sw.Window) // a damaged record is left alone: enter reports it
	})
	var pruned atomic.Int64
	err = eachParallel(stale, func(name string) error {
		deleted, err := s.pruneLimitsRecord(ctx, name, sw)
		if deleted {
			pruned.Add(1)
		}
		return err
	})
	out.Pruned = int(pruned.Load())
	return out, err
}

// errLimitsKept ends a prune of a record that is no longer stale (or no
// longer there).
var errLimitsKept = errors.New("rtdb: the limits record is in use")

// pruneLimitsRecord deletes the record name if it is stale as stored now.
func (s *Store) pruneLimitsRecord(ctx context.Context, name string, sw users.LimitsSweep) (bool, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	err := transactionAt(ctx, s.limitsRoot().Child(name), "limits", func(n db.TransactionNode) (any, error) {
		r, err := limitsRecord(n)
		if err != nil {
			return nil, err
		}
		if r.Empty() || !r.Stale(sw.Now, sw.Window) {
			return nil, errLimitsKept
		}
		return nil, nil // PUT null: delete
	})
	switch {
	case errors.Is(err, errLimitsKept):
		return false, nil
	case err != nil:
		return false, unavailable(err)
	}
	return true, nil
}

// limitsPage reads up to sw.Max records by name: after sw.After, or from
// a random name on, wrapping round to the first names.
func (s *Store) limitsPage(ctx context.Context, sw users.LimitsSweep) (map[string]json.RawMessage, error) {
	ctx, cancel := s.callCtx(ctx)
	defer cancel()
	root := s.limitsRoot()
	get := func(q *db.Query, into map[string]json.RawMessage) error {
		var page map[string]json.RawMessage
		if err := q.Get(ctx, &page); err != nil {
			return unavailable(err)
		}
		maps.Copy(into, page)
		return nil
	}
	out := map[string]json.RawMessage{}
	switch {
	case sw.Random:
		var b [16]byte
		_, _ = rand.Read(b[:])
		start := hex.EncodeToString(b[:])
		if err := get(root.OrderByKey().StartAt(start).LimitToFirst(sw.Max), out); err != nil {
			return nil, err
		}
		if len(out) < sw.Max {
			if err := get(root.OrderByKey().EndAt(start).LimitToFirst(sw.Max-len(out)), out); err != nil {
				return nil, err
			}
		}
	case sw.After != "":
		// StartAt includes After itself: one more is read, and After dropped.
		if err := get(root.OrderByKey().StartAt(sw.After).LimitToFirst(sw.Max+1), out); err != nil {
			return nil, err
		}
		delete(out, sw.After)
		if len(out) > sw.Max {
			delete(out, slices.Max(slices.Collect(maps.Keys(out))))
		}
	default:
		if err := get(root.OrderByKey().LimitToFirst(sw.Max), out); err != nil {
			return nil, err
		}
	}
	return out, nil
}
