package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/pkg/teos"
)

// bktAllowedUsers: user_id(33) -> empty; the user ids the operator allowed to register
// (teos-go's registration = "allowlist"). Created on first use, so files without it need no
// migration and older binaries ignore it.
var bktAllowedUsers = []byte("allowed_users")

// AllowUser adds id to the registration allowlist; changed is false if it was there.
func (s *Store) AllowUser(id teos.UserID) (changed bool, err error) {
	err = s.writes.txUpdate(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bktAllowedUsers)
		if err != nil {
			return err
		}
		if b.Get(id[:]) != nil {
			return nil
		}
		changed = true
		return b.Put(id[:], []byte{})
	})
	if err != nil {
		return false, fmt.Errorf("allow user %s: %w", id, err)
	}
	return changed, nil
}

// DisallowUser removes id from the registration allowlist; changed is false if it was not
// there. The user's subscription, if any, is left alone.
func (s *Store) DisallowUser(id teos.UserID) (changed bool, err error) {
	err = s.writes.txUpdate(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktAllowedUsers)
		if b == nil || b.Get(id[:]) == nil {
			return nil
		}
		changed = true
		return b.Delete(id[:])
	})
	if err != nil {
		return false, fmt.Errorf("disallow user %s: %w", id, err)
	}
	return changed, nil
}

// UserAllowed reports whether id is on the registration allowlist.
func (s *Store) UserAllowed(id teos.UserID) (bool, error) {
	var ok bool
	err := viewTx(s.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bktAllowedUsers)
		ok = b != nil && b.Get(id[:]) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("look up allowed user %s: %w", id, err)
	}
	return ok, nil
}

// AllowedUsers lists the registration allowlist in key order.
func (s *Store) AllowedUsers() ([]teos.UserID, error) {
	var ids []teos.UserID
	err := viewTx(s.db, func(tx *bolt.Tx) error {
		b := tx.Bucket(bktAllowedUsers)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			if len(k) != teos.UserIDLen {
				return fmt.Errorf("%w: allowed_users key is %d bytes", ErrCorrupt, len(k))
			}
			ids = append(ids, teos.UserID(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list allowed users: %w", err)
	}
	return ids, nil
}

// StoredBytes is the part of the database file in use: its size minus its free pages. It is
// what the tower's data takes on disk, indexes and page overhead included.
func (s *Store) StoredBytes() (int64, error) {
	var size int64
	if err := viewTx(s.db, func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		return 0, fmt.Errorf("database size: %w", err)
	}
	st := s.db.Stats()
	return size - int64(st.FreeAlloc), nil // FreeAlloc counts free and pending pages
}
