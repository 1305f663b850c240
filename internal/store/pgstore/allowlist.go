package pgstore

import (
	"fmt"

	"github.com/teos-go/teos/pkg/teos"
)

// migrationAllowlist is the registration allowlist's part of the schema (version 2).
const migrationAllowlist = `
	CREATE TABLE allowed_users (
		user_id bytea PRIMARY KEY);`

// AllowUser adds id to the registration allowlist; changed is false if it was there. Every
// instance reads the list from this table on each registration, so the change is effective on
// all of them once this returns.
func (s *Store) AllowUser(id teos.UserID) (changed bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	tag, err := s.pool.Exec(ctx, `INSERT INTO allowed_users VALUES ($1) ON CONFLICT DO NOTHING`, id[:])
	if err != nil {
		return false, fmt.Errorf("allow user %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DisallowUser removes id from the registration allowlist; changed is false if it was not
// there. The user's subscription, if any, is left alone.
func (s *Store) DisallowUser(id teos.UserID) (changed bool, err error) {
	ctx, cancel := opCtx()
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM allowed_users WHERE user_id = $1`, id[:])
	if err != nil {
		return false, fmt.Errorf("disallow user %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// UserAllowed reports whether id is on the registration allowlist: one primary-key lookup,
// made for every registration, never cached.
func (s *Store) UserAllowed(id teos.UserID) (bool, error) {
	ctx, cancel := opCtx()
	defer cancel()
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM allowed_users WHERE user_id = $1)`, id[:]).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up allowed user %s: %w", id, err)
	}
	return ok, nil
}

// AllowedUsers lists the registration allowlist in key order.
func (s *Store) AllowedUsers() ([]teos.UserID, error) {
	ctx, cancel := opCtx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT user_id FROM allowed_users ORDER BY user_id`)
	ids, err := collectBytes(rows, "allowed user id", teos.UserIDLen, userID)
	if err != nil {
		return nil, fmt.Errorf("list allowed users: %w", err)
	}
	return ids, nil
}

// StoredBytes is what the tower's tables take on disk, indexes and TOAST included, summed
// over the tables of the connection's current schema, where teosd created them (so every
// instance's writes count; other tables put in that schema would count too), except the
// leader's recent blocks' transactions (recent_txs), which are the chain's, not users'. Space
// PostgreSQL frees when rows are deleted is reused for new rows but stays in the files, so
// unlike the bbolt figure this one does not drop when users expire: at the cap, registrations
// stay refused until VACUUM FULL gives the space back or the cap is raised.
func (s *Store) StoredBytes() (int64, error) {
	ctx, cancel := opCtx()
	defer cancel()
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
		WHERE c.relkind = 'r' AND ns.nspname = current_schema() AND c.relname <> 'recent_txs'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("database size: %w", err)
	}
	return n, nil
}
