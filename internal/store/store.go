// Package store keeps the tower's state in one bbolt file: users and their subscriptions,
// appointments, trackers, the tower keys and the last processed block. It stands in for
// rust-teos's SQLite database (teos/src/dbm.rs); cascading deletes are done by hand, each
// logical operation in one transaction.
package store

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/durable"
	"github.com/teos-go/teos/pkg/teos"
)

// dbVersion is the layout this binary writes; migrations[i] upgrades a version i+1 file to i+2.
const dbVersion = 3

// Version 2 added the stored record counts; version 3 the hand-over queue, whose bucket
// Open creates like every other, so it needs no step of its own. An older binary refuses a
// version 3 file rather than ignore its queued hand-overs.
var migrations = []func(tx *bolt.Tx) error{storeRecount, func(*bolt.Tx) error { return nil }}

var (
	// meta: "version" -> be32; "last_block" -> hash(32) || be32 height;
	// "tower_key/" || be64 seq -> secret key (32), the highest seq being the current key;
	// "counts" -> be64 users || be64 appointments || be64 trackers (since version 2).
	bktMeta = []byte("meta")
	// users: user_id(33) -> user record (v1 || be32 slots || be32 start || be32 expiry).
	bktUsers = []byte("users")
	// user_expiry: be32 expiry || user_id(33) -> empty; walked in order to find outdated users.
	bktUserExpiry = []byte("user_expiry")
	// appointments: uuid(20) -> appointment record.
	bktAppointments = []byte("appointments")
	// locator_idx: locator(16) || uuid(20) -> empty; every user's appointments for a locator.
	// Every put must also call b.addLocator in the same transaction (locfilter.go).
	bktLocatorIdx = []byte("locator_idx")
	// user_appts: user_id(33) || uuid(20) -> empty; a user's appointments, for cascades.
	bktUserAppts = []byte("user_appts")
	// trackers: uuid(20) -> tracker record; the appointment with that uuid always exists.
	bktTrackers = []byte("trackers")
	// handovers: uuid(20) -> hand-over record (v1 || block hash(32) || dispute tx); the
	// appointments stored after their dispute was mined, waiting for the chain goroutine. The
	// appointment with that uuid always exists.
	bktHandOvers = []byte("handovers")

	allBuckets = [][]byte{bktMeta, bktUsers, bktUserExpiry, bktAppointments, bktLocatorIdx, bktUserAppts, bktTrackers, bktHandOvers}
)

var (
	keyVersion       = []byte("version")
	keyLastBlock     = []byte("last_block")
	keyCounts        = []byte("counts")
	prefixTowerKey   = []byte("tower_key/")
	prefixTowerKeyNx = []byte("tower_key0") // the first key past every "tower_key/..." key
)

// UserInfo is a user's subscription.
type UserInfo struct {
	AvailableSlots     uint32
	SubscriptionStart  uint32 // height
	SubscriptionExpiry uint32 // height
}

// Appointment is an appointment as stored (rust-teos ExtendedAppointment).
type Appointment struct {
	teos.Appointment // Locator, EncryptedBlob, ToSelfDelay
	UserID           teos.UserID
	UserSignature    string // zbase32 text exactly as received
	StartBlock       uint32
}

// UUID returns the appointment's key: RIPEMD160(locator || user_id).
func (a *Appointment) UUID() teos.UUID { return teos.NewUUID(a.Locator, a.UserID) }

// Tracker is a breach whose penalty was broadcast: InMempoolSince(Height) when !Confirmed,
// ConfirmedIn(Height) when Confirmed.
type Tracker struct {
	UUID        teos.UUID
	DisputeTx   []byte // consensus serialization
	PenaltyTx   []byte
	DisputeTxID chainhash.Hash // internal order
	PenaltyTxID chainhash.Hash
	Height      uint32
	Confirmed   bool
}

// Options tunes the database; zero fields keep the defaults (up to 1000 writes share a
// commit, fsync on every commit).
type Options struct {
	MaxBatchSize int
	// NoSync skips fsync: only for tests and fixtures, a crash can then lose acknowledged data.
	NoSync bool
	// NoLocatorFilter looks every locator up in the index (locfilter.go): for measurements.
	NoLocatorFilter bool
}

// Store is the tower's database. Its methods are safe for concurrent use.
type Store struct {
	db      *bolt.DB
	writes  *committer
	filters *locatorFilters // see locfilter.go
}

// Open opens or creates the database at path, creates any missing bucket and brings the
// layout up to date. It fails with ErrNewerVersion if a newer binary wrote the file.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := checkWhole(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, boltOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if !opts.NoSync {
		// bbolt flushes a new file, not its name: without this a power loss could take the
		// file, and every appointment acknowledged in it, away. Every time, not only when the
		// file is new: a crash right after an earlier Open created it may have left the name
		// in the page cache only.
		if err := durable.SyncDir(filepath.Dir(path)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	saved := peekLocatorFilter(db) // before the first write below
	if err := updateTx(db, func(tx *bolt.Tx) error {
		if err := initialise(tx); err != nil {
			return err
		}
		// A saved locator filter names the file as it was at Close; from this write on it is
		// stale, also for a store opened without the filter (locfilter.go).
		return tx.Bucket(bktMeta).Delete(keyLocatorFilter)
	}); err != nil {
		_ = closeDB(db)
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{db: db, writes: newCommitter(db, opts.MaxBatchSize)}
	if !opts.NoLocatorFilter {
		s.filters = openLocatorFilter(db, saved)
	}
	return s, nil
}

// Unsynced is closed once the store refuses every write, after a failed flush (ErrUnsynced)
// or a write that hit a damaged page (ErrDamaged): only reopening the file clears that, so
// teosd stops and lets its service manager restart it. WritesRefused says which.
func (s *Store) Unsynced() <-chan struct{} { return s.writes.unsyncedCh }

// WritesRefused returns the error every write fails with, or nil while writes go through.
func (s *Store) WritesRefused() error { return s.writes.broken() }

// boltOptions are the bbolt settings; none of them changes the file format.
func boltOptions(opts *Options) *bolt.Options {
	return &bolt.Options{
		// The timeout stops a second process from blocking forever on the file lock.
		Timeout: time.Second,
		NoSync:  opts.NoSync,
		// FreelistType stays the array: the hashmap one (same list on disk) bought nothing
		// measurable in BenchmarkAddAfterDeletes, where bbolt's cost is writing the whole
		// list on every commit, which both do.
	}
}

func initialise(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bktMeta)
	v := meta.Get(keyVersion)
	if v == nil { // a new file
		if err := storeRecount(tx); err != nil {
			return err
		}
		return putVersion(meta, dbVersion)
	}
	if len(v) != 4 {
		return fmt.Errorf("%w: version is %d bytes", ErrCorrupt, len(v))
	}
	version := binary.BigEndian.Uint32(v)
	if version > dbVersion {
		return fmt.Errorf("%w: file has version %d, binary supports %d", ErrNewerVersion, version, dbVersion)
	}
	if version == 0 {
		return fmt.Errorf("%w: version 0", ErrCorrupt)
	}
	for ; version < dbVersion; version++ {
		if err := migrations[version-1](tx); err != nil {
			return fmt.Errorf("migrate from version %d: %w", version, err)
		}
	}
	if meta.Get(keyCounts) == nil { // lost somehow: recounting once is cheaper than failing every scrape
		if err := storeRecount(tx); err != nil {
			return err
		}
	}
	return putVersion(meta, dbVersion)
}

func putVersion(meta *bolt.Bucket, v uint32) error {
	return meta.Put(keyVersion, binary.BigEndian.AppendUint32(nil, v))
}

// Close commits the queued writes and closes the file; it waits for open transactions to
// finish.
func (s *Store) Close() error {
	s.writes.close()
	// After an unsynced commit (ErrUnsynced) nothing more is written, not even the filter's save.
	ferr := s.filters.close(s.writes.broken() == nil)
	if err := closeDB(s.db); err != nil {
		return err
	}
	return ferr
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.db.Path() }

// buckets holds a transaction's top-level buckets and the record count changes it made,
// which the write paths flush (flushCounts) before committing.
type buckets struct {
	meta, users, userExpiry, appointments, locatorIdx, userAppts, trackers, handOvers *bolt.Bucket
	pending                                                                           recordCounts
	filters                                                                           *locatorFilters // nil in a bare bolt.DB
}

func openBuckets(tx *bolt.Tx) (*buckets, error) {
	b := &buckets{filters: filtersFor(tx.DB())}
	for _, x := range []struct {
		dst  **bolt.Bucket
		name []byte
	}{
		{&b.meta, bktMeta}, {&b.users, bktUsers}, {&b.userExpiry, bktUserExpiry},
		{&b.appointments, bktAppointments}, {&b.locatorIdx, bktLocatorIdx},
		{&b.userAppts, bktUserAppts}, {&b.trackers, bktTrackers}, {&b.handOvers, bktHandOvers},
	} {
		if *x.dst = tx.Bucket(x.name); *x.dst == nil {
			return nil, fmt.Errorf("%w: %s", ErrUninitialized, x.name)
		}
	}
	return b, nil
}

// view and update run fn with the buckets open.
func (s *Store) view(fn func(b *buckets) error) error {
	return viewTx(s.db, func(tx *bolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// update runs fn in a transaction of its own, ahead of the queued batches (commit.go).
func (s *Store) update(fn func(b *buckets) error) error {
	return s.writes.writeFirst(fn)
}

// batch runs fn in a group commit shared with concurrent writers (one fsync for all). fn may
// run twice and must not have effects outside the transaction; it wraps its policy refusals,
// made before it writes, in refusal.
func (s *Store) batch(fn func(b *buckets) error) error {
	return s.writes.write(fn)
}

func (s *Store) TowerKey() (sk [32]byte, ok bool, err error) {
	err = s.view(func(b *buckets) error {
		c := b.meta.Cursor()
		k, v := c.Seek(prefixTowerKeyNx)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		if k == nil || !hasPrefix(k, prefixTowerKey) {
			return nil
		}
		if len(v) != len(sk) {
			return fmt.Errorf("%w: tower key is %d bytes", ErrCorrupt, len(v))
		}
		copy(sk[:], v)
		ok = true
		return nil
	})
	if err != nil {
		return [32]byte{}, false, fmt.Errorf("load tower key: %w", err)
	}
	return sk, ok, nil
}

// AddTowerKey stores sk as the current tower key; older keys are kept.
func (s *Store) AddTowerKey(sk [32]byte) error {
	err := s.update(func(b *buckets) error {
		seq, err := b.meta.NextSequence()
		if err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint64(append([]byte(nil), prefixTowerKey...), seq)
		return b.meta.Put(k, append([]byte(nil), sk[:]...))
	})
	if err != nil {
		return fmt.Errorf("add tower key: %w", err)
	}
	return nil
}

// TowerKeys returns every tower key ever stored, oldest first.
func (s *Store) TowerKeys() ([][32]byte, error) {
	var keys [][32]byte
	err := s.view(func(b *buckets) error {
		c := b.meta.Cursor()
		for k, v := c.Seek(prefixTowerKey); k != nil && hasPrefix(k, prefixTowerKey); k, v = c.Next() {
			if len(v) != 32 {
				return fmt.Errorf("%w: tower key is %d bytes", ErrCorrupt, len(v))
			}
			var sk [32]byte
			copy(sk[:], v)
			keys = append(keys, sk)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load tower keys: %w", err)
	}
	return keys, nil
}

// LastBlock returns the last processed block; ok is false on a new database.
func (s *Store) LastBlock() (hash chainhash.Hash, height uint32, ok bool, err error) {
	err = s.view(func(b *buckets) error {
		v := b.meta.Get(keyLastBlock)
		if v == nil {
			return nil
		}
		if len(v) != chainhash.HashSize+4 {
			return fmt.Errorf("%w: last block is %d bytes", ErrCorrupt, len(v))
		}
		copy(hash[:], v)
		height = binary.BigEndian.Uint32(v[chainhash.HashSize:])
		ok = true
		return nil
	})
	if err != nil {
		return chainhash.Hash{}, 0, false, fmt.Errorf("load last block: %w", err)
	}
	return hash, height, ok, nil
}

// SetLastBlock records the last processed block.
func (s *Store) SetLastBlock(hash chainhash.Hash, height uint32) error {
	v := binary.BigEndian.AppendUint32(append([]byte(nil), hash[:]...), height)
	if err := s.update(func(b *buckets) error { return b.meta.Put(keyLastBlock, v) }); err != nil {
		return fmt.Errorf("set last block %s: %w", hash, err)
	}
	return nil
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}
