package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/pgstore"
	"github.com/teos-go/teos/internal/store/storetest"
)

func open(t *testing.T, url, network string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: network})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformancePostgres(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	storetest.Run(t, func(t *testing.T) func() store.Engine {
		url := srv.NewDatabase(t)
		return func() store.Engine { return open(t, url, "regtest") }
	})
}

func TestOpenRefuses(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	url := srv.NewDatabase(t)
	open(t, url, "regtest").Close()
	// Another network's tower.
	_, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "bitcoin"})
	if !errors.Is(err, pgstore.ErrOtherNetwork) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open for another network = %v", err)
	}
	// A newer schema.
	s := open(t, url, "regtest")
	if _, err := s.Pool().Exec(context.Background(), `UPDATE teos_schema SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if !errors.Is(err, pgstore.ErrNewerSchema) {
		t.Fatalf("Open of a newer schema = %v", err)
	}
	// Nothing listening.
	srv.Stop()
	_, err = pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"})
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open with the server down = %v", err)
	}
	t.Logf("server down: %v", err)
}
