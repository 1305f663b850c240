package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
	bolt "go.etcd.io/bbolt"
)

const handOverRecordV1 = 1

// HandOver is a breach found when its appointment was stored: the dispute was already in a
// recent block. It waits in the queue, next to the appointment, until the chain goroutine
// hands it to the responder, so a restart cannot lose it.
type HandOver struct {
	Block   chainhash.Hash // the block holding the dispute
	Dispute []byte         // the dispute's consensus serialization
}

// QueuedHandOver is a queued HandOver with its appointment. Err is set, and the rest may be
// empty, when the record or its appointment cannot be read: the caller drops such an entry
// (Changes.HandedOver) rather than stall the queue on it.
type QueuedHandOver struct {
	UUID teos.UUID
	HandOver
	Appointment *Appointment
	Err         error
}

// encodeHandOver: v1 || block hash(32) || uvarint len || dispute.
func encodeHandOver(h *HandOver) []byte {
	b := make([]byte, 0, 1+chainhash.HashSize+binary.MaxVarintLen64+len(h.Dispute))
	b = append(b, handOverRecordV1)
	b = append(b, h.Block[:]...)
	b = binary.AppendUvarint(b, uint64(len(h.Dispute)))
	return append(b, h.Dispute...)
}

func decodeHandOver(b []byte) (HandOver, error) {
	r := reader{b: b}
	r.version(handOverRecordV1)
	var h HandOver
	copy(h.Block[:], r.fixed(chainhash.HashSize))
	h.Dispute = r.bytes()
	if err := r.finish("hand-over"); err != nil {
		return HandOver{}, err
	}
	return h, nil
}

// QueuedHandOvers returns every queued hand-over with its appointment, ordered by UUID.
func (s *Store) QueuedHandOvers() ([]QueuedHandOver, error) {
	return s.QueuedHandOversFrom(teos.UUID{}, 0)
}

// QueuedHandOversFrom returns up to limit queued hand-overs (all if limit <= 0) with their
// appointments, in UUID order starting at from and wrapping round past the last UUID, so a
// caller that resumes where it stopped serves every entry in turn.
func (s *Store) QueuedHandOversFrom(from teos.UUID, limit int) ([]QueuedHandOver, error) {
	var out []QueuedHandOver
	err := s.view(func(b *buckets) error {
		out = nil
		c := b.handOvers.Cursor()
		visit := func(k, v []byte) {
			q := QueuedHandOver{}
			if len(k) != teos.UUIDLen {
				q.Err = fmt.Errorf("%w: hand-over key is %d bytes", ErrCorrupt, len(k))
				copy(q.UUID[:], k)
				out = append(out, q)
				return
			}
			q.UUID = teos.UUID(k)
			q.HandOver, q.Err = decodeHandOver(v)
			if q.Err == nil {
				q.Appointment, q.Err = getAppointment(b, q.UUID)
				if errors.Is(q.Err, ErrNotFound) {
					q.Err = fmt.Errorf("%w: hand-over for missing appointment %s", ErrCorrupt, q.UUID)
				}
			}
			out = append(out, q)
		}
		full := func() bool { return limit > 0 && len(out) >= limit }
		// from..last, then first..from.
		for k, v := c.Seek(from[:]); k != nil && !full(); k, v = c.Next() {
			visit(k, v)
		}
		for k, v := c.First(); k != nil && !full() && bytes.Compare(k, from[:]) < 0; k, v = c.Next() {
			visit(k, v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list queued hand-overs: %w", err)
	}
	return out, nil
}

// errNothingToDrop rolls back a DropHandOvers that found nothing: no commit, no fsync.
var errNothingToDrop = errors.New("no hand-over to drop")

// DropHandOvers removes the queued hand-overs whose dispute is in block (which left the chain)
// and returns how many there were. It runs as a write transaction even when there are none, so
// it also waits for the writes in flight (see WaitWrites).
func (s *Store) DropHandOvers(block chainhash.Hash) (int, error) {
	var n int
	err := s.writes.txUpdate(func(tx *bolt.Tx) error {
		n = 0
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		var drop [][]byte
		err = b.handOvers.ForEach(func(k, v []byte) error {
			// The block hash follows the version byte; a short record is dropped too.
			if len(v) < 1+chainhash.HashSize || bytes.Equal(v[1:1+chainhash.HashSize], block[:]) {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.handOvers.Delete(k); err != nil {
				return err
			}
		}
		if n = len(drop); n == 0 {
			return errNothingToDrop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNothingToDrop) {
		return 0, fmt.Errorf("drop hand-overs of block %s: %w", block, err)
	}
	return n, nil
}

// errBarrier rolls back WaitWrites's empty transaction.
var errBarrier = errors.New("barrier")

// WaitWrites returns once every write transaction that began before the call has committed
// or rolled back: it takes bbolt's writer lock once, writing nothing. A read that follows it
// sees those writes.
func (s *Store) WaitWrites() error { return waitWrites(s.db) }

// waitWrites is WaitWrites on db. Through updateTx, it fails at once where damage left the
// writer lock held, rather than wait for it for good.
func waitWrites(db *bolt.DB) error {
	err := updateTx(db, func(*bolt.Tx) error { return errBarrier })
	if err != nil && !errors.Is(err, errBarrier) {
		return fmt.Errorf("wait for writes: %w", err)
	}
	return nil
}
