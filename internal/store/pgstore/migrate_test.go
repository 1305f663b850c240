package pgstore_test

import (
	"context"
	"testing"

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
	if _, err := s.Pool().Exec(ctx, `DROP TABLE allowed_users, lnd_updates, lnd_sessions, lnd_trackers;
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
	if err := s.Pool().QueryRow(ctx, `SELECT version FROM teos_schema`).Scan(&version); err != nil || version != 2 {
		t.Fatalf("schema version = %d, %v; want 2", version, err)
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
