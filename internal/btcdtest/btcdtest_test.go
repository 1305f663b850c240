package btcdtest_test

import (
	"net"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/rpcclient"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/btcdtest"
)

func TestStartAndGenerate(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t)
	c := node.Client(t)
	ctx := t.Context()
	if name, err := c.ChainName(ctx); err != nil || name != "regtest" {
		t.Fatalf("ChainName = %q, %v; want regtest", name, err)
	}
	if node.MiningAddr.String()[0] != 'm' && node.MiningAddr.String()[0] != 'n' {
		t.Errorf("mining address %s is not a regtest P2PKH", node.MiningAddr)
	}
	mined := node.Generate(t, 3)
	if best, err := c.BestBlockHash(ctx); err != nil || best != *mined[2] {
		t.Fatalf("BestBlockHash = %s, %v; want %s", best, err, mined[2])
	}
	count, err := node.RPC(t).GetBlockCount()
	if err != nil || count != 3 {
		t.Fatalf("getblockcount = %d, %v; want 3", count, err)
	}
}

func TestBreach(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t)
	c := node.Client(t)
	ctx := t.Context()

	first, second := node.NewBreach(t), node.NewBreach(t)
	if a, b := first.Commitment.TxIn[0].PreviousOutPoint, second.Commitment.TxIn[0].PreviousOutPoint; a == b {
		t.Fatalf("two breaches spend the same coinbase %v", a)
	}
	for _, b := range []*btcdtest.Breach{first, second} {
		commitTxid := b.Commitment.TxHash()
		if len(b.Commitment.TxOut) != 2 || len(b.Penalty.TxIn) != 2 {
			t.Fatalf("commitment has %d outputs, penalty %d inputs; want 2 and 2", len(b.Commitment.TxOut), len(b.Penalty.TxIn))
		}
		for i, in := range b.Penalty.TxIn {
			if in.PreviousOutPoint != (wire.OutPoint{Hash: commitTxid, Index: uint32(i)}) {
				t.Errorf("penalty input %d spends %v, want commitment output %d", i, in.PreviousOutPoint, i)
			}
		}
		if _, err := c.SendRawTransaction(ctx, b.Commitment); err != nil {
			t.Fatalf("commitment rejected: %v", err)
		}
		// The penalty may follow its unconfirmed parent into the mempool.
		if _, err := c.SendRawTransaction(ctx, b.Penalty); err != nil {
			t.Fatalf("penalty rejected: %v", err)
		}
	}
	mined := node.Generate(t, 1)
	block, err := c.Block(ctx, *mined[0])
	if err != nil {
		t.Fatal(err)
	}
	confirmed := make(map[chainhash.Hash]int, len(block.Transactions))
	for i, tx := range block.Transactions {
		confirmed[tx.TxHash()] = i
	}
	for _, b := range []*btcdtest.Breach{first, second} {
		for _, txid := range []chainhash.Hash{b.Commitment.TxHash(), b.Penalty.TxHash()} {
			if _, ok := confirmed[txid]; !ok {
				t.Errorf("tx %s not in the next block", txid)
			}
		}
		penalty := block.Transactions[confirmed[b.Penalty.TxHash()]]
		// P2WPKH spend, then the to_local revocation branch: sig, 1, witness script.
		if len(penalty.TxIn[0].Witness) != 2 || len(penalty.TxIn[1].Witness) != 3 {
			t.Errorf("penalty witness sizes %d and %d, want 2 and 3", len(penalty.TxIn[0].Witness), len(penalty.TxIn[1].Witness))
		}
	}
}

func TestSimnetRestartKeepsChain(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t, btcdtest.Simnet())
	c := node.Client(t)
	ctx := t.Context()
	if name, err := c.ChainName(ctx); err != nil || name != "simnet" {
		t.Fatalf("ChainName = %q, %v; want simnet", name, err)
	}
	mined := node.Generate(t, 5)
	host := node.RPCHost
	node.Restart(t)
	if node.RPCHost != host {
		t.Errorf("RPC moved from %s to %s", host, node.RPCHost)
	}
	if best, err := c.BestBlockHash(ctx); err != nil || best != *mined[4] {
		t.Fatalf("after restart BestBlockHash = %s, %v; want %s", best, err, mined[4])
	}
	// The chain kept its coinbases, so a breach can spend one without mining 100 more.
	first := node.NewBreach(t)
	if _, err := c.SendRawTransaction(ctx, first.Commitment); err != nil {
		t.Fatalf("simnet commitment rejected: %v", err)
	}
}

func TestKillThenRestart(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t)
	c := node.Client(t)
	ctx := t.Context()
	node.NewBreach(t) // mines 100 blocks on a chain that the restart wipes
	node.Kill(t)
	if _, err := c.BestBlockHash(ctx); !bitcoind.IsUnreachable(err) {
		t.Fatalf("BestBlockHash on a killed node: %v, want ErrUnreachable", err)
	}
	node.Kill(t) // already dead: no-op
	node.Restart(t)
	if best, err := c.BestBlockHash(ctx); err != nil || best != *chaincfg.RegressionNetParams.GenesisHash {
		t.Fatalf("after restart BestBlockHash = %s, %v; want regtest genesis", best, err)
	}
	// The coinbase tracking restarts with the chain.
	b := node.NewBreach(t)
	if _, err := c.SendRawTransaction(ctx, b.Commitment); err != nil {
		t.Fatalf("commitment after restart rejected: %v", err)
	}
	node.Stop(t)
	node.Stop(t) // idempotent
}

func TestListen(t *testing.T) {
	t.Parallel()
	a := btcdtest.Start(t, btcdtest.Listen())
	b := btcdtest.Start(t)
	if a.P2PHost == "" || b.P2PHost != "" {
		t.Fatalf("P2PHost = %q and %q, want only the first set", a.P2PHost, b.P2PHost)
	}
	conn, err := net.DialTimeout("tcp", a.P2PHost, time.Second)
	if err != nil {
		t.Fatalf("P2P port closed: %v", err)
	}
	conn.Close()

	// A second node can sync from it, the first step of a P2P reorg.
	mined := a.Generate(t, 3)
	if err := b.RPC(t).AddNode(a.P2PHost, rpcclient.ANOneTry); err != nil {
		t.Fatalf("addnode: %v", err)
	}
	c := b.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		best, err := c.BestBlockHash(t.Context())
		if err == nil && best == *mined[2] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("second node did not sync: tip %s, %v", best, err)
		}
		<-ticker.C
	}
}
