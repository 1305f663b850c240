// Package rustimport moves a rust-teos tower onto teos-go: it reads rust-teos's SQLite
// database (teos_db.sql3, written by teos/src/dbm.rs) read-only and writes everything in it
// (tower keys, users, appointments, trackers, the last known block) into a new teos-go store.
// The store is built in a temporary file and renamed into place only when complete, so an
// interrupted import leaves nothing behind that looks imported. This is the only package that
// knows SQLite.
package rustimport

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/durable"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

var (
	// ErrUnknownFormat: not an SQLite file, or not rust-teos's schema.
	ErrUnknownFormat = errors.New("not a rust-teos database")
	// ErrCorrupt: the file or one of its rows cannot be what rust-teos wrote.
	ErrCorrupt = errors.New("corrupt rust-teos database")
	// ErrInUse: another process holds the file, or left a journal beside it.
	ErrInUse = errors.New("rust-teos database in use")
)

// DefaultBatchSize is how many users or appointments go into one write transaction.
const DefaultBatchSize = 10000

// Config says what to import where.
type Config struct {
	Source string // rust-teos's teos_db.sql3
	Dest   string // the teos-go store to create; replaced if it exists. Its directory is
	// created (0700) if missing, once the source has been read: a refused import creates nothing.

	// BlockHeight gives the height of rust-teos's last known block (rust-teos stores only its
	// hash). Called before anything is written.
	BlockHeight func(ctx context.Context, hash chainhash.Hash) (uint32, error)

	BatchSize int // 0: DefaultBatchSize

	// Paused, if set, is called once the users and appointments are in the temporary file and
	// the trackers, keys and last block are not: a test hook to interrupt the import there.
	// An error aborts the import.
	Paused func(ctx context.Context) error
}

// Summary is what was imported.
type Summary struct {
	Keys, Users, Appointments, Trackers int
	TowerKey                            [32]byte        // the active key, as rust-teos picks it
	LastBlock                           *chainhash.Hash // nil if rust-teos had none
	Height                              uint32          // LastBlock's height
}

// tempPattern names the temporary store beside Dest (os.CreateTemp pattern).
func tempPattern(dest string) string { return filepath.Base(dest) + ".import-*" }

// Import reads cfg.Source and writes its content into a new store at cfg.Dest. On any error
// nothing is left at cfg.Dest (nor a temporary file, unless the process dies) and the source
// is untouched; it is opened read-only in any case.
func Import(ctx context.Context, cfg Config) (Summary, error) {
	var sum Summary
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if err := checkFile(cfg.Source); err != nil {
		return sum, err
	}
	db, tx, err := openSource(ctx, cfg.Source)
	if err != nil {
		return sum, err
	}
	defer db.Close()
	defer tx.Rollback() //nolint:errcheck // read-only: ending it only drops the shared lock
	if err := checkSchema(ctx, tx); err != nil {
		return sum, err
	}
	keys, active, err := readKeys(ctx, tx)
	if err != nil {
		return sum, err
	}
	sum.Keys, sum.TowerKey = len(keys), active
	if sum.LastBlock, err = readLastBlock(ctx, tx); err != nil {
		return sum, err
	}
	if sum.LastBlock != nil {
		if cfg.BlockHeight == nil {
			return sum, errors.New("rustimport: no BlockHeight to resolve the last known block")
		}
		if sum.Height, err = cfg.BlockHeight(ctx, *sum.LastBlock); err != nil {
			return sum, fmt.Errorf("rust-teos's last known block %s: %w", sum.LastBlock, err)
		}
	}

	created, err := durable.MkdirAll(filepath.Dir(cfg.Dest), 0o700)
	if err != nil {
		return sum, fmt.Errorf("create data dir: %w", err)
	}
	committed := false
	defer func() { // runs after the temporary file is removed
		for _, d := range created {
			if !committed {
				os.Remove(d) // removes only an empty dir
			}
		}
	}()
	removeStaleTemps(cfg.Dest)
	f, err := os.CreateTemp(filepath.Dir(cfg.Dest), tempPattern(cfg.Dest))
	if err != nil {
		return sum, fmt.Errorf("create temporary store: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if !committed {
			os.Remove(tmp)
		}
	}()
	// No fsync per transaction: the file counts only once synced and renamed.
	// No locator filter: teosd builds its own when it opens the renamed file, and a saved
	// one would be left under the temporary name.
	st, err := store.Open(tmp, &store.Options{NoSync: true, NoLocatorFilter: true})
	if err != nil {
		return sum, err
	}
	defer func() {
		if st != nil {
			st.Close()
		}
	}()

	if sum.Users, err = copyUsers(ctx, tx, st, cfg.BatchSize); err != nil {
		return sum, err
	}
	if sum.Appointments, err = copyAppointments(ctx, tx, st, cfg.BatchSize); err != nil {
		return sum, err
	}
	if cfg.Paused != nil {
		if err := cfg.Paused(ctx); err != nil {
			return sum, err
		}
	}
	if sum.Trackers, err = copyTrackers(ctx, tx, st); err != nil {
		return sum, err
	}
	// Keys last: a partial file (were it ever used) would have no tower key at all rather
	// than the right key with missing users.
	for _, k := range keys {
		if err := st.AddTowerKey(k); err != nil {
			return sum, err
		}
	}
	if sum.LastBlock != nil {
		if err := st.SetLastBlock(*sum.LastBlock, sum.Height); err != nil {
			return sum, err
		}
	}
	if err := st.Sync(); err != nil {
		return sum, err
	}
	err = st.Close()
	st = nil
	if err != nil {
		return sum, fmt.Errorf("close temporary store: %w", err)
	}
	if err := durable.Sync(tmp); err != nil {
		return sum, err
	}
	if err := os.Rename(tmp, cfg.Dest); err != nil {
		return sum, fmt.Errorf("move the imported store into place: %w", err)
	}
	committed = true
	if err := durable.SyncDir(filepath.Dir(cfg.Dest)); err != nil {
		return sum, err
	}
	return sum, nil
}

// TowerKey reads the tower key rust-teos uses from its database at path, read-only. Unlike
// Import it does not read the whole file: teosd asks at every start whose teos.db sits beside
// rust-teos's database.
func TowerKey(ctx context.Context, path string) ([32]byte, error) {
	if err := checkFile(path); err != nil {
		return [32]byte{}, err
	}
	db, tx, err := openReadOnly(ctx, path)
	if err != nil {
		return [32]byte{}, err
	}
	defer db.Close()
	defer tx.Rollback() //nolint:errcheck // read-only
	_, active, err := readKeys(ctx, tx)
	return active, err
}

// removeStaleTemps deletes temporary stores left by killed imports. One that another process
// holds open (an import running right now) is locked and left alone.
func removeStaleTemps(dest string) {
	// Listed and matched by prefix, not globbed: a data dir whose path holds "[", "*" or "?"
	// would be read as a pattern, and nothing would ever be removed.
	dir, prefix := filepath.Dir(dest), strings.TrimSuffix(tempPattern(dest), "*")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		m := filepath.Join(dir, e.Name())
		db, err := bolt.Open(m, 0o600, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
		if errors.Is(err, bolt.ErrTimeout) {
			continue
		}
		if err == nil {
			db.Close()
		}
		os.Remove(m)
	}
}

// readKeys returns every key, oldest first with the active one last, and the active one:
// rust-teos uses the key whose id is the table's AUTOINCREMENT counter (DBM::load_tower_key).
func readKeys(ctx context.Context, tx *sql.Tx) ([][32]byte, [32]byte, error) {
	var none [32]byte
	var seq int64
	err := tx.QueryRowContext(ctx, "SELECT seq FROM sqlite_sequence WHERE name='keys'").Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, none, fmt.Errorf("%w: no tower key", ErrCorrupt)
	}
	if err != nil {
		return nil, none, sqliteErr(err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT id, key FROM keys ORDER BY id")
	if err != nil {
		return nil, none, sqliteErr(err)
	}
	defer rows.Close()
	var (
		keys   [][32]byte
		active *[32]byte
	)
	for rows.Next() {
		var (
			id  int64
			raw any
		)
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, none, sqliteErr(err)
		}
		sk, err := parseKey(raw)
		if err != nil {
			return nil, none, fmt.Errorf("%w: keys id %d: %v", ErrCorrupt, id, err)
		}
		if id == seq {
			active = &sk
			continue
		}
		keys = append(keys, sk)
	}
	if err := rows.Err(); err != nil {
		return nil, none, sqliteErr(err)
	}
	if active == nil {
		return nil, none, fmt.Errorf("%w: the tower key rust-teos uses (keys id %d) is missing", ErrCorrupt, seq)
	}
	return append(keys, *active), *active, nil
}

// parseKey reads SecretKey::display_secret(): 64 hex characters stored as TEXT.
func parseKey(v any) ([32]byte, error) {
	var sk [32]byte
	s, ok := v.(string)
	if !ok {
		return sk, fmt.Errorf("key is %s, want hex TEXT", typeName(v))
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return sk, errors.New("key is not 64 hex characters")
	}
	var n btcec.ModNScalar
	if overflow := n.SetByteSlice(b); overflow || n.IsZero() {
		return sk, errors.New("key is not a valid secp256k1 secret key")
	}
	copy(sk[:], b)
	return sk, nil
}

// readLastBlock reads DBM::load_last_known_block: row id 0, the hash in internal order.
func readLastBlock(ctx context.Context, tx *sql.Tx) (*chainhash.Hash, error) {
	var raw any
	err := tx.QueryRowContext(ctx, "SELECT block_hash FROM last_known_block WHERE id=0").Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, sqliteErr(err)
	}
	b, err := blob(raw, chainhash.HashSize)
	if err != nil {
		return nil, fmt.Errorf("%w: last_known_block: %v", ErrCorrupt, err)
	}
	var h chainhash.Hash
	copy(h[:], b)
	return &h, nil
}

// rowError names the row a bad value came from.
func rowError(table string, rowid int64, err error) error {
	return fmt.Errorf("%w: %s rowid %d: %v", ErrCorrupt, table, rowid, err)
}

func copyUsers(ctx context.Context, tx *sql.Tx, st *store.Store, batchSize int) (int, error) {
	rows, err := tx.QueryContext(ctx, "SELECT rowid, user_id, available_slots, subscription_start, subscription_expiry FROM users")
	if err != nil {
		return 0, sqliteErr(err)
	}
	defer rows.Close()
	n := 0
	batch := make(map[teos.UserID]store.UserInfo)
	for rows.Next() {
		var (
			rowid                    int64
			id, slots, start, expiry any
		)
		if err := rows.Scan(&rowid, &id, &slots, &start, &expiry); err != nil {
			return 0, sqliteErr(err)
		}
		var (
			u    store.UserInfo
			errs [4]error
		)
		var uid teos.UserID
		uid, errs[0] = userID(id)
		u.AvailableSlots, errs[1] = u32(slots, "available_slots")
		u.SubscriptionStart, errs[2] = u32(start, "subscription_start")
		u.SubscriptionExpiry, errs[3] = u32(expiry, "subscription_expiry")
		if err := errors.Join(errs[:]...); err != nil {
			return 0, rowError("users", rowid, err)
		}
		batch[uid] = u
		n++
		if len(batch) >= batchSize {
			if err := st.BulkLoad(batch, nil); err != nil {
				return 0, err
			}
			clear(batch)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, sqliteErr(err)
	}
	if len(batch) > 0 {
		if err := st.BulkLoad(batch, nil); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func copyAppointments(ctx context.Context, tx *sql.Tx, st *store.Store, batchSize int) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT rowid, UUID, locator, encrypted_blob, to_self_delay, user_signature,
		start_block, user_id FROM appointments`)
	if err != nil {
		return 0, sqliteErr(err)
	}
	defer rows.Close()
	n := 0
	var batch []*store.Appointment
	flush := func() error {
		if err := st.BulkLoad(nil, batch); err != nil {
			if errors.Is(err, store.ErrUserNotFound) {
				return fmt.Errorf("%w: an appointment's user is not in the users table: %v", ErrCorrupt, err)
			}
			return err
		}
		batch = batch[:0]
		return nil
	}
	for rows.Next() {
		var (
			rowid                                       int64
			uuid, loc, blobV, delay, sig, start, ownerV any
		)
		if err := rows.Scan(&rowid, &uuid, &loc, &blobV, &delay, &sig, &start, &ownerV); err != nil {
			return 0, sqliteErr(err)
		}
		a := &store.Appointment{}
		var errs [7]error
		var id, l []byte
		id, errs[0] = blob(uuid, teos.UUIDLen)
		l, errs[1] = blob(loc, teos.LocatorLen)
		copy(a.Locator[:], l)
		a.EncryptedBlob, errs[2] = blob(blobV, -1)
		a.ToSelfDelay, errs[3] = u32(delay, "to_self_delay")
		a.UserSignature, errs[4] = text(sig, "user_signature")
		a.StartBlock, errs[5] = u32(start, "start_block")
		a.UserID, errs[6] = userID(ownerV)
		if err := errors.Join(errs[:]...); err != nil {
			return 0, rowError("appointments", rowid, err)
		}
		// The store keys appointments by this derivation; rust-teos stored the same value.
		if want := a.UUID(); !bytes.Equal(id, want[:]) {
			return 0, rowError("appointments", rowid, fmt.Errorf("UUID %x is not RIPEMD160(locator || user_id) = %s", id, want))
		}
		batch = append(batch, a)
		n++
		if len(batch) >= batchSize {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, sqliteErr(err)
	}
	if len(batch) > 0 {
		if err := flush(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func copyTrackers(ctx context.Context, tx *sql.Tx, st *store.Store) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT t.rowid, t.UUID, t.dispute_tx, t.penalty_tx, t.height, t.confirmed, a.locator
		FROM trackers AS t LEFT JOIN appointments AS a ON a.UUID = t.UUID`)
	if err != nil {
		return 0, sqliteErr(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			rowid                                      int64
			uuid, dispute, penalty, height, conf, locV any
		)
		if err := rows.Scan(&rowid, &uuid, &dispute, &penalty, &height, &conf, &locV); err != nil {
			return 0, sqliteErr(err)
		}
		if locV == nil {
			return 0, rowError("trackers", rowid, errors.New("its appointment is not in the appointments table"))
		}
		t := &store.Tracker{}
		var errs [6]error
		var id, loc []byte
		id, errs[0] = blob(uuid, teos.UUIDLen)
		copy(t.UUID[:], id)
		t.DisputeTx, t.DisputeTxID, errs[1] = transaction(dispute, "dispute_tx")
		t.PenaltyTx, t.PenaltyTxID, errs[2] = transaction(penalty, "penalty_tx")
		t.Height, errs[3] = u32(height, "height")
		t.Confirmed, errs[4] = boolean(conf, "confirmed")
		loc, errs[5] = blob(locV, teos.LocatorLen)
		if err := errors.Join(errs[:]...); err != nil {
			return 0, rowError("trackers", rowid, err)
		}
		if l := teos.NewLocator(t.DisputeTxID); !bytes.Equal(l[:], loc) {
			return 0, rowError("trackers", rowid, fmt.Errorf("dispute tx %s does not match the appointment's locator %x", t.DisputeTxID, loc))
		}
		if err := st.PutTracker(t); err != nil {
			return 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, sqliteErr(err)
	}
	return n, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "NULL"
	case int64:
		return "INTEGER"
	case float64:
		return "REAL"
	case string:
		return "TEXT"
	case []byte:
		return "BLOB"
	}
	return fmt.Sprintf("%T", v)
}

// blob wants a BLOB of n bytes (any length if n < 0, rust-teos's Vec<u8>) and copies it.
func blob(v any, n int) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("%s where a BLOB belongs", typeName(v))
	}
	if n >= 0 && len(b) != n {
		return nil, fmt.Errorf("%d-byte BLOB, want %d", len(b), n)
	}
	return bytes.Clone(b), nil
}

// u32 wants an INTEGER that fits rust-teos's u32.
func u32(v any, name string) (uint32, error) {
	i, ok := v.(int64)
	if !ok || i < 0 || i > 1<<32-1 {
		return 0, fmt.Errorf("%s is %s %v, want an integer 0..2^32-1", name, typeName(v), v)
	}
	return uint32(i), nil
}

// boolean wants the 0 or 1 rusqlite stores for a bool.
func boolean(v any, name string) (bool, error) {
	i, ok := v.(int64)
	if !ok || (i != 0 && i != 1) {
		return false, fmt.Errorf("%s is %s %v, want 0 or 1", name, typeName(v), v)
	}
	return i == 1, nil
}

// text wants the TEXT rusqlite stores for a String.
func text(v any, name string) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s is %s, want TEXT", name, typeName(v))
	}
	return s, nil
}

// userID wants UserId::to_vec(): a 33-byte compressed public key.
func userID(v any) (teos.UserID, error) {
	b, err := blob(v, teos.UserIDLen)
	if err != nil {
		return teos.UserID{}, fmt.Errorf("user_id: %w", err)
	}
	id, err := teos.ParseUserID(b)
	if err != nil {
		return teos.UserID{}, fmt.Errorf("user_id: %w", err)
	}
	return id, nil
}

// transaction wants consensus::serialize(&tx): one whole transaction.
func transaction(v any, name string) ([]byte, chainhash.Hash, error) {
	b, err := blob(v, -1)
	if err != nil {
		return nil, chainhash.Hash{}, fmt.Errorf("%s: %w", name, err)
	}
	var tx wire.MsgTx
	r := bytes.NewReader(b)
	if err := tx.Deserialize(r); err != nil || r.Len() != 0 {
		return nil, chainhash.Hash{}, fmt.Errorf("%s is not one serialized transaction", name)
	}
	return b, tx.TxHash(), nil
}
