package store

import (
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// extPrefix starts the name of every bucket a front end keeps in the tower's file (ext/lnd, ...),
// so its records live next to the tower's, in the same file and fsync, but never in its buckets.
const extPrefix = "ext/"

// ErrExtName is returned for an extension bucket name that is empty or not printable ASCII.
var ErrExtName = errors.New("store: bad extension bucket name")

func extBucketName(name string) ([]byte, error) {
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, fmt.Errorf("%w: %q", ErrExtName, name)
	}
	return []byte(extPrefix + name), nil
}

// ExtView runs fn in a read transaction on the extension bucket name (created by the first
// ExtUpdate); b is nil while nothing was ever written there. fn must not keep b or the slices
// it returns past its return.
func (s *Store) ExtView(name string, fn func(b *bolt.Bucket) error) error {
	bn, err := extBucketName(name)
	if err != nil {
		return err
	}
	return viewTx(s.db, func(tx *bolt.Tx) error { return fn(tx.Bucket(bn)) })
}

// ExtUpdate runs fn in one write transaction (committed and synced before it returns) on the
// extension bucket name, creating it if needed. An error from fn rolls back everything fn did.
func (s *Store) ExtUpdate(name string, fn func(b *bolt.Bucket) error) error {
	bn, err := extBucketName(name)
	if err != nil {
		return err
	}
	return s.writes.txUpdate(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bn)
		if err != nil {
			return fmt.Errorf("extension bucket %s: %w", name, err)
		}
		return fn(b)
	})
}
