package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/btcdtest"
	"github.com/teos-go/teos/pkg/teos"
)

// teosClientBin builds the main module's teos-client once per test binary, next to teosd.
var teosClientBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(teosdBin), "teos-client")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/teos-client")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build teos-client: %w\n%s", err, out)
	}
	return bin, nil
})

// teosClient runs teos-client for one user against tw and decodes the JSON it prints.
func teosClient(t testing.TB, dataDir string, tw *teosd, args ...string) map[string]any {
	t.Helper()
	bin, err := teosClientBin()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, append([]string{"--datadir", dataDir, "--tower", "http://" + tw.api}, args...)...)
	btcdtest.DieWithParent(cmd, syscall.SIGKILL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("teos-client %v: %v\n%s", args, err, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("teos-client %v printed %q: %v", args, out, err)
	}
	return got
}

func serialize(t testing.TB, tx *wire.MsgTx) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// copyBlocks submits from's blocks at heights first..last to to, in order.
func copyBlocks(t testing.TB, from, to *rpcclient.Client, first, last int64) {
	t.Helper()
	for h := first; h <= last; h++ {
		hash, err := from.GetBlockHash(h)
		if err != nil {
			t.Fatalf("getblockhash %d: %v", h, err)
		}
		block, err := from.GetBlock(hash)
		if err != nil {
			t.Fatalf("getblock %s: %v", hash, err)
		}
		if err := to.SubmitBlock(btcutil.NewBlock(block), nil); err != nil {
			t.Fatalf("submitblock %d: %v", h, err)
		}
	}
	want, err := from.GetBlockHash(last)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := to.GetBestBlockHash(); err != nil || *got != *want {
		t.Fatalf("after submitting blocks %d..%d the tip is %v (%v), want %s", first, last, got, err, want)
	}
}

// spendersOf returns the transactions in rpc's mempool that spend outputs of txid only.
func spendersOf(t testing.TB, rpc *rpcclient.Client, txid chainhash.Hash) []*wire.MsgTx {
	t.Helper()
	pool, err := rpc.GetRawMempool()
	if err != nil {
		t.Fatalf("getrawmempool: %v", err)
	}
	var found []*wire.MsgTx
	for _, h := range pool {
		tx, err := rpc.GetRawTransaction(h)
		if err != nil {
			t.Fatalf("getrawtransaction %s: %v", h, err)
		}
		only := true
		for _, in := range tx.MsgTx().TxIn {
			only = only && in.PreviousOutPoint.Hash == txid
		}
		if only {
			found = append(found, tx.MsgTx())
		}
	}
	return found
}

// TestLndJusticeThroughTeosProtocol: a CLN-style teos user's appointment carries a real lnd
// revoked commitment's locator and the justice transaction the victim's own lnd built.
//
// btcd regtest keeps no chain across restarts, so the "before the breach" chain is a second
// btcd fed chain A's blocks up to the breach by submitblock:
//
//  1. chain A: alice and bob open an anchors channel and pay; bob keeps a state, which later
//     payments revoke, and force-closes with it while alice is offline; the commitment is
//     mined and confirmed; alice comes back, sees the breach and broadcasts her justice
//     transaction (left unmined); both lnd nodes stop.
//  2. chain B: A's blocks up to the breach; teosd on B; the user registers and uploads
//     (commitment txid, alice's justice transaction) with teos-client; the commitment is sent
//     and mined; teosd must broadcast exactly alice's transaction, which confirms, and
//     get_appointment says dispute_responded.
//  3. A takes B's longer chain; alice, back on A, finds the breach resolved by the
//     transaction teosd broadcast and its output in her wallet.
func TestLndJusticeThroughTeosProtocol(t *testing.T) {
	requireLnd(t)
	began := time.Now()
	step := func(format string, args ...any) {
		t.Helper()
		t.Logf("%s (%v)", fmt.Sprintf(format, args...), time.Since(began).Round(100*time.Millisecond))
	}
	nodeA := btcdtest.Start(t)
	nodeA.Generate(t, 110) // teosd needs 100 blocks; coinbases 1..10 are mature
	rpcA := nodeA.RPC(t)
	proxy, cert := tlsProxy(t, nodeA.RPCHost)
	alice := newLnd(t, "alice", proxy, cert, nodeA) // the victim
	bob := newLnd(t, "bob", proxy, cert, nodeA)     // the cheater
	startAll(t, alice, bob)
	step("lnd nodes up")

	chanPoint := openChannel(t, nodeA, &funder{node: nodeA, next: 1}, alice, bob, anchors)
	pay(t, alice, bob, 300_000)
	old := keepState(t, alice, bob)
	pay(t, alice, bob, 100_000) // revokes the kept state
	step("channel %s open, a state kept and revoked", chanPoint)

	commitTxid := cheat(t, alice, bob, old, chanPoint)
	ch, err := chainhash.NewHashFromStr(commitTxid)
	if err != nil {
		t.Fatal(err)
	}
	commitment, err := rpcA.GetRawTransaction(ch)
	if err != nil {
		t.Fatalf("the revoked commitment %s: %v", commitTxid, err)
	}
	forkHeight, err := rpcA.GetBlockCount()
	if err != nil {
		t.Fatal(err)
	}
	// lnd acts on a channel close after 3 confirmations (lnwallet.CloseConfsForCapacity).
	nodeA.Generate(t, 3)
	step("revoked commitment %s mined on chain A at %d, 3 confirmations", commitTxid, forkHeight+1)

	// The victim comes back and builds her justice transaction; it is not mined on A.
	alice.start(t)
	var justice *wire.MsgTx
	waitFor(t, 120*time.Second, "alice's justice transaction in A's mempool", func() (bool, error) {
		spenders := spendersOf(t, rpcA, *ch)
		for _, tx := range spenders {
			if justice == nil || len(tx.TxIn) > len(justice.TxIn) {
				justice = tx
			}
		}
		if len(spenders) > 1 {
			t.Logf("%d transactions spend the commitment; taking the one with most inputs", len(spenders))
		}
		return justice != nil, nil
	})
	alice.stop(t)
	justiceRaw := serialize(t, justice)
	justiceTxid := justice.TxHash()
	step("alice's lnd broadcast justice transaction %s: %d inputs, %d bytes", justiceTxid, len(justice.TxIn), len(justiceRaw))

	// Chain B: A up to the block before the breach, with teosd watching it.
	nodeB := btcdtest.Start(t)
	rpcB := nodeB.RPC(t)
	copyBlocks(t, rpcA, rpcB, 1, forkHeight)
	tw := startTeosd(t, nodeB, "")
	step("chain B at %d, teosd up", forkHeight)

	user := filepath.Join(t.TempDir(), "user")
	if reg := teosClient(t, user, tw, "--towerid", tw.id, "register"); reg["tower_id"] != tw.id {
		t.Fatalf("register printed %v", reg)
	}
	locator := teos.NewLocator(*ch).String()
	rec := teosClient(t, user, tw, "add_appointment", "--commitment-txid", commitTxid,
		"--penalty", hex.EncodeToString(justiceRaw))
	if rec["locator"] != locator {
		t.Fatalf("add_appointment printed %v, want locator %s", rec, locator)
	}
	if got := teosClient(t, user, tw, "get_appointment", locator); got["status"] != "being_watched" {
		t.Fatalf("get_appointment printed %v", got)
	}
	step("appointment %s uploaded with teos-client", locator)

	if _, err := rpcB.SendRawTransaction(commitment.MsgTx(), true); err != nil {
		t.Fatalf("sending the revoked commitment to B: %v", err)
	}
	nodeB.Generate(t, 1)
	waitFor(t, 60*time.Second, "teosd's penalty in B's mempool", func() (bool, error) {
		pool, err := rpcB.GetRawMempool()
		return len(pool) > 0, err
	})
	pool, err := rpcB.GetRawMempool()
	if err != nil {
		t.Fatal(err)
	}
	if len(pool) != 1 || *pool[0] != justiceTxid {
		t.Fatalf("B's mempool holds %v, want only alice's justice transaction %s", pool, justiceTxid)
	}
	sent, err := rpcB.GetRawTransaction(&justiceTxid)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(serialize(t, sent.MsgTx()), justiceRaw) {
		t.Fatalf("teosd broadcast %x, alice's lnd built %x", serialize(t, sent.MsgTx()), justiceRaw)
	}
	blocks := nodeB.Generate(t, 1)
	block, err := rpcB.GetBlock(blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	mined := false
	for _, tx := range block.Transactions {
		mined = mined || tx.TxHash() == justiceTxid
	}
	if !mined {
		t.Fatalf("justice transaction %s not mined in B's next block", justiceTxid)
	}
	var got map[string]any
	waitFor(t, 60*time.Second, "dispute_responded", func() (bool, error) {
		got = teosClient(t, user, tw, "get_appointment", locator)
		return got["status"] == "dispute_responded", fmt.Errorf("%v", got)
	})
	if tr, _ := got["appointment"].(map[string]any); tr["dispute_txid"] != commitTxid || tr["penalty_txid"] != justiceTxid.String() {
		t.Fatalf("get_appointment printed %v", got)
	}
	step("teosd broadcast alice's justice transaction; it confirmed on B; dispute_responded")
	tw.p.stop(t)

	// A takes B's chain (longer than A's 3-block fork), and alice comes back.
	nodeB.Generate(t, 3)
	tipB, err := rpcB.GetBlockCount()
	if err != nil {
		t.Fatal(err)
	}
	copyBlocks(t, rpcB, rpcA, forkHeight+1, tipB)
	step("chain A reorganised onto B's chain, tip %d", tipB)
	alice.start(t)
	served := fmt.Sprintf("Justice for ChannelPoint(%s) has been served", chanPoint)
	waitFor(t, 120*time.Second, "alice's lnd to find justice served", func() (bool, error) {
		return strings.Contains(alice.p.logs(), served), nil
	})
	waitFor(t, 60*time.Second, "the justice output in alice's wallet", func() (bool, error) {
		var u struct {
			Utxos []struct {
				Outpoint string `json:"outpoint"` // txid:index
			} `json:"utxos"`
		}
		if err := lncliJSON(t, alice, &u, "listunspent", "--min_confs", "1"); err != nil {
			return false, err
		}
		for _, o := range u.Utxos {
			if strings.HasPrefix(o.Outpoint, justiceTxid.String()+":") {
				return true, nil
			}
		}
		return false, fmt.Errorf("%+v", u.Utxos)
	})
	step("alice's lnd: justice served, the output of the transaction teosd broadcast is in her wallet; whole test")
}
