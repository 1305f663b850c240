package pgstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// upsertCall is one UpsertAppointment(s) call waiting in the group commit. The committer runs
// the upserts of a whole batch together: one round trip reads every owner (locked, in key
// order, so two instances' batches cannot deadlock on them), previous appointment and tracker,
// the policies run in Go in call order, and one pipelined batch writes the accepted ones.
type upsertCall struct {
	items   []store.AppointmentUpsert
	results []store.UpsertResult
}

type apptState struct {
	a         *store.Appointment
	triggered bool
}

// runUpserts applies the calls' items in order inside tx and tells whether it wrote; if it
// did, it sets *ref to tx's, read after its writes (commit.go).
func runUpserts(ctx context.Context, tx pgx.Tx, calls []*upsertCall, ref *txRef) (wrote bool, err error) {
	var users, ids [][]byte
	seenUser := map[teos.UserID]bool{}
	seenID := map[teos.UUID]bool{}
	for _, c := range calls {
		for _, it := range c.items {
			a := it.Appointment
			if !seenUser[a.UserID] {
				seenUser[a.UserID] = true
				users = append(users, a.UserID[:])
			}
			if id := a.UUID(); !seenID[id] {
				seenID[id] = true
				ids = append(ids, id[:])
			}
		}
	}
	slices.SortFunc(users, bytes.Compare)
	owner := make(map[teos.UserID]store.UserInfo, len(users))
	prev := make(map[teos.UUID]apptState, len(ids))
	rb := &pgx.Batch{}
	rb.Queue(addsLockSQL, minedLockKey) // before queueLateSQL's snapshot (mined.go)
	rb.Queue(`SELECT user_id, available_slots, subscription_start, subscription_expiry FROM users
		WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE`, users).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id []byte
			var a, b, c int64
			if err := rows.Scan(&id, &a, &b, &c); err != nil {
				return err
			}
			owner[teos.UserID(id)] = store.UserInfo{AvailableSlots: u32(a), SubscriptionStart: u32(b), SubscriptionExpiry: u32(c)}
		}
		return rows.Err()
	})
	rb.Queue(`SELECT `+apptCols+`, EXISTS (SELECT 1 FROM trackers t WHERE t.uuid = a.uuid)
		FROM appointments a WHERE a.uuid = ANY($1)`, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var sc apptScanner
			var trig bool
			if err := rows.Scan(append(sc.dest(), &trig)...); err != nil {
				return err
			}
			a, err := sc.appt()
			if err != nil {
				return err
			}
			prev[a.UUID()] = apptState{a, trig}
		}
		return rows.Err()
	})
	if err := tx.SendBatch(ctx, rb).Close(); err != nil {
		return false, fmt.Errorf("upsert appointments: read owners: %w", err)
	}
	wb := &pgx.Batch{}
	notify := false
	var lateIDs, lateLocs [][]byte // accepted items without a hand-over from the instance's cache
	late := map[teos.UUID][]*store.UpsertResult{}
	for _, c := range calls {
		for i, it := range c.items {
			a := it.Appointment
			id := a.UUID()
			user, ok := owner[a.UserID]
			if !ok {
				c.results[i] = store.UpsertResult{Err: fmt.Errorf("upsert appointment %s: %w", id, store.ErrUserNotFound)}
				continue
			}
			p := prev[id]
			next, err := it.Policy(user, p.a, p.triggered)
			if err != nil {
				c.results[i] = store.UpsertResult{Err: err}
				continue
			}
			owner[a.UserID] = next
			prev[id] = apptState{a, p.triggered}
			wb.Queue(putUserSQL, userArgs(a.UserID, next)...)
			wb.Queue(upsertApptSQL, apptArgs(a)...)
			c.results[i] = store.UpsertResult{User: next}
			var h *store.HandOver
			if it.HandOver != nil {
				h = it.HandOver()
			}
			if h != nil {
				wb.Queue(putHandOverSQL, id[:], h.Block[:], nonNil(h.Dispute))
				notify = true
			} else {
				if late[id] == nil {
					lateIDs, lateLocs = append(lateIDs, id[:]), append(lateLocs, a.Locator[:])
				}
				late[id] = append(late[id], &c.results[i])
			}
		}
	}
	if wb.Len() == 0 {
		return false, nil // refusals only: the rows it locked are all it did
	}
	if notify {
		wb.Queue(notifyHandOverSQL) // delivered at commit (notify.go)
	}
	if len(lateIDs) > 0 {
		wb.Queue(queueLateSQL, lateIDs, lateLocs).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id []byte
				if err := rows.Scan(&id, nil); err != nil {
					return err
				}
				if len(id) != teos.UUIDLen {
					return fmt.Errorf("%w: queued hand-over of a %d-byte UUID", store.ErrCorrupt, len(id))
				}
				for _, r := range late[teos.UUID(id)] {
					r.Queued = true
				}
			}
			return rows.Err()
		})
	}
	wb.Queue(xidSQL).QueryRow(func(r pgx.Row) error { return ref.scan(r) }) // after the writes
	if err := tx.SendBatch(ctx, wb).Close(); err != nil {
		return false, fmt.Errorf("upsert appointments: %w", err)
	}
	return true, nil
}
