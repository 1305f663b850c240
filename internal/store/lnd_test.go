package store

import (
	"bytes"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"github.com/teos-go/teos/pkg/teos"
)

// The lnd front end's tracker records round-trip, and a corrupt one is an error.
func TestLndTrackerCodec(t *testing.T) {
	id := teos.UUID{7}
	tr := &Tracker{UUID: id, DisputeTx: []byte{1, 2, 3}, PenaltyTx: []byte{4, 5}, Height: 7, Confirmed: true,
		PenaltyTxID: chainhash.Hash{9}, DisputeTxID: chainhash.Hash{8}}
	enc := encodeLndTracker(tr)
	got, err := decodeLndTracker(id, enc)
	if err != nil || got.Height != 7 || !got.Confirmed || !bytes.Equal(got.DisputeTx, tr.DisputeTx) ||
		!bytes.Equal(got.PenaltyTx, tr.PenaltyTx) || got.PenaltyTxID != tr.PenaltyTxID || got.DisputeTxID != tr.DisputeTxID {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, enc[:10], append(append([]byte{}, enc...), 0), append([]byte{9}, enc[1:]...)} {
		if _, err := decodeLndTracker(id, bad); err == nil {
			t.Errorf("decoded a corrupt tracker of %d bytes", len(bad))
		}
	}
}
