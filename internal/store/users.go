package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

func expiryKey(expiry uint32, id teos.UserID) []byte {
	k := make([]byte, 0, 4+teos.UserIDLen)
	k = binary.BigEndian.AppendUint32(k, expiry)
	return append(k, id[:]...)
}

func getUser(b *buckets, id teos.UserID) (UserInfo, bool, error) {
	v := b.users.Get(id[:])
	if v == nil {
		return UserInfo{}, false, nil
	}
	u, err := decodeUser(v)
	if err != nil {
		return UserInfo{}, false, fmt.Errorf("user %s: %w", id, err)
	}
	return u, true, nil
}

// putUser writes next and moves the user's expiry index entry if the expiry changed; existed
// must say whether the user was stored, as it decides the user count.
func putUser(b *buckets, id teos.UserID, prev UserInfo, existed bool, next UserInfo) error {
	if err := b.users.Put(id[:], encodeUser(next)); err != nil {
		return err
	}
	if !existed {
		b.pending.users++
	}
	if existed && prev.SubscriptionExpiry == next.SubscriptionExpiry {
		return nil
	}
	if existed {
		if err := b.userExpiry.Delete(expiryKey(prev.SubscriptionExpiry, id)); err != nil {
			return err
		}
	}
	return b.userExpiry.Put(expiryKey(next.SubscriptionExpiry, id), []byte{})
}

// User returns the user's subscription; ok is false if the user is not registered.
func (s *Store) User(id teos.UserID) (UserInfo, bool, error) {
	var (
		u  UserInfo
		ok bool
	)
	// Only the users bucket: every authenticated request reads its user, and opening all the
	// buckets (view) cost several times the lookup itself.
	err := viewTx(s.db, func(tx *bolt.Tx) (err error) {
		users := tx.Bucket(bktUsers)
		if users == nil {
			return fmt.Errorf("%w: %s", ErrUninitialized, bktUsers)
		}
		u, ok, err = getUser(&buckets{users: users}, id)
		return err
	})
	if err != nil {
		return UserInfo{}, false, fmt.Errorf("load user %s: %w", id, err)
	}
	return u, ok, nil
}

// UpdateUser runs fn on the user's current record (exists=false and a zero UserInfo if absent)
// and stores what fn returns, in one transaction shared with concurrent writers (a group commit).
// fn must be pure: it may run more than once. An error from fn aborts the transaction and is
// returned unchanged.
func (s *Store) UpdateUser(id teos.UserID, fn func(prev UserInfo, exists bool) (UserInfo, error)) (UserInfo, error) {
	if fn == nil { // it would panic in the group commit's goroutine
		return UserInfo{}, fmt.Errorf("update user %s: nil function", id)
	}
	var out UserInfo
	err := s.batch(func(b *buckets) error {
		out = UserInfo{}
		prev, exists, err := getUser(b, id)
		if err != nil {
			return err
		}
		next, err := fn(prev, exists)
		if err != nil {
			return refusal{err}
		}
		if err := putUser(b, id, prev, exists, next); err != nil {
			return fmt.Errorf("store user %s: %w", id, err)
		}
		out = next
		return nil
	})
	if err != nil {
		return UserInfo{}, err
	}
	return out, nil
}

// Users returns every registered user.
func (s *Store) Users() ([]teos.UserID, error) {
	var ids []teos.UserID
	err := s.view(func(b *buckets) error {
		return b.users.ForEach(func(k, _ []byte) error {
			if len(k) != teos.UserIDLen {
				return fmt.Errorf("%w: user key is %d bytes", ErrCorrupt, len(k))
			}
			ids = append(ids, teos.UserID(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return ids, nil
}

// userUUIDs lists the user's appointments from the user_appts index.
func userUUIDs(b *buckets, id teos.UserID) ([]teos.UUID, error) {
	var ids []teos.UUID
	c := b.userAppts.Cursor()
	for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Next() {
		if len(k) != teos.UserIDLen+teos.UUIDLen {
			return nil, fmt.Errorf("%w: user_appts key is %d bytes", ErrCorrupt, len(k))
		}
		ids = append(ids, teos.UUID(k[teos.UserIDLen:]))
	}
	return ids, nil
}

// UserAppointments returns the UUIDs of all the user's appointments, triggered ones included.
func (s *Store) UserAppointments(id teos.UserID) ([]teos.UUID, error) {
	var ids []teos.UUID
	err := s.view(func(b *buckets) (err error) {
		ids, err = userUUIDs(b, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list appointments of %s: %w", id, err)
	}
	return ids, nil
}

// UserLocators returns the locators of all the user's appointments, triggered ones included.
func (s *Store) UserLocators(id teos.UserID) ([]teos.Locator, error) {
	var locs []teos.Locator
	err := s.view(func(b *buckets) error {
		ids, err := userUUIDs(b, id)
		if err != nil {
			return err
		}
		locs = make([]teos.Locator, 0, len(ids))
		c := appointmentWalker{c: b.appointments.Cursor()}
		for _, uuid := range ids {
			v := c.get(uuid)
			if v == nil {
				return fmt.Errorf("%w: index entry for missing appointment %s", ErrCorrupt, uuid)
			}
			loc, _, _, err := appointmentHead(v)
			if err != nil {
				return fmt.Errorf("appointment %s: %w", uuid, err)
			}
			locs = append(locs, loc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list locators of %s: %w", id, err)
	}
	return locs, nil
}

// appointmentWalker looks up appointments in ascending UUID order, as a user's index lists
// them. A Get descends from the root for every record; the walker first steps forward from the
// last one found, which costs a fraction of a descent, and seeks only when the next record is
// further away: a user who holds most of the tower's appointments is read almost sequentially
// (about 2x faster), one among many costs what Get did. It tries walkerSteps keys after a
// record found by stepping, one after a seek, so sparse lookups waste little.
type appointmentWalker struct {
	c      *bolt.Cursor
	k, v   []byte // where the cursor is
	seeked bool
	near   bool // the last record was found by stepping
}

const walkerSteps = 4

// get returns the record of id, or nil; ids must come in ascending order.
func (w *appointmentWalker) get(id teos.UUID) []byte {
	if w.seeked {
		budget := 1
		if w.near {
			budget = walkerSteps
		}
		for step := 0; w.k != nil; step++ {
			switch bytes.Compare(w.k, id[:]) {
			case 0:
				w.near = true
				return w.v
			case 1:
				return nil // past it: not stored
			}
			if step == budget {
				break
			}
			w.k, w.v = w.c.Next()
		}
		if w.k == nil {
			return nil // past the last record
		}
	}
	w.k, w.v = w.c.Seek(id[:])
	w.seeked, w.near = true, false
	if w.k == nil || !bytes.Equal(w.k, id[:]) {
		return nil
	}
	return w.v
}

// DeleteOutdatedUsers deletes, in one transaction, every user whose subscription expired at
// least expiryDelta blocks before height (height >= expiry+expiryDelta), with their
// appointments, trackers and index entries. It walks the expiry index, so it only touches
// the users it deletes.
func (s *Store) DeleteOutdatedUsers(height, expiryDelta uint32) ([]teos.UserID, error) {
	// Most blocks outdate nobody: look first, so they cost no write transaction (and no fsync).
	var any bool
	err := s.view(func(b *buckets) error {
		k, _ := b.userExpiry.Cursor().First()
		// A malformed key goes on to the full pass, which reports it.
		any = k != nil && (len(k) != 4+teos.UserIDLen || uint64(height) >= uint64(binary.BigEndian.Uint32(k))+uint64(expiryDelta))
		return nil
	})
	if err != nil || !any {
		return nil, err
	}
	var deleted []teos.UserID
	err = s.update(func(b *buckets) error {
		deleted = nil
		type entry struct {
			key    []byte
			expiry uint32
			id     teos.UserID
		}
		// Collect first: deleting under a bbolt cursor makes it skip keys.
		var outdated []entry
		c := b.userExpiry.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) != 4+teos.UserIDLen {
				return fmt.Errorf("%w: user_expiry key is %d bytes", ErrCorrupt, len(k))
			}
			expiry := binary.BigEndian.Uint32(k)
			// uint64 so that expiry+delta cannot wrap round.
			if uint64(height) < uint64(expiry)+uint64(expiryDelta) {
				break
			}
			outdated = append(outdated, entry{bytes.Clone(k), expiry, teos.UserID(k[4:])})
		}
		for _, e := range outdated {
			if err := b.userExpiry.Delete(e.key); err != nil {
				return err
			}
			u, ok, err := getUser(b, e.id)
			if err != nil {
				return err
			}
			if !ok || u.SubscriptionExpiry != e.expiry {
				continue // a stale index entry; the user's real one decides
			}
			ids, err := userUUIDs(b, e.id)
			if err != nil {
				return err
			}
			for _, uuid := range ids {
				if _, err := deleteAppointment(b, uuid); err != nil {
					return err
				}
			}
			if err := deleteUserRecord(b, e.id); err != nil {
				return err
			}
			deleted = append(deleted, e.id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("delete outdated users at height %d: %w", height, err)
	}
	return deleted, nil
}
