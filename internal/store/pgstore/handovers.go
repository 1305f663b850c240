package pgstore

import (
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/jackc/pgx/v5"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// QueuedHandOvers returns every queued hand-over with its appointment, ordered by UUID.
func (s *Store) QueuedHandOvers() ([]store.QueuedHandOver, error) {
	return s.QueuedHandOversFrom(teos.UUID{}, 0)
}

// QueuedHandOversFrom returns up to limit (all if limit <= 0) queued hand-overs in UUID order
// from from, wrapping round past the last UUID. Hand-overs queued by any instance are here:
// this is how a follower's late appointment reaches the leader.
func (s *Store) QueuedHandOversFrom(from teos.UUID, limit int) ([]store.QueuedHandOver, error) {
	var lim any // NULL: no limit
	if limit > 0 {
		lim = int64(limit)
	}
	ctx, cancel := opCtx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT h.uuid, h.block, h.dispute, `+apptCols+`
		FROM handovers h JOIN appointments a ON a.uuid = h.uuid
		ORDER BY h.uuid < $1, h.uuid LIMIT $2`, from[:], lim)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.QueuedHandOver, error) {
		var id, block, dispute []byte
		var sa apptScanner
		if err := r.Scan(append([]any{&id, &block, &dispute}, sa.dest()...)...); err != nil {
			return store.QueuedHandOver{}, err
		}
		q := store.QueuedHandOver{}
		copy(q.UUID[:], id)
		if len(id) != teos.UUIDLen || len(block) != chainhash.HashSize {
			q.Err = fmt.Errorf("%w: hand-over row", store.ErrCorrupt)
			return q, nil
		}
		copy(q.Block[:], block)
		q.Dispute = dispute
		q.Appointment, q.Err = sa.appt()
		return q, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list queued hand-overs: %w", err)
	}
	return out, nil
}

// DropHandOvers removes the queued hand-overs whose dispute is in block. It first waits for
// this instance's queued writes, as the bbolt engine's does.
func (s *Store) DropHandOvers(block chainhash.Hash) (int, error) {
	if err := s.WaitWrites(); err != nil {
		return 0, err
	}
	ctx, cancel := opCtx()
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM handovers WHERE block = $1`, block[:])
	if err != nil {
		return 0, fmt.Errorf("drop hand-overs of block %s: %w", block, err)
	}
	return int(tag.RowsAffected()), nil
}

// QueueMissed queues a hand-over, for block's dispute, for every appointment with one of the
// disputes' locators that has no tracker and no queued hand-over yet. A follower calls it for
// each block it sees, after its own writes in flight committed (WaitWrites): an appointment
// it stored before it knew the block could otherwise escape both its own locator cache and
// the leader's look-up of that block. Entries the leader already settled are skipped when
// it drains the queue. It returns how many it queued.
func (s *Store) QueueMissed(block chainhash.Hash, disputes map[teos.Locator][]byte) (int, error) {
	if len(disputes) == 0 {
		return 0, nil
	}
	locs := make([][]byte, 0, len(disputes))
	txs := make([][]byte, 0, len(disputes))
	for loc, tx := range disputes {
		locs = append(locs, loc[:])
		txs = append(txs, nonNil(tx))
	}
	ctx, cancel := opCtx()
	defer cancel()
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO handovers (uuid, block, dispute)
			SELECT a.uuid, $1, d.tx FROM unnest($2::bytea[], $3::bytea[]) AS d(locator, tx)
			JOIN appointments a ON a.locator = d.locator
			WHERE NOT EXISTS (SELECT 1 FROM trackers t WHERE t.uuid = a.uuid)
			ON CONFLICT (uuid) DO NOTHING`, block[:], locs, txs)
		if err != nil {
			return err
		}
		if n = int(tag.RowsAffected()); n > 0 {
			_, err = tx.Exec(ctx, notifyHandOverSQL) // delivered at commit (notify.go)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue missed hand-overs of block %s: %w", block, err)
	}
	return n, nil
}
