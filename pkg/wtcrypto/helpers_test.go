package wtcrypto_test

import (
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// hashFromInternal builds a chainhash.Hash from internal-order hex (no reversal).
func hashFromInternal(t testing.TB, s string) chainhash.Hash {
	t.Helper()
	h, err := chainhash.NewHash(mustHex(t, s))
	if err != nil {
		t.Fatalf("bad hash %q: %v", s, err)
	}
	return *h
}

func mustUserID(t testing.TB, s string) teos.UserID {
	t.Helper()
	u, err := teos.ParseUserID(mustHex(t, s))
	if err != nil {
		t.Fatalf("bad user id %q: %v", s, err)
	}
	return u
}

func mustPrivKey(t testing.TB, s string) *btcec.PrivateKey {
	t.Helper()
	sk, _ := btcec.PrivKeyFromBytes(mustHex(t, s))
	return sk
}
