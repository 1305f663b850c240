package pgstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestWriteFreeBatchCommitsNothing: a group-commit transaction that wrote nothing (a block's
// wait for the writes, a batch made only of refusals) must not commit: taking a transaction id
// for the lost-COMMIT check made each one a commit record, and one that locked rows (a
// refusal locks its user's row) was flushed to disk, and waited for a synchronous standby,
// before the server answered (1.6 ms against 0.8 ms per refused add, fsync on, on the shared
// test machine). The WAL the call wrote is
// read back (pg_walinspect): no commit record, and none at all for a call that locked no row
// (a refusal that locked its user's row logs the lock and, unflushed, its rollback). The
// server's own background writes (a checkpoint, a standby snapshot) may fall in between, so
// each case gets a few tries, of which one must see no more than the call's.
func TestWriteFreeBatchCommitsNothing(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	s := open(t, srv.NewDatabase(t), "regtest")
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `CREATE EXTENSION pg_walinspect`); err != nil {
		t.Fatal(err)
	}
	user := newUserIn(t, s, 1)
	full := errors.New("no slots")
	refuse := func(store.UserInfo, *store.Appointment, bool) (store.UserInfo, error) { return store.UserInfo{}, full }
	appt := &store.Appointment{Appointment: teos.Appointment{Locator: teos.Locator{1}, EncryptedBlob: []byte{1}}, UserID: user}

	lsn := func(which string) string {
		var l string
		if err := s.Pool().QueryRow(ctx, `SELECT pg_current_wal_`+which+`_lsn()::text`).Scan(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	// walOf runs op and returns the WAL records it wrote ("resource manager/record type").
	walOf := func(op func() error) ([]string, error) {
		from := lsn("insert")
		if err := op(); err != nil {
			return nil, err
		}
		to := lsn("insert")
		if to == from {
			return nil, nil
		}
		// Unflushed records (a rollback's) are readable once the WAL writer flushes them, in
		// its own time. (The bound only keeps a failing test from hanging.)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var flushed bool
			if err := s.Pool().QueryRow(ctx, `SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn`, to).Scan(&flushed); err != nil {
				return nil, err
			}
			if flushed {
				break
			}
			if time.Now().After(deadline) {
				return nil, errors.New("the WAL is not flushed")
			}
		}
		rows, _ := s.Pool().Query(ctx, `SELECT resource_manager || '/' || record_type
			FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)`, from, to)
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	for _, c := range []struct {
		name    string
		locking bool // locks its user's row
		run     func() error
	}{
		{"wait for writes", false, s.WaitWrites},
		{"refused registration", true, func() error {
			_, err := s.UpdateUser(user, func(store.UserInfo, bool) (store.UserInfo, error) { return store.UserInfo{}, full })
			if !errors.Is(err, full) {
				return err
			}
			return nil
		}},
		{"refused add", true, func() error {
			res, err := s.UpsertAppointments([]store.AppointmentUpsert{{Appointment: appt, Policy: refuse}})
			if err == nil && !errors.Is(res[0].Err, full) {
				err = res[0].Err
			}
			return err
		}},
		{"add of an unknown user", false, func() error {
			a := *appt
			a.UserID = teos.UserID{9}
			res, err := s.UpsertAppointments([]store.AppointmentUpsert{{Appointment: &a, Policy: refuse}})
			if err == nil && !errors.Is(res[0].Err, store.ErrUserNotFound) {
				err = res[0].Err
			}
			return err
		}},
	} {
		var tries [][]string
		for range 5 {
			recs, err := walOf(c.run)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !slices.Contains(recs, "Transaction/COMMIT") && (c.locking || len(recs) == 0) {
				tries = nil
				break
			}
			tries = append(tries, recs)
		}
		if tries != nil {
			t.Errorf("%s wrote at each of %d tries: %v", c.name, len(tries), tries)
		}
	}
	// A batch that wrote still commits.
	if _, err := s.UpsertAppointments([]store.AppointmentUpsert{{Appointment: appt, Policy: free}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Appointment(appt.UUID()); err != nil {
		t.Fatalf("an accepted add after the refusals: %v", err)
	}
}
