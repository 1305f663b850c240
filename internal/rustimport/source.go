package rustimport

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteMagic starts every SQLite 3 database file.
const sqliteMagic = "SQLite format 3\x00"

// checkFile looks at the file before SQLite does: a database with a journal beside it is
// being written or was left mid-transaction (SQLite would have to roll it back, which a
// read-only open cannot), and a header that does not match the file size is a truncated copy.
func checkFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: not a regular file", ErrUnknownFormat)
	}
	for _, side := range []string{"-journal", "-wal"} {
		if si, err := os.Stat(path + side); err == nil && si.Size() > 0 {
			return fmt.Errorf("%w: %s exists (rust-teos is running or did not stop cleanly: start and stop it once, then retry)",
				ErrInUse, path+side)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [100]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:16]) != sqliteMagic {
		return fmt.Errorf("%w: not an SQLite database", ErrUnknownFormat)
	}
	if h[18] == 2 || h[19] == 2 {
		return fmt.Errorf("%w: the database is in WAL mode, which rust-teos never uses", ErrUnknownFormat)
	}
	pageSize := int64(binary.BigEndian.Uint16(h[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	// The page count in the header is valid only when the change counter matches.
	if pages := int64(binary.BigEndian.Uint32(h[28:32])); binary.BigEndian.Uint32(h[24:28]) == binary.BigEndian.Uint32(h[92:96]) &&
		pages > 0 && fi.Size() < pages*pageSize {
		return fmt.Errorf("%w: truncated: %d bytes, the header says %d pages of %d bytes", ErrCorrupt, fi.Size(), pages, pageSize)
	}
	return nil
}

// openSource opens path read-only (SQLite's mode=ro: no journal, WAL or lock file is created,
// nothing is written) and starts the read transaction that the whole import reads through, so
// it sees one state of the file, holds SQLite's shared lock against writers, and fails at once
// if a writer holds the file.
func openSource(ctx context.Context, path string) (*sql.DB, *sql.Tx, error) {
	db, tx, err := openReadOnly(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	// quick_check reads every page: a corrupt file is refused before anything is written.
	var first string
	if err := tx.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&first); err != nil {
		_ = tx.Rollback()
		db.Close()
		return nil, nil, sqliteErr(err)
	}
	if first != "ok" {
		_ = tx.Rollback()
		db.Close()
		return nil, nil, fmt.Errorf("%w: %s", ErrCorrupt, oneLine(first))
	}
	return db, tx, nil
}

// openReadOnly opens path read-only and starts a read transaction, without openSource's
// whole-file check.
func openReadOnly(ctx context.Context, path string) (*sql.DB, *sql.Tx, error) {
	// A writer normally holds its lock for milliseconds; 2 s rides one out.
	uri := (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&_busy_timeout=2000"}).String()
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return nil, nil, sqliteErr(err)
	}
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		db.Close()
		return nil, nil, sqliteErr(err)
	}
	return db, tx, nil
}

// sqliteErr classifies the driver's errors into the package's.
func sqliteErr(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	msg := oneLine(se.Error())
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return fmt.Errorf("%w: locked by another process (is rust-teos still running?): %s", ErrInUse, msg)
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FORMAT:
		return fmt.Errorf("%w: %s", ErrCorrupt, msg)
	case sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%w: %s", ErrUnknownFormat, msg)
	case sqlite3.SQLITE_READONLY:
		return fmt.Errorf("%w: %s (rust-teos is running or did not stop cleanly: start and stop it once, then retry)", ErrInUse, msg)
	}
	return fmt.Errorf("sqlite: %s", msg)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// column is one line of PRAGMA table_info: what rust-teos's CREATE TABLE declares.
type column struct {
	name, typ string
	notNull   bool
	pk        int
}

// schema is rust-teos's (teos/src/dbm.rs TABLES), column by column.
var schema = map[string][]column{
	"users": {
		{"user_id", "INT", false, 1},
		{"available_slots", "INT", true, 0},
		{"subscription_start", "INT", true, 0},
		{"subscription_expiry", "INT", true, 0},
	},
	"appointments": {
		{"UUID", "INT", false, 1},
		{"locator", "INT", true, 0},
		{"encrypted_blob", "BLOB", true, 0},
		{"to_self_delay", "INT", true, 0},
		{"user_signature", "BLOB", true, 0},
		{"start_block", "INT", true, 0},
		{"user_id", "INT", true, 0},
	},
	"trackers": {
		{"UUID", "INT", false, 1},
		{"dispute_tx", "BLOB", true, 0},
		{"penalty_tx", "BLOB", true, 0},
		{"height", "INT", true, 0},
		{"confirmed", "BOOL", true, 0},
	},
	"last_known_block": {
		{"id", "INT", false, 1},
		{"block_hash", "INT", true, 0},
	},
	"keys": {
		{"id", "INTEGER", false, 1},
		{"key", "INT", true, 0},
	},
}

// otherObjects are the rest of what SQLite keeps for that schema: the unique indexes of the
// non-INTEGER primary keys, AUTOINCREMENT's table, and the locator index (newer than v0.2.0,
// so optional).
var otherObjects = map[string]bool{
	"table sqlite_sequence":                     true,
	"index sqlite_autoindex_users_1":            true,
	"index sqlite_autoindex_appointments_1":     true,
	"index sqlite_autoindex_trackers_1":         true,
	"index sqlite_autoindex_last_known_block_1": true,
	"index locators_index":                      false,
}

// checkSchema refuses anything but rust-teos's tables, columns and indexes: a newer or
// foreign schema could mean data this import would silently drop.
func checkSchema(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT type, name FROM sqlite_master")
	if err != nil {
		return sqliteErr(err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var typ, name string
		if err := rows.Scan(&typ, &name); err != nil {
			rows.Close()
			return sqliteErr(err)
		}
		obj := typ + " " + name
		if _, ok := schema[name]; !(ok && typ == "table") {
			if _, ok := otherObjects[obj]; !ok {
				rows.Close()
				return fmt.Errorf("%w: unexpected %s %q", ErrUnknownFormat, typ, name)
			}
		}
		seen[obj] = true
	}
	if err := rows.Err(); err != nil {
		return sqliteErr(err)
	}
	rows.Close()
	names := make([]string, 0, len(schema))
	for name := range schema {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !seen["table "+name] {
			return fmt.Errorf("%w: no %s table", ErrUnknownFormat, name)
		}
		cols, err := tableInfo(ctx, tx, name)
		if err != nil {
			return err
		}
		if !slices.Equal(cols, schema[name]) {
			return fmt.Errorf("%w: table %s has columns %s, rust-teos's has %s", ErrUnknownFormat, name, describe(cols), describe(schema[name]))
		}
	}
	for obj, required := range otherObjects {
		if required && !seen[obj] {
			return fmt.Errorf("%w: no %s", ErrUnknownFormat, obj)
		}
	}
	return nil
}

func tableInfo(ctx context.Context, tx *sql.Tx, table string) ([]column, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, type, "notnull", pk FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, sqliteErr(err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.pk); err != nil {
			return nil, sqliteErr(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, sqliteErr(err)
	}
	return cols, nil
}

func describe(cols []column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.name + " " + c.typ
		if c.notNull {
			parts[i] += " NOT NULL"
		}
		if c.pk != 0 {
			parts[i] += " PRIMARY KEY"
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
