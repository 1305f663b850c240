package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Contents is what a store file holds, as Inspect reads it.
type Contents struct {
	Version      uint32 // the file's layout version; 0 for a file no store ever initialised
	TowerKeys    int
	Users        int
	Appointments int // every appointment, those with a tracker included
	Trackers     int
	HasLastBlock bool
}

// Empty reports whether the file holds no tower key, user, appointment, tracker or last block.
func (c Contents) Empty() bool {
	return c.TowerKeys == 0 && c.Users == 0 && c.Appointments == 0 && c.Trackers == 0 && !c.HasLastBlock
}

// Inspect reads what the store file at path holds without writing to it: the file is opened
// read-only and no layout upgrade runs, so a caller that only asks (and then refuses) leaves
// it byte-identical whatever its version. A file of zero bytes (bbolt never got to write it)
// is empty. It fails with ErrNewerVersion for a file of a newer binary, whose layout it cannot
// vouch for.
func Inspect(path string) (Contents, error) {
	var c Contents
	if err := readOnly(path, func(tx *bolt.Tx) error { return inspect(tx, &c) }); err != nil {
		return Contents{}, err
	}
	return c, nil
}

// InspectTowerKeys returns the tower keys in the store file at path, oldest first, reading it
// as Inspect does (read-only, no upgrade; a zero-byte file has none).
func InspectTowerKeys(path string) ([][32]byte, error) {
	var keys [][32]byte
	err := readOnly(path, func(tx *bolt.Tx) error {
		var c Contents
		if err := inspect(tx, &c); err != nil || c.TowerKeys == 0 {
			return err
		}
		cur := tx.Bucket(bktMeta).Cursor()
		for k, v := cur.Seek(prefixTowerKey); k != nil && hasPrefix(k, prefixTowerKey); k, v = cur.Next() {
			if len(v) != 32 {
				return fmt.Errorf("%w: tower key is %d bytes", ErrCorrupt, len(v))
			}
			keys = append(keys, [32]byte(v))
		}
		return nil
	})
	return keys, err
}

// readOnly runs fn in a read transaction of the store file at path, opened read-only; fn is
// not called for a zero-byte file.
func readOnly(path string, fn func(tx *bolt.Tx) error) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	if err := checkWhole(path); err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("open %s: locked by another process (is teosd running?)", path)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	err = viewTx(db, func(tx *bolt.Tx) (err error) {
		// bbolt panics on a damaged page; the caller wants a one-line refusal.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v", ErrCorrupt, r)
			}
		}()
		return fn(tx)
	})
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	return nil
}

func inspect(tx *bolt.Tx, c *Contents) error {
	meta := tx.Bucket(bktMeta)
	if meta == nil { // never initialised: Open would create every bucket
		return nil
	}
	if v := meta.Get(keyVersion); v != nil {
		if len(v) != 4 {
			return fmt.Errorf("%w: version is %d bytes", ErrCorrupt, len(v))
		}
		c.Version = binary.BigEndian.Uint32(v)
		if c.Version == 0 {
			return fmt.Errorf("%w: version 0", ErrCorrupt)
		}
		if c.Version > dbVersion {
			return fmt.Errorf("%w: file has version %d, binary supports %d", ErrNewerVersion, c.Version, dbVersion)
		}
	}
	cur := meta.Cursor()
	for k, _ := cur.Seek(prefixTowerKey); k != nil && hasPrefix(k, prefixTowerKey); k, _ = cur.Next() {
		c.TowerKeys++
	}
	c.HasLastBlock = meta.Get(keyLastBlock) != nil

	// The stored totals exist since version 2; older files (or lost or damaged totals, which
	// the next write repairs) are counted from bucket stats, as the upgrade counts them.
	if c.Version >= 2 {
		if rc, err := decodeCounts(meta.Get(keyCounts)); err == nil {
			c.Users, c.Appointments, c.Trackers = int(rc.users), int(rc.appointments), int(rc.trackers)
			return nil
		}
	}
	for _, x := range []struct {
		dst  *int
		name []byte
	}{{&c.Users, bktUsers}, {&c.Appointments, bktLocatorIdx}, {&c.Trackers, bktTrackers}} {
		if bkt := tx.Bucket(x.name); bkt != nil {
			*x.dst = bkt.Stats().KeyN
		}
	}
	return nil
}
