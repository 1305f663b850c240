package lndtower

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/btcsuite/btcd/wire"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/lookout"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// Breacher takes over a justice transaction; *responder.Responder satisfies it.
type Breacher interface {
	// HandleBreach broadcasts penalty and returns the tracker to store (nil: rejected); the
	// lookout commits a block's trackers in one transaction. Only for an id without a tracker.
	HandleBreach(ctx context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error)
}

// Lookout finds revoked commitments of lnd clients' channels in new blocks, builds the justice
// transactions from the clients' justice kits and hands them to the responder. It is a
// chain.Listener placed before that responder.
type Lookout struct {
	db   *DB
	resp Breacher
	log  *slog.Logger
	// onJustice, if set, is called for each justice transaction the responder took over.
	onJustice func()
}

// NewLookout returns a lookout over db's state updates.
func NewLookout(db *DB, resp Breacher, log *slog.Logger) *Lookout {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lookout{db: db, resp: resp, log: log.With("component", "lnd-lookout")}
}

// BlockConnected matches the breach hints of the block's transactions (SHA256(txid)[:16])
// against the stored updates. A kit that does not decrypt, or gives no valid transaction, is
// logged and skipped: that cannot change by trying again. An error (store, bitcoind) makes the
// chain monitor run the block again; the responder does not send a tracked breach twice.
func (l *Lookout) BlockConnected(ctx context.Context, block *wire.MsgBlock, height uint32) error {
	byHint := make(map[blob.BreachHint]*wire.MsgTx, len(block.Transactions))
	hints := make([]blob.BreachHint, 0, len(block.Transactions))
	for _, tx := range block.Transactions {
		txid := tx.TxHash()
		hint := blob.NewBreachHintFromHash(&txid)
		byHint[hint] = tx
		hints = append(hints, hint)
	}
	matches, err := l.db.QueryMatches(hints)
	if err != nil {
		return fmt.Errorf("lnd lookout block %d: %w", height, err)
	}
	var changes store.Changes
	justices := 0
	defer func() {
		if l.onJustice != nil {
			for range justices {
				l.onJustice()
			}
		}
	}()
	for _, m := range matches {
		commit := byHint[m.Hint]
		justice, err := JusticeTx(commit, &m)
		if err != nil {
			l.log.Warn("cannot build justice transaction", "session", m.ID, "seqnum", m.SeqNum,
				"breach_txid", commit.TxHash(), "height", height, "err", err)
			continue
		}
		id := trackerUUID(m.ID, m.Hint)
		if _, err := l.db.Tracker(id); err == nil {
			continue // already handed over when this block was run before
		} else if errors.Is(err, store.ErrDamaged) {
			// A damaged page, not a record: the tracker may not exist, and skipping would lose
			// the breach. The block fails and is retried, the damage in the log.
			return fmt.Errorf("lnd lookout block %d: %w", height, err)
		} else if errors.Is(err, store.ErrCorrupt) {
			// A damaged tracker record is still a tracker (as the watcher takes it): failing
			// here would fail the block for ever and stall the whole tower.
			l.log.Error("justice transaction has a tracker record that cannot be read; not handing it over again",
				"session", m.ID, "uuid", id, "err", err)
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("lnd lookout block %d: %w", height, err)
		}
		tracker, err := l.resp.HandleBreach(ctx, id, commit, justice)
		if err != nil {
			// Keep what this block already handed over: those were broadcast.
			if aerr := l.db.ApplyChanges(&changes); aerr != nil {
				return fmt.Errorf("lnd lookout block %d: %w", height, errors.Join(err, aerr))
			}
			return fmt.Errorf("lnd lookout block %d: %w", height, err)
		}
		if tracker == nil {
			l.log.Warn("justice transaction rejected by bitcoind", "session", m.ID, "breach_txid", commit.TxHash(),
				"justice_txid", justice.TxHash())
			continue
		}
		changes.Trackers = append(changes.Trackers, tracker)
		justices++
		l.log.Info("breach of an lnd client's channel: justice transaction handed to the responder",
			"session", m.ID, "seqnum", m.SeqNum, "breach_txid", commit.TxHash(), "justice_txid", justice.TxHash(),
			"uuid", id, "height", height)
	}
	if err := l.db.ApplyChanges(&changes); err != nil {
		justices = 0
		return fmt.Errorf("lnd lookout block %d: %w", height, err)
	}
	return nil
}

// BlockDisconnected has nothing to undo: the responder follows the justice transactions.
func (l *Lookout) BlockDisconnected(context.Context, *wire.BlockHeader, uint32) error { return nil }

// ErrJustice wraps every reason a match gives no justice transaction.
var ErrJustice = errors.New("no justice transaction")

// JusticeTx decrypts the match's justice kit with the breach key SHA256(txid||txid) and builds
// the justice transaction spending commit, under the session's policy, with lnd's
// JusticeDescriptor (which also runs the scripts). Client-supplied bytes never panic it.
func JusticeTx(commit *wire.MsgTx, m *wtdb.Match) (tx *wire.MsgTx, err error) {
	defer func() {
		if r := recover(); r != nil {
			tx, err = nil, fmt.Errorf("%w: building it panicked: %v", ErrJustice, r)
		}
	}()
	if commit == nil || m == nil || m.SessionInfo == nil {
		return nil, fmt.Errorf("%w: missing commitment or session", ErrJustice)
	}
	txid := commit.TxHash()
	kit, err := blob.Decrypt(blob.NewBreachKeyFromHash(&txid), m.EncryptedBlob, m.SessionInfo.Policy.BlobType)
	if err != nil {
		return nil, fmt.Errorf("%w: decrypt justice kit: %v", ErrJustice, err)
	}
	desc := &lookout.JusticeDescriptor{BreachedCommitTx: commit, SessionInfo: m.SessionInfo, JusticeKit: kit}
	tx, err = desc.CreateJusticeTxn()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJustice, err)
	}
	return tx, nil
}
