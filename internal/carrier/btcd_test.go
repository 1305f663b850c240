package carrier

import (
	"testing"

	"github.com/teos-go/teos/internal/btcdtest"
)

// btcd words bitcoind's "non-BIP68-final" as "transaction's sequence locks on inputs not met":
// a penalty whose relative lock waits for its dispute's confirmation (an anchor channel's
// justice transaction), sent while the dispute is back in the mempool after a reorg, is
// refused for now, not rejected, as it is by bitcoind.
func TestSendBTCDSequenceLocksRefusedForNow(t *testing.T) {
	node := btcdtest.Start(t)
	client := node.Client(t)
	c := New(client, nil)
	b := node.NewBreachRelativeLock(t, 1)

	res, err := c.Send(t.Context(), b.Commitment)
	if err != nil || res.Status != StatusInMempool {
		t.Fatalf("Send(dispute) = %+v, %v", res, err)
	}
	res, err = c.Send(t.Context(), b.Penalty)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusRefusedForNow || res.Code != CodeVerifyRejected {
		t.Fatalf("Send(penalty, dispute unconfirmed) = %+v, want refused for now (-26)", res)
	}

	// Once the dispute is confirmed, the same penalty is accepted.
	node.Generate(t, 1)
	c.ClearCache()
	if res, err = c.Send(t.Context(), b.Penalty); err != nil || res.Status != StatusInMempool {
		t.Fatalf("Send(penalty, dispute confirmed) = %+v, %v", res, err)
	}
}
