package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func getUser(ctx context.Context, q querier, id teos.UserID, lock bool) (store.UserInfo, bool, error) {
	sql := `SELECT available_slots, subscription_start, subscription_expiry FROM users WHERE user_id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	var a, b, c int64
	err := q.QueryRow(ctx, sql, id[:]).Scan(&a, &b, &c)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.UserInfo{}, false, nil
	}
	if err != nil {
		return store.UserInfo{}, false, err
	}
	return store.UserInfo{AvailableSlots: u32(a), SubscriptionStart: u32(b), SubscriptionExpiry: u32(c)}, true, nil
}

const putUserSQL = `INSERT INTO users VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE SET
	available_slots = EXCLUDED.available_slots, subscription_start = EXCLUDED.subscription_start,
	subscription_expiry = EXCLUDED.subscription_expiry`

func userArgs(id teos.UserID, u store.UserInfo) []any {
	return []any{id[:], int64(u.AvailableSlots), int64(u.SubscriptionStart), int64(u.SubscriptionExpiry)}
}

// User returns the user's subscription.
func (s *Store) User(id teos.UserID) (store.UserInfo, bool, error) {
	ctx, cancel := opCtx()
	defer cancel()
	u, ok, err := getUser(ctx, s.pool, id, false)
	if err != nil {
		return store.UserInfo{}, false, fmt.Errorf("load user %s: %w", id, err)
	}
	return u, ok, nil
}

// UpdateUser runs fn on the user's record and stores what it returns, in the group commit.
func (s *Store) UpdateUser(id teos.UserID, fn func(prev store.UserInfo, exists bool) (store.UserInfo, error)) (store.UserInfo, error) {
	if fn == nil { // it would panic in the group commit's goroutine
		return store.UserInfo{}, fmt.Errorf("update user %s: nil function", id)
	}
	var out store.UserInfo
	err := s.writes.write(func(ctx context.Context, tx pgx.Tx) error {
		out = store.UserInfo{}
		prev, exists, err := getUser(ctx, tx, id, true)
		if err != nil {
			return err
		}
		next, err := fn(prev, exists)
		if err != nil {
			return refusal{err}
		}
		if _, err := tx.Exec(ctx, putUserSQL, userArgs(id, next)...); err != nil {
			return fmt.Errorf("store user %s: %w", id, err)
		}
		out = next
		return nil
	})
	if err != nil {
		return store.UserInfo{}, err
	}
	return out, nil
}

// collectBytes reads one bytea column of n bytes per row into a T.
func collectBytes[T any](rows pgx.Rows, what string, n int, conv func([]byte) T) ([]T, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) {
		var b []byte
		var v T
		if err := r.Scan(&b); err != nil {
			return v, err
		}
		if len(b) != n {
			return v, fmt.Errorf("%w: %s is %d bytes", store.ErrCorrupt, what, len(b))
		}
		return conv(b), nil
	})
}

func userID(b []byte) teos.UserID   { return teos.UserID(b) }
func uuid(b []byte) teos.UUID       { return teos.UUID(b) }
func locator(b []byte) teos.Locator { return teos.Locator(b) }

// Users returns every registered user, ordered by id.
func (s *Store) Users() ([]teos.UserID, error) {
	ctx, cancel := opCtx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT user_id FROM users ORDER BY user_id`)
	ids, err := collectBytes(rows, "user id", teos.UserIDLen, userID)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return ids, nil
}

// UserAppointments returns the UUIDs of the user's appointments, ordered by UUID.
func (s *Store) UserAppointments(id teos.UserID) ([]teos.UUID, error) {
	ctx, cancel := opCtx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT uuid FROM appointments WHERE user_id = $1 ORDER BY uuid`, id[:])
	ids, err := collectBytes(rows, "uuid", teos.UUIDLen, uuid)
	if err != nil {
		return nil, fmt.Errorf("list appointments of %s: %w", id, err)
	}
	return ids, nil
}

// UserLocators returns the locators of the user's appointments.
func (s *Store) UserLocators(id teos.UserID) ([]teos.Locator, error) {
	ctx, cancel := opCtx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT locator FROM appointments WHERE user_id = $1 ORDER BY uuid`, id[:])
	locs, err := collectBytes(rows, "locator", teos.LocatorLen, locator)
	if err != nil {
		return nil, fmt.Errorf("list locators of %s: %w", id, err)
	}
	return locs, nil
}

// DeleteOutdatedUsers deletes every user with height >= expiry+expiryDelta; the foreign keys
// cascade to their appointments, trackers and hand-overs, all in one statement. A leader-only
// write (fence.go).
func (s *Store) DeleteOutdatedUsers(height, expiryDelta uint32) ([]teos.UserID, error) {
	if height < expiryDelta {
		return nil, nil
	}
	ctx, cancel := opCtx()
	defer cancel()
	var ids []teos.UserID
	err := s.leaderTx(ctx, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `DELETE FROM users WHERE subscription_expiry <= $1 RETURNING user_id`,
			int64(height)-int64(expiryDelta))
		var err error
		ids, err = collectBytes(rows, "user id", teos.UserIDLen, userID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete outdated users at height %d: %w", height, err)
	}
	return ids, nil
}
