package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

const apptCols = `a.locator, a.user_id, a.encrypted_blob, a.to_self_delay, a.user_signature, a.start_block`

// scanAppt reads apptCols (nullable, for outer joins) into a; ok is false on NULLs.
func scanAppt(vals []any) (*store.Appointment, error) {
	loc, _ := vals[0].([]byte)
	uid, _ := vals[1].([]byte)
	if loc == nil && uid == nil {
		return nil, nil
	}
	blob, _ := vals[2].([]byte)
	delay, _ := vals[3].(int64)
	sig, _ := vals[4].(string)
	start, _ := vals[5].(int64)
	if len(loc) != teos.LocatorLen || len(uid) != teos.UserIDLen {
		return nil, fmt.Errorf("%w: locator %d bytes, user id %d bytes", store.ErrCorrupt, len(loc), len(uid))
	}
	a := &store.Appointment{UserID: teos.UserID(uid), UserSignature: sig, StartBlock: u32(start)}
	a.Locator = teos.Locator(loc)
	a.EncryptedBlob = blob
	if a.EncryptedBlob == nil {
		a.EncryptedBlob = []byte{}
	}
	a.ToSelfDelay = u32(delay)
	return a, nil
}

// apptScanner scans the six apptCols.
type apptScanner struct {
	loc, uid, blob []byte
	delay, start   *int64
	sig            *string
}

func (s *apptScanner) dest() []any {
	return []any{&s.loc, &s.uid, &s.blob, &s.delay, &s.sig, &s.start}
}

func (s *apptScanner) appt() (*store.Appointment, error) {
	if s.loc == nil && s.uid == nil {
		return nil, nil
	}
	vals := []any{s.loc, s.uid, s.blob, int64(0), "", int64(0)}
	if s.delay != nil {
		vals[3] = *s.delay
	}
	if s.sig != nil {
		vals[4] = *s.sig
	}
	if s.start != nil {
		vals[5] = *s.start
	}
	return scanAppt(vals)
}

const upsertApptSQL = `INSERT INTO appointments VALUES ($1, $2, $3, $4, $5, $6, $7)
	ON CONFLICT (uuid) DO UPDATE SET locator = EXCLUDED.locator, user_id = EXCLUDED.user_id,
	encrypted_blob = EXCLUDED.encrypted_blob, to_self_delay = EXCLUDED.to_self_delay,
	user_signature = EXCLUDED.user_signature, start_block = EXCLUDED.start_block`

func apptArgs(a *store.Appointment) []any {
	id := a.UUID()
	blob := a.EncryptedBlob
	if blob == nil {
		blob = []byte{}
	}
	return []any{id[:], a.Locator[:], a.UserID[:], blob, int64(a.ToSelfDelay), a.UserSignature, int64(a.StartBlock)}
}

const putHandOverSQL = `INSERT INTO handovers VALUES ($1, $2, $3)
	ON CONFLICT (uuid) DO UPDATE SET block = EXCLUDED.block, dispute = EXCLUDED.dispute`

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// UpsertAppointment inserts or replaces a's appointment and updates its owner, in the group
// commit (see store.Store.UpsertAppointment).
func (s *Store) UpsertAppointment(a *store.Appointment, fn func(user store.UserInfo, prev *store.Appointment, triggered bool) (store.UserInfo, error)) (store.UserInfo, error) {
	if a == nil {
		return store.UserInfo{}, errors.New("upsert appointment: nil appointment")
	}
	res, err := s.UpsertAppointments([]store.AppointmentUpsert{{Appointment: a, Policy: fn}})
	if err != nil {
		return store.UserInfo{}, err
	}
	return res[0].User, res[0].Err
}

// UpsertAppointments applies the items in order in one transaction of the group commit,
// together with the other calls queued meanwhile (upsertbatch.go); a refused item fails alone.
func (s *Store) UpsertAppointments(items []store.AppointmentUpsert) ([]store.UpsertResult, error) {
	for i, it := range items {
		if it.Appointment == nil || it.Policy == nil {
			return nil, fmt.Errorf("upsert appointments: item %d has no appointment or policy", i)
		}
	}
	u := &upsertCall{items: items, results: make([]store.UpsertResult, len(items))}
	if len(items) == 0 {
		return u.results, nil
	}
	if err := s.writes.writeUpserts(u); err != nil {
		return nil, err
	}
	return u.results, nil
}

// Appointment returns the appointment with that UUID, or ErrNotFound.
func (s *Store) Appointment(id teos.UUID) (*store.Appointment, error) {
	ctx, cancel := opCtx()
	defer cancel()
	var sc apptScanner
	err := s.pool.QueryRow(ctx, `SELECT `+apptCols+` FROM appointments a WHERE uuid = $1`, id[:]).Scan(sc.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("appointment %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load appointment: %w", err)
	}
	a, err := sc.appt()
	if err != nil {
		return nil, fmt.Errorf("load appointment: %w", err)
	}
	return a, nil
}

const trackerCols = `t.uuid, t.dispute_tx, t.penalty_tx, t.dispute_txid, t.penalty_txid, t.height, t.confirmed`

type trackerScanner struct {
	id, dispute, penalty, did, pid []byte
	height                         *int64
	confirmed                      *bool
}

func (s *trackerScanner) dest() []any {
	return []any{&s.id, &s.dispute, &s.penalty, &s.did, &s.pid, &s.height, &s.confirmed}
}

func (s *trackerScanner) tracker() (*store.Tracker, error) {
	if s.id == nil {
		return nil, nil
	}
	if len(s.id) != teos.UUIDLen || len(s.did) != 32 || len(s.pid) != 32 || s.height == nil || s.confirmed == nil {
		return nil, fmt.Errorf("%w: tracker row", store.ErrCorrupt)
	}
	t := &store.Tracker{UUID: teos.UUID(s.id), DisputeTx: s.dispute, PenaltyTx: s.penalty, Height: u32(*s.height), Confirmed: *s.confirmed}
	copy(t.DisputeTxID[:], s.did)
	copy(t.PenaltyTxID[:], s.pid)
	return t, nil
}

// Tracker returns the tracker with that UUID, or ErrNotFound.
func (s *Store) Tracker(id teos.UUID) (*store.Tracker, error) { return s.trackerIn("trackers", id) }

// Trackers returns every readable tracker, ordered by UUID; unreadable rows are skipped
// (TrackersChecked lists them).
func (s *Store) Trackers() ([]*store.Tracker, error) {
	out, _, err := s.trackersIn("trackers")
	return out, err
}

// TrackersChecked returns every readable tracker, ordered by UUID, and the rows it skipped.
func (s *Store) TrackersChecked() ([]*store.Tracker, []store.UnreadableTracker, error) {
	return s.trackersIn("trackers")
}

// trackerIn reads one tracker from table (trackers, or lnd_trackers for the lnd front end's).
func (s *Store) trackerIn(table string, id teos.UUID) (*store.Tracker, error) {
	ctx, cancel := opCtx()
	defer cancel()
	var sc trackerScanner
	err := s.pool.QueryRow(ctx, `SELECT `+trackerCols+` FROM `+table+` t WHERE uuid = $1`, id[:]).Scan(sc.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("tracker %s in %s: %w", id, table, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load tracker from %s: %w", table, err)
	}
	return sc.tracker()
}

// trackersIn lists table's readable trackers, ordered by UUID, and the rows it skipped.
func (s *Store) trackersIn(table string) ([]*store.Tracker, []store.UnreadableTracker, error) {
	ctx, cancel := opCtx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT `+trackerCols+` FROM `+table+` t ORDER BY uuid`)
	var (
		out []*store.Tracker
		bad []store.UnreadableTracker
		sc  trackerScanner
	)
	_, err := pgx.ForEachRow(rows, sc.dest(), func() error {
		t, err := sc.tracker()
		if err != nil {
			var id teos.UUID
			copy(id[:], sc.id)
			bad = append(bad, store.UnreadableTracker{UUID: id, Err: fmt.Errorf("tracker %s: %w", id, err)})
			return nil
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list trackers in %s: %w", table, err)
	}
	return out, bad, nil
}

const putTrackerSQL = `INSERT INTO trackers SELECT $1, $2, $3, $4, $5, $6, $7
	WHERE EXISTS (SELECT 1 FROM appointments WHERE uuid = $1)
	ON CONFLICT (uuid) DO UPDATE SET dispute_tx = EXCLUDED.dispute_tx, penalty_tx = EXCLUDED.penalty_tx,
	dispute_txid = EXCLUDED.dispute_txid, penalty_txid = EXCLUDED.penalty_txid, height = EXCLUDED.height,
	confirmed = EXCLUDED.confirmed`

func trackerArgs(t *store.Tracker) []any {
	return []any{t.UUID[:], nonNil(t.DisputeTx), nonNil(t.PenaltyTx), t.DisputeTxID[:], t.PenaltyTxID[:], int64(t.Height), t.Confirmed}
}

// PutTracker stores t; its appointment must exist, else ErrNotFound. A leader-only write
// (fence.go).
func (s *Store) PutTracker(t *store.Tracker) error {
	if t == nil {
		return errors.New("put tracker: nil tracker")
	}
	ctx, cancel := opCtx()
	defer cancel()
	var tag pgconn.CommandTag
	err := s.leaderTx(ctx, func(tx pgx.Tx) error {
		var err error
		tag, err = tx.Exec(ctx, putTrackerSQL, trackerArgs(t)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("put tracker %s: %w", t.UUID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put tracker %s: appointment %s: %w", t.UUID, t.UUID, store.ErrNotFound)
	}
	return nil
}

// byLocators is the block's match query: one indexed lookup for all its locators.
func (s *Store) byLocators(ctx context.Context, locs [][]byte, fn func(*store.Appointment, *store.Tracker) error, withTrackers bool) error {
	sql := `SELECT ` + apptCols + ` FROM appointments a WHERE a.locator = ANY($1) ORDER BY a.uuid`
	if withTrackers {
		sql = `SELECT ` + apptCols + `, ` + trackerCols + ` FROM appointments a LEFT JOIN trackers t ON t.uuid = a.uuid
			WHERE $1::bytea[] IS NULL OR a.locator = ANY($1) ORDER BY a.uuid`
	}
	rows, err := s.pool.Query(ctx, sql, locs)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var sa apptScanner
		var st trackerScanner
		dest := sa.dest()
		if withTrackers {
			dest = append(dest, st.dest()...)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		a, err := sa.appt()
		if err != nil {
			return err
		}
		t, err := st.tracker()
		if err != nil {
			return err
		}
		if err := fn(a, t); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AppointmentsByLocator returns every user's appointment for loc, ordered by UUID.
func (s *Store) AppointmentsByLocator(loc teos.Locator) ([]*store.Appointment, error) {
	ctx, cancel := opCtx()
	defer cancel()
	var out []*store.Appointment
	err := s.byLocators(ctx, [][]byte{loc[:]}, func(a *store.Appointment, _ *store.Tracker) error {
		out = append(out, a)
		return nil
	}, false)
	if err != nil {
		return nil, fmt.Errorf("appointments for locator %s: %w", loc, err)
	}
	return out, nil
}

// AppointmentsByLocators returns the appointments whose locator is in locs, grouped by
// locator, with one query (locator = ANY) on the locator index.
func (s *Store) AppointmentsByLocators(locs []teos.Locator) (map[teos.Locator][]*store.Appointment, error) {
	out := make(map[teos.Locator][]*store.Appointment)
	if len(locs) == 0 {
		return out, nil
	}
	args := make([][]byte, len(locs))
	for i := range locs {
		args[i] = locs[i][:]
	}
	ctx, cancel := opCtx()
	defer cancel()
	err := s.byLocators(ctx, args, func(a *store.Appointment, _ *store.Tracker) error {
		out[a.Locator] = append(out[a.Locator], a)
		return nil
	}, false)
	if err != nil {
		return nil, fmt.Errorf("appointments for %d locators: %w", len(locs), err)
	}
	return out, nil
}

// ForEachAppointment calls fn for every appointment (or loc's) with its tracker, ordered by
// UUID; fn's error is returned unchanged.
func (s *Store) ForEachAppointment(loc *teos.Locator, fn func(a *store.Appointment, t *store.Tracker) error) error {
	var locs [][]byte
	if loc != nil {
		locs = [][]byte{loc[:]}
	}
	var fnErr error
	ctx, cancel := opCtx()
	defer cancel()
	err := s.byLocators(ctx, locs, func(a *store.Appointment, t *store.Tracker) error {
		if err := fn(a, t); err != nil {
			fnErr = err
			return err
		}
		return nil
	}, true)
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("walk appointments: %w", err)
	}
	return nil
}

// deleteSQL deletes appointments (cascading to trackers and hand-overs) and, with $2, refunds
// each owner the slots of its deleted blobs, saturating at 2^32-1.
const deleteSQL = `WITH d AS (DELETE FROM appointments WHERE uuid = ANY($1)
		RETURNING user_id, (length(encrypted_blob) + $3 - 1) / $3 AS slots),
	r AS (SELECT user_id, sum(slots) AS slots FROM d GROUP BY user_id)
	UPDATE users u SET available_slots = LEAST(u.available_slots + r.slots, 4294967295)
	FROM r WHERE $2 AND u.user_id = r.user_id`

func deleteArgs(ids []teos.UUID, refund bool) []any {
	b := make([][]byte, len(ids))
	for i := range ids {
		b[i] = ids[i][:]
	}
	return []any{b, refund, int64(teos.EncryptedBlobMaxSize)}
}

// DeleteAppointments deletes these appointments with their trackers, refunding their owners
// if refund; UUIDs not stored are skipped. A leader-only write (fence.go).
func (s *Store) DeleteAppointments(ids []teos.UUID, refund bool) error {
	ctx, cancel := opCtx()
	defer cancel()
	err := s.leaderTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, deleteSQL, deleteArgs(ids, refund)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %d appointments: %w", len(ids), err)
	}
	return nil
}

// ApplyChanges writes c in one transaction: trackers first (skipping those whose appointment
// is gone), then completed and dropped deletions, then the handed-over queue entries. The
// UUIDs whose Basis no longer matches are found first and left alone (basisStale). A
// leader-only write (fence.go).
func (s *Store) ApplyChanges(c *store.Changes) error {
	if c == nil || c.Empty() {
		return nil
	}
	for i, t := range c.Trackers {
		if t == nil {
			return fmt.Errorf("apply changes: tracker %d is nil", i)
		}
	}
	ctx, cancel := opCtx()
	defer cancel()
	err := s.leaderTx(ctx, func(tx pgx.Tx) error {
		stale, err := basisStale(ctx, tx, c)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, t := range c.Trackers {
			if !stale[t.UUID] {
				b.Queue(putTrackerSQL, trackerArgs(t)...)
			}
		}
		if ids := store.Without(c.Completed, stale); len(ids) > 0 {
			b.Queue(deleteSQL, deleteArgs(ids, true)...)
		}
		if ids := store.Without(c.Dropped, stale); len(ids) > 0 {
			b.Queue(deleteSQL, deleteArgs(ids, false)...)
		}
		if ids := store.Without(c.Invalid, stale); len(ids) > 0 {
			b.Queue(deleteSQL, deleteArgs(ids, true)...)
		}
		if ids := store.Without(c.HandedOver, stale); len(ids) > 0 {
			b.Queue(`DELETE FROM handovers WHERE uuid = ANY($1)`, deleteArgs(ids, false)[0])
		}
		if ids := store.Without(c.Untracked, stale); len(ids) > 0 { // the appointments stay, watched again
			b.Queue(`DELETE FROM trackers WHERE uuid = ANY($1)`, deleteArgs(ids, false)[0])
		}
		if b.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("apply %d trackers, %d completed, %d dropped, %d invalid, %d handed over, %d untracked: %w",
			len(c.Trackers), len(c.Completed), len(c.Dropped), len(c.Invalid), len(c.HandedOver), len(c.Untracked), err)
	}
	return nil
}

// basisStale returns the UUIDs of c.Basis whose stored appointment no longer matches. It first
// locks the owners' rows, in user_id order as an upsert does, so an upsert for one of them
// waits for this transaction and then sees its trackers; then it locks the appointments.
func basisStale(ctx context.Context, tx pgx.Tx, c *store.Changes) (map[teos.UUID]bool, error) {
	if len(c.Basis) == 0 {
		return nil, nil
	}
	ids := make([]teos.UUID, 0, len(c.Basis))
	for id := range c.Basis {
		ids = append(ids, id)
	}
	arg := deleteArgs(ids, false)[0]
	if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE user_id IN
		(SELECT user_id FROM appointments WHERE uuid = ANY($1)) ORDER BY user_id FOR UPDATE`, arg); err != nil {
		return nil, fmt.Errorf("lock owners: %w", err)
	}
	type row struct {
		sig     string
		tracked bool
	}
	found := make(map[teos.UUID]row, len(ids))
	rows, _ := tx.Query(ctx, `SELECT a.uuid, a.user_signature, EXISTS (SELECT 1 FROM trackers t WHERE t.uuid = a.uuid)
		FROM appointments a WHERE a.uuid = ANY($1) ORDER BY a.uuid FOR UPDATE OF a`, arg)
	var (
		id []byte
		r  row
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &r.sig, &r.tracked}, func() error {
		if len(id) == teos.UUIDLen {
			found[teos.UUID(id)] = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read appointment versions: %w", err)
	}
	return c.Stale(func(id teos.UUID, _ bool) (bool, string, bool, error) {
		r, ok := found[id]
		return ok, r.sig, r.tracked, nil
	})
}

// BulkLoad writes users and appointments in one transaction (see store.Store.BulkLoad): for
// fixtures and benchmarks, no slots are charged.
func (s *Store) BulkLoad(users map[teos.UserID]store.UserInfo, appts []*store.Appointment) error {
	for i, a := range appts {
		if a == nil {
			return fmt.Errorf("bulk load: appointment %d is nil", i)
		}
	}
	// Built before the transaction: the server ends one left idle for long (idleInTxTimeout).
	b := &pgx.Batch{}
	ids := make([]teos.UserID, 0, len(users))
	for id := range users {
		ids = append(ids, id)
	}
	// In key order, so concurrent loads lock users in the same order.
	slices.SortFunc(ids, func(x, y teos.UserID) int { return bytes.Compare(x[:], y[:]) })
	for _, id := range ids {
		b.Queue(putUserSQL, userArgs(id, users[id])...)
	}
	rows := make([][]any, len(appts))
	for i, a := range appts {
		rows[i] = apptArgs(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*opTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE bulk_appointments (LIKE appointments) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"bulk_appointments"},
			[]string{"uuid", "locator", "user_id", "encrypted_blob", "to_self_delay", "user_signature", "start_block"},
			pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO appointments SELECT DISTINCT ON (uuid) * FROM bulk_appointments
			ON CONFLICT (uuid) DO UPDATE SET locator = EXCLUDED.locator, user_id = EXCLUDED.user_id,
			encrypted_blob = EXCLUDED.encrypted_blob, to_self_delay = EXCLUDED.to_self_delay,
			user_signature = EXCLUDED.user_signature, start_block = EXCLUDED.start_block`)
		return err
	})
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "23503" {
		return fmt.Errorf("bulk load: an appointment's owner: %w", store.ErrUserNotFound)
	}
	if err != nil {
		return fmt.Errorf("bulk load %d users, %d appointments: %w", len(users), len(appts), err)
	}
	return nil
}
