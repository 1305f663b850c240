package pgstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/wire"
	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/pkg/teos"
)

// Late appointments on instances that lag the leader. An instance checks its own locator cache
// for an add's dispute, but a follower sees a block up to a poll after the leader, and the
// leader's look-up of that block does not see an add committed after it: such an acknowledged
// appointment had no hand-over until the follower's next poll queued it (QueueMissed), and
// none at all if the follower died first. So the leader publishes the transactions of its
// recent blocks (recent_txs) before it looks a block up, and every add transaction queues, in
// the same transaction, the hand-over of an appointment whose dispute is published there.
//
// An advisory lock orders the two: adds hold it shared (from their transaction's first
// statement to their commit), and the publishing transaction takes it exclusively before it
// commits. An add that held it before waits for nothing but is seen by the look-up that
// follows the publication; an add that takes it after waited for the publication's commit and
// sees the published rows.

// migrationRecentTxs (version 4 -> 5) adds the leader's recent blocks' transactions.
const migrationRecentTxs = `
	CREATE TABLE recent_txs (
		locator bytea NOT NULL,
		block bytea NOT NULL,
		height bigint NOT NULL,
		tx bytea NOT NULL);
	CREATE INDEX recent_txs_locator ON recent_txs (locator);
	CREATE INDEX recent_txs_height ON recent_txs (height);`

// minedLockKey is the advisory lock between adds and the publication of a block ("teosmine").
const minedLockKey int64 = 0x74656f736d696e65

// addsLockSQL is the first statement of every add transaction (upsertbatch.go).
const addsLockSQL = `SELECT pg_advisory_xact_lock_shared($1)`

// lockHoldIdleTimeout is how long the server keeps a transaction holding the adds' lock (an
// add, or a publication past its lock) idle. Both are a few round trips with nothing slow in
// between, so a longer silence is a client gone (machine lost, network cut, process stopped):
// it held the lock, and a publication waiting behind it held every instance's new adds,
// until the session-wide idleInTxTimeout (30 s) ended it. Set LOCAL before the lock is taken,
// so that it also covers a client that vanished while it waited for the lock: the group
// commit's BEGIN sets it (commit.go), also for a registration, whose user's row an add waits
// for while holding the adds' lock, and so does every leader-only write's (leaderTx), the
// publication's and those holding users' rows.
var lockHoldIdleTimeout = 2 * time.Second

// lockHoldIdleSQL bounds the current transaction's idle time to lockHoldIdleTimeout.
func lockHoldIdleSQL() string {
	return fmt.Sprintf(`SET LOCAL idle_in_transaction_session_timeout = %d`, lockHoldIdleTimeout.Milliseconds())
}

// queueLateSQL queues, for the appointments ($1 UUIDs, $2 their locators) whose dispute is in a
// published block, the hand-over the add's own cache could not give, and notifies the leader.
const queueLateSQL = `WITH q AS (
	INSERT INTO handovers (uuid, block, dispute)
	SELECT DISTINCT ON (d.uuid) d.uuid, r.block, r.tx
	FROM unnest($1::bytea[], $2::bytea[]) AS d(uuid, locator)
	JOIN recent_txs r ON r.locator = d.locator
	ORDER BY d.uuid, r.height DESC
	ON CONFLICT (uuid) DO UPDATE SET block = EXCLUDED.block, dispute = EXCLUDED.dispute
	RETURNING uuid)
	SELECT uuid, pg_notify('` + HandOverChannel + `', '') FROM q`

// MinedTxs is the leader's block listener that publishes its recent blocks' transactions for
// the adds of every instance. It must come before the watcher among the chain monitor's
// listeners: a block is published before it is looked up.
type MinedTxs struct {
	s    *Store
	keep int64
}

// MinedTxs returns the listener keeping the transactions of the newest keep blocks (the
// watcher's locator cache's depth). Its writes are the leader's (fence.go).
func (s *Store) MinedTxs(keep int) *MinedTxs { return &MinedTxs{s: s, keep: int64(max(keep, 1))} }

// BlockConnected publishes block's transactions in place of those of any block at its height
// or above (a branch that left the chain) and of the blocks now too old.
func (m *MinedTxs) BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error {
	hash := block.BlockHash()
	rows := make([][]any, 0, len(block.Transactions))
	for _, tx := range block.Transactions {
		var buf bytes.Buffer
		buf.Grow(tx.SerializeSize())
		if err := tx.Serialize(&buf); err != nil {
			return err
		}
		loc := teos.NewLocator(tx.TxHash())
		rows = append(rows, []any{loc[:], hash[:], int64(height), buf.Bytes()})
	}
	h := int64(height)
	err := m.publish(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM recent_txs WHERE height >= $1 OR height <= $2`, h, h-m.keep); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"recent_txs"}, []string{"locator", "block", "height", "tx"}, pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return fmt.Errorf("publish the transactions of block %s: %w", hash, err)
	}
	return nil
}

// BlockDisconnected withdraws the block's transactions (and any above it), before the watcher
// drops the hand-overs queued for it: an add that found them has committed by then.
func (m *MinedTxs) BlockDisconnected(ctx context.Context, header *wire.BlockHeader, height uint32) error {
	err := m.publish(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM recent_txs WHERE height >= $1`, int64(height))
		return err
	})
	if err != nil {
		return fmt.Errorf("withdraw the transactions of block %s: %w", header.BlockHash(), err)
	}
	return nil
}

// publishLockWait bounds the publication's wait for the adds in flight. New adds, on every
// instance, queue behind it meanwhile. An add whose instance vanished mid-transaction holds
// the wait until the server ends its session, after lockHoldIdleTimeout, shorter; a longer
// wait (an add stuck otherwise) fails the block, processed again at the next poll.
var publishLockWait = 5 * time.Second

// publish runs fn in a leader-only transaction that takes the adds' lock exclusively last,
// so it commits only once every add in flight has.
func (m *MinedTxs) publish(ctx context.Context, fn func(tx pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return m.s.leaderTx(ctx, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		// No flush of its own at commit: the block's later writes (its tip, trackers) and any
		// add that read the rows flush the WAL past it; a publication lost in a crash is of a
		// block whose tip was not stored, which the next leader processes again.
		// (Its idle time is bounded from its BEGIN: leaderTx.)
		_, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL synchronous_commit = off; SET LOCAL lock_timeout = %d;
			SELECT pg_advisory_xact_lock(%d)`, publishLockWait.Milliseconds(), minedLockKey))
		if err != nil {
			return fmt.Errorf("wait for the adds in flight: %w", err)
		}
		return nil
	})
}
