package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// schemaVersion is the schema this binary writes; migrations[i] upgrades version i to i+1
// (migrations[0] creates the schema on an empty database).
const schemaVersion = 5

// ErrNewerSchema is returned by Open when a newer teosd wrote the database.
var ErrNewerSchema = errors.New("pgstore: database schema is newer than this binary")

// ErrOtherNetwork is returned by Open when the database belongs to another network's tower.
var ErrOtherNetwork = errors.New("pgstore: database belongs to a tower on another network")

// schemaLockKey serialises schema creation and migration among instances starting together
// (pg_advisory_xact_lock; "teos" in ASCII).
const schemaLockKey = 0x74656f73

var migrations = []string{
	`CREATE TABLE users (
		user_id bytea PRIMARY KEY,
		available_slots bigint NOT NULL,
		subscription_start bigint NOT NULL,
		subscription_expiry bigint NOT NULL);
	CREATE INDEX users_expiry ON users (subscription_expiry);
	CREATE TABLE appointments (
		uuid bytea PRIMARY KEY,
		locator bytea NOT NULL,
		user_id bytea NOT NULL REFERENCES users ON DELETE CASCADE,
		encrypted_blob bytea NOT NULL,
		to_self_delay bigint NOT NULL,
		user_signature text NOT NULL,
		start_block bigint NOT NULL);
	CREATE INDEX appointments_locator ON appointments (locator);
	CREATE INDEX appointments_user ON appointments (user_id);
	CREATE TABLE trackers (
		uuid bytea PRIMARY KEY REFERENCES appointments ON DELETE CASCADE,
		dispute_tx bytea NOT NULL,
		penalty_tx bytea NOT NULL,
		dispute_txid bytea NOT NULL,
		penalty_txid bytea NOT NULL,
		height bigint NOT NULL,
		confirmed boolean NOT NULL);
	CREATE TABLE handovers (
		uuid bytea PRIMARY KEY REFERENCES appointments ON DELETE CASCADE,
		block bytea NOT NULL,
		dispute bytea NOT NULL);
	CREATE INDEX handovers_block ON handovers (block);
	CREATE TABLE tower_keys (
		seq bigserial PRIMARY KEY,
		secret bytea NOT NULL);
	CREATE TABLE last_block (
		id int PRIMARY KEY CHECK (id = 1),
		hash bytea NOT NULL,
		height bigint NOT NULL);`,
	migrationAllowlist + migrationLnd, // 1 -> 2: allowlist.go, lnd.go
	migrationLndCounts,                // 2 -> 3: lnd.go
	migrationLeaderTerm,               // 3 -> 4: fence.go
	migrationRecentTxs,                // 4 -> 5: mined.go
}

// migrateLogEvery is how often a running migration says it still runs (a variable for tests).
var migrateLogEvery = 10 * time.Second

// migrate creates or upgrades the schema in one transaction, under an advisory lock so
// instances starting together do it once, and checks the database's network. The checks are
// bounded by opTimeout; waiting for another instance's migration and the migration itself are
// not (a backfill takes as long as the data asks, seconds per million rows), only by ctx: a
// cancelled one rolls back whole, leaving the schema as it was.
func migrate(ctx context.Context, conn interface {
	Begin(context.Context) (pgx.Tx, error)
}, network string, log *slog.Logger) error {
	op, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	tx, err := conn.Begin(op)
	if err != nil {
		return err
	}
	defer func() { // a no-op once committed; bounded, as ctx may be done
		rctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	var locked bool
	if err := tx.QueryRow(op, `SELECT pg_try_advisory_xact_lock($1)`, int64(schemaLockKey)).Scan(&locked); err != nil {
		return err
	}
	if !locked {
		log.Info("waiting for another teosd instance's schema work on the shared PostgreSQL (a migration can take minutes)")
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLockKey)); err != nil {
			return err
		}
		op, cancel = context.WithTimeout(ctx, opTimeout)
		defer cancel()
	}
	if _, err := tx.Exec(op, `CREATE TABLE IF NOT EXISTS teos_schema (
		id int PRIMARY KEY CHECK (id = 1), version int NOT NULL, network text NOT NULL)`); err != nil {
		return err
	}
	var (
		version int
		dbNet   string
	)
	err = tx.QueryRow(op, `SELECT version, network FROM teos_schema`).Scan(&version, &dbNet)
	if errors.Is(err, pgx.ErrNoRows) {
		version, dbNet = 0, network
		if _, err := tx.Exec(op, `INSERT INTO teos_schema VALUES (1, 0, $1)`, network); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if version > schemaVersion {
		return fmt.Errorf("%w: database has schema version %d, binary supports %d", ErrNewerSchema, version, schemaVersion)
	}
	if network != "" && chainName(dbNet) != chainName(network) {
		return fmt.Errorf("%w: the database holds a %s tower, teosd runs on %s", ErrOtherNetwork, dbNet, network)
	}
	if version == schemaVersion {
		return tx.Commit(op)
	}
	from, start := version, time.Now()
	mctx := op // creating the tables on an empty database is quick
	if from > 0 {
		mctx = ctx
		log.Info("migrating the PostgreSQL schema; teosd starts once it is done, stopping it leaves the schema as it was",
			"from", from, "to", schemaVersion)
		stop := progress(log, from, start)
		defer stop()
	}
	for ; version < schemaVersion; version++ {
		if _, err := tx.Exec(mctx, migrations[version]); err != nil {
			return fmt.Errorf("migrate schema from version %d: %w", version, err)
		}
	}
	if _, err := tx.Exec(mctx, `UPDATE teos_schema SET version = $1`, schemaVersion); err != nil {
		return err
	}
	if err := tx.Commit(mctx); err != nil {
		return err
	}
	if from > 0 {
		log.Info("PostgreSQL schema migrated", "from", from, "to", schemaVersion, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// progress logs every migrateLogEvery that the migration still runs, until stop.
func progress(log *slog.Logger, from int, start time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(migrateLogEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				log.Info("still migrating the PostgreSQL schema", "from", from, "to", schemaVersion,
					"elapsed", time.Since(start).Round(time.Second))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// chainName folds btc_network's aliases ("mainnet" and "main", "testnet" and "test", which
// teosd accepts alike, as rust-teos does) so instances of one tower configured with either
// name share its database.
func chainName(network string) string {
	switch network {
	case "mainnet":
		return "main"
	case "testnet":
		return "test"
	}
	return network
}
