package pgstore_test

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/pkg/teos"
)

// TestMigrateFromV1: a database a version-1 teosd wrote (no allowlist, no lnd tables) is
// upgraded in place, its records kept.
func TestMigrateFromV1(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	s := open(t, url, "regtest")
	var u teos.UserID
	u[0] = 2
	if _, err := s.UpdateUser(u, func(store.UserInfo, bool) (store.UserInfo, error) {
		return store.UserInfo{AvailableSlots: 7, SubscriptionExpiry: 100}, nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Back to what version 1 created.
	if _, err := s.Pool().Exec(ctx, `DROP TABLE allowed_users, lnd_updates, lnd_sessions, lnd_trackers, leader_term, recent_txs;
		UPDATE teos_schema SET version = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllowUser(u); err == nil {
		t.Fatal("AllowUser worked on a version 1 schema")
	}
	s.Close()

	s = open(t, url, "regtest")
	defer s.Close()
	var version int
	if err := s.Pool().QueryRow(ctx, `SELECT version FROM teos_schema`).Scan(&version); err != nil || version != 5 {
		t.Fatalf("schema version = %d, %v; want 5", version, err)
	}
	if info, ok, err := s.User(u); err != nil || !ok || info.AvailableSlots != 7 {
		t.Fatalf("user after the migration = %+v, %v, %v", info, ok, err)
	}
	if changed, err := s.AllowUser(u); err != nil || !changed {
		t.Fatalf("AllowUser after the migration = %v, %v", changed, err)
	}
	if n, _, err := s.LndCounts(); err != nil || n != 0 {
		t.Fatalf("LndCounts after the migration = %d, %v", n, err)
	}
}

func lndSessionID(i int) store.LndSessionID {
	var id store.LndSessionID
	id[0] = 3
	binary.BigEndian.PutUint64(id[1:], uint64(i))
	return id
}

func lndHint(i int) store.LndHint {
	var h store.LndHint
	binary.BigEndian.PutUint64(h[:], uint64(i))
	return h
}

func lndCounts(t *testing.T, s store.LndRecords, sessions, updates int) {
	t.Helper()
	if n, u, err := s.LndCounts(); err != nil || n != sessions || u != updates {
		t.Fatalf("LndCounts = %d, %d, %v; want %d, %d", n, u, err, sessions, updates)
	}
}

// TestMigrateFromV2: a version-2 database (lnd sessions without their update counts) is
// upgraded in place, each session's count backfilled from its updates, and the counts then
// follow new updates and deletions.
func TestMigrateFromV2(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	s := open(t, url, "regtest")
	// Sessions with 0, 1, 2 and 3 updates.
	for i := range 4 {
		if err := s.LndPutSession(lndSessionID(i), []byte{byte(i)}, nil); err != nil {
			t.Fatal(err)
		}
		for j := range i {
			if err := s.LndAddUpdate(lndSessionID(i), lndHint(j), func(prev []byte) ([]byte, []byte, error) {
				return prev, []byte{byte(j)}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	// Back to what version 2 created.
	if _, err := s.Pool().Exec(ctx, `ALTER TABLE lnd_sessions DROP COLUMN n_updates; DROP TABLE leader_term, recent_txs;
		UPDATE teos_schema SET version = 2`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LndCounts(); err == nil {
		t.Fatal("LndCounts worked on a version 2 schema")
	}
	s.Close()

	s = open(t, url, "regtest")
	defer s.Close()
	var version int
	if err := s.Pool().QueryRow(ctx, `SELECT version FROM teos_schema`).Scan(&version); err != nil || version != 5 {
		t.Fatalf("schema version = %d, %v; want 5", version, err)
	}
	rows, _ := s.Pool().Query(ctx, `SELECT n_updates FROM lnd_sessions ORDER BY session_id`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || !slices.Equal(got, []int64{0, 1, 2, 3}) {
		t.Fatalf("backfilled n_updates = %v, %v; want [0 1 2 3]", got, err)
	}
	lndCounts(t, s, 4, 6)
	// A new update counts, a replaced one does not, a deleted session takes its updates along.
	for _, j := range []int{7, 7, 0} {
		if err := s.LndAddUpdate(lndSessionID(2), lndHint(j), func(prev []byte) ([]byte, []byte, error) {
			return prev, []byte{1}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	lndCounts(t, s, 4, 7)
	if found, err := s.LndDeleteSession(lndSessionID(3)); err != nil || !found {
		t.Fatalf("LndDeleteSession = %v, %v", found, err)
	}
	lndCounts(t, s, 3, 4)
}
