package pgstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/teos-go/teos/internal/pgtest"
	"github.com/teos-go/teos/internal/store/pgstore"
)

// TestOpenNetworkAliases: teosd accepts btc_network "mainnet" or "main" (and "testnet" or
// "test") for one network, as rust-teos does, so instances of one tower configured with either
// name share its database; another network is still refused.
func TestOpenNetworkAliases(t *testing.T) {
	srv := pgtest.Start(t, &pgtest.Options{NoFsync: true})
	for _, tc := range []struct{ created, then string }{
		{"mainnet", "main"}, {"main", "mainnet"}, {"testnet", "test"}, {"test", "testnet"},
	} {
		url := srv.NewDatabase(t)
		open(t, url, tc.created).Close()
		s, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: tc.then})
		if err != nil {
			t.Fatalf("created on %q, opened on %q: %v", tc.created, tc.then, err)
		}
		s.Close()
		if _, err := pgstore.Open(context.Background(), url, &pgstore.Options{Network: "regtest"}); !errors.Is(err, pgstore.ErrOtherNetwork) {
			t.Fatalf("created on %q, opened on regtest: %v", tc.created, err)
		}
	}
}
