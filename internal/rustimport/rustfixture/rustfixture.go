// Package rustfixture writes SQLite databases the way rust-teos's DBM (teos/src/dbm.rs) does:
// its CREATE statements, its INSERT statements and its column encodings. Tests build the
// databases that internal/rustimport reads with it; nothing in teosd uses it.
package rustfixture

import (
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	_ "modernc.org/sqlite" // the pure-Go driver registers "sqlite"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// Tables are rust-teos's schema statements (teos/src/dbm.rs, TABLES), verbatim. v0.2.0 has
// the first five; later versions add the locator index.
var Tables = []string{
	`CREATE TABLE IF NOT EXISTS users (
    user_id INT PRIMARY KEY,
    available_slots INT NOT NULL,
    subscription_start INT NOT NULL,
    subscription_expiry INT NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS appointments (
    UUID INT PRIMARY KEY,
    locator INT NOT NULL,
    encrypted_blob BLOB NOT NULL,
    to_self_delay INT NOT NULL,
    user_signature BLOB NOT NULL,
    start_block INT NOT NULL,
    user_id INT NOT NULL,
    FOREIGN KEY(user_id)
        REFERENCES users(user_id)
        ON DELETE CASCADE
)`,
	`CREATE TABLE IF NOT EXISTS trackers (
    UUID INT PRIMARY KEY,
    dispute_tx BLOB NOT NULL,
    penalty_tx BLOB NOT NULL,
    height INT NOT NULL,
    confirmed BOOL NOT NULL,
    FOREIGN KEY(UUID)
        REFERENCES appointments(UUID)
        ON DELETE CASCADE
)`,
	`CREATE TABLE IF NOT EXISTS last_known_block (
    id INT PRIMARY KEY,
    block_hash INT NOT NULL
)`,
	`CREATE TABLE IF NOT EXISTS keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key INT NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS locators_index ON appointments (
        locator
)`,
}

// rust-teos's INSERT statements (DBM::store_user, store_appointment, store_tracker,
// store_last_known_block, store_tower_key).
const (
	insertUser        = "INSERT INTO users (user_id, available_slots, subscription_start, subscription_expiry) VALUES (?1, ?2, ?3, ?4)"
	insertAppointment = "INSERT INTO appointments (UUID, locator, encrypted_blob, to_self_delay, user_signature, start_block, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
	insertTracker     = "INSERT INTO trackers (UUID, dispute_tx, penalty_tx, height, confirmed) VALUES (?1, ?2, ?3, ?4, ?5)"
	insertLastBlock   = "INSERT OR REPLACE INTO last_known_block (id, block_hash) VALUES (0, ?)"
	insertKey         = "INSERT INTO keys (key) VALUES (?)"
)

// DB is what a rust-teos database holds. Trackers' dispute and penalty transactions are the
// consensus serializations rust-teos stores; their txid fields are not written.
type DB struct {
	Keys         [][32]byte // in the order rust-teos generated them: the last is the tower's key
	Users        map[teos.UserID]store.UserInfo
	Appointments []*store.Appointment
	Trackers     []*store.Tracker
	LastBlock    *chainhash.Hash // internal byte order, as rust-teos stores it; nil: no row
	V020         bool            // the v0.2.0 schema: no locators_index
}

// URI returns a SQLite URI for path with the given query (e.g. "mode=ro").
func URI(path, query string) string {
	return (&url.URL{Scheme: "file", Path: path, RawQuery: query}).String()
}

// Write creates the database at path (which must not exist) with db's rows, as rust-teos
// would have written them one by one.
func Write(path string, db *DB) (err error) {
	conn, err := sql.Open("sqlite", URI(path, "mode=rwc"))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := conn.Close(); err == nil {
			err = cerr
		}
	}()
	conn.SetMaxOpenConns(1)
	// DBM::new turns foreign keys on, then creates the tables.
	if _, err := conn.Exec("PRAGMA foreign_keys=1;"); err != nil {
		return err
	}
	tables := Tables
	if db.V020 {
		tables = Tables[:5]
	}
	for _, stmt := range tables {
		if _, err := conn.Exec(stmt); err != nil {
			return fmt.Errorf("create: %w", err)
		}
	}
	// One transaction only makes big fixtures quick: the file's content is the same.
	tx, err := conn.Begin()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, sk := range db.Keys {
		// SecretKey::display_secret(): lower-case hex, stored as TEXT.
		if _, err := tx.Exec(insertKey, hex.EncodeToString(sk[:])); err != nil {
			return fmt.Errorf("key: %w", err)
		}
	}
	for id, u := range db.Users {
		// UserId::to_vec(): the 33-byte compressed key as a BLOB; u32s as INTEGER.
		if _, err := tx.Exec(insertUser, id[:], int64(u.AvailableSlots), int64(u.SubscriptionStart), int64(u.SubscriptionExpiry)); err != nil {
			return fmt.Errorf("user %s: %w", id, err)
		}
	}
	for _, a := range db.Appointments {
		// The user's signature is a Rust String, so TEXT (in a BLOB-affinity column).
		uuid := a.UUID()
		if _, err := tx.Exec(insertAppointment, uuid[:], a.Locator[:], a.EncryptedBlob, int64(a.ToSelfDelay),
			a.UserSignature, int64(a.StartBlock), a.UserID[:]); err != nil {
			return fmt.Errorf("appointment %s: %w", uuid, err)
		}
	}
	for _, t := range db.Trackers {
		// ConfirmationStatus::to_db_data(): (height, confirmed); bool binds as 0/1.
		if _, err := tx.Exec(insertTracker, t.UUID[:], t.DisputeTx, t.PenaltyTx, int64(t.Height), t.Confirmed); err != nil {
			return fmt.Errorf("tracker %s: %w", t.UUID, err)
		}
	}
	if db.LastBlock != nil {
		// BlockHash::to_byte_array(): internal order, as a BLOB.
		if _, err := tx.Exec(insertLastBlock, db.LastBlock[:]); err != nil {
			return fmt.Errorf("last block: %w", err)
		}
	}
	return tx.Commit()
}
