package bitcoind_test

import (
	"errors"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"

	"github.com/teos-go/teos/internal/bitcoind"
	"github.com/teos-go/teos/internal/btcdtest"
)

// These tests run against a real btcd (see btcdtest.Binary for when they skip). Error codes
// asserted here are btcd's; where bitcoind differs, the comment says so.

func wantRPCCode(t *testing.T, err error, want int) {
	t.Helper()
	var rpcErr *bitcoind.RPCError
	if !errors.As(err, &rpcErr) {
		t.Fatalf("error = %v, want an RPCError with code %d", err, want)
	}
	if rpcErr.Code != want {
		t.Fatalf("RPC error code = %d (%s), want %d", rpcErr.Code, rpcErr.Message, want)
	}
	if bitcoind.IsUnreachable(err) {
		t.Fatalf("RPC error %v counts as unreachable", err)
	}
}

func TestChainQueries(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t)
	c := node.Client(t)
	ctx := t.Context()
	mined := node.Generate(t, 5)
	tip := *mined[len(mined)-1]

	if name, err := c.ChainName(ctx); err != nil || name != "regtest" {
		t.Errorf("ChainName = %q, %v; want regtest", name, err)
	}
	if height, pruned, err := c.PruneHeight(ctx); err != nil || pruned || height != 0 {
		t.Errorf("PruneHeight = %d, %v, %v; want 0, false, nil", height, pruned, err)
	}
	if best, err := c.BestBlockHash(ctx); err != nil || best != tip {
		t.Errorf("BestBlockHash = %s, %v; want %s", best, err, tip)
	}
	if h, err := c.BlockHash(ctx, 0); err != nil || h != *chaincfg.RegressionNetParams.GenesisHash {
		t.Errorf("BlockHash(0) = %s, %v; want the regtest genesis", h, err)
	}
	for i, want := range mined {
		height := uint32(i + 1)
		if h, err := c.BlockHash(ctx, height); err != nil || h != *want {
			t.Errorf("BlockHash(%d) = %s, %v; want %s", height, h, err, want)
		}
		if got, err := c.BlockHeight(ctx, *want); err != nil || got != height {
			t.Errorf("BlockHeight(%s) = %d, %v; want %d", want, got, err, height)
		}
	}

	hdr, err := c.BlockHeader(ctx, tip)
	if err != nil {
		t.Fatalf("BlockHeader: %v", err)
	}
	if hdr.BlockHash() != tip || hdr.PrevBlock != *mined[len(mined)-2] {
		t.Errorf("BlockHeader(%s): hash %s prev %s", tip, hdr.BlockHash(), hdr.PrevBlock)
	}
	block, err := c.Block(ctx, tip)
	if err != nil {
		t.Fatalf("Block: %v", err)
	}
	if block.BlockHash() != tip || len(block.Transactions) == 0 {
		t.Errorf("Block(%s): hash %s, %d txs", tip, block.BlockHash(), len(block.Transactions))
	}

	t.Run("height above tip", func(t *testing.T) {
		_, err := c.BlockHash(ctx, 1000)
		wantRPCCode(t, err, bitcoind.CodeMisc) // bitcoind: CodeInvalidParameter (-8)
	})
	t.Run("unknown block", func(t *testing.T) {
		unknown := chainhash.Hash{1}
		_, err := c.BlockHeader(ctx, unknown)
		wantRPCCode(t, err, bitcoind.CodeInvalidAddressOrKey)
		_, err = c.Block(ctx, unknown)
		wantRPCCode(t, err, bitcoind.CodeInvalidAddressOrKey)
		_, err = c.BlockHeight(ctx, unknown)
		wantRPCCode(t, err, bitcoind.CodeInvalidAddressOrKey)
	})
	t.Run("stale block", func(t *testing.T) {
		// The chain monitor walks reorgs with raw headers and blocks, which must keep working
		// for a block that left the main chain.
		rpc := node.RPC(t)
		if err := rpc.InvalidateBlock(&tip); err != nil {
			t.Fatalf("invalidateblock: %v", err)
		}
		t.Cleanup(func() {
			if err := rpc.ReconsiderBlock(&tip); err != nil {
				t.Errorf("reconsiderblock: %v", err)
			}
		})
		if best, err := c.BestBlockHash(ctx); err != nil || best != *mined[len(mined)-2] {
			t.Fatalf("after invalidateblock, BestBlockHash = %s, %v", best, err)
		}
		if hdr, err := c.BlockHeader(ctx, tip); err != nil || hdr.BlockHash() != tip {
			t.Errorf("BlockHeader(stale) = %v, %v", hdr, err)
		}
		if block, err := c.Block(ctx, tip); err != nil || block.BlockHash() != tip {
			t.Errorf("Block(stale) = %v, %v", block, err)
		}
		// btcd refuses verbose queries off the main chain; bitcoind answers them.
		_, err := c.BlockHeight(ctx, tip)
		wantRPCCode(t, err, bitcoind.CodeInternalError)
	})
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t)
	c := node.Client(t)
	ctx := t.Context()
	breach := node.NewBreach(t)
	commitTxid := breach.Commitment.TxHash()

	_, _, err := c.RawTransactionInfo(ctx, commitTxid)
	wantRPCCode(t, err, bitcoind.CodeInvalidAddressOrKey)

	if txid, err := c.SendRawTransaction(ctx, breach.Commitment); err != nil || txid != commitTxid {
		t.Fatalf("SendRawTransaction(commitment) = %s, %v; want %s", txid, err, commitTxid)
	}
	if inMempool, blockHash, err := c.RawTransactionInfo(ctx, commitTxid); err != nil || !inMempool || blockHash != nil {
		t.Fatalf("RawTransactionInfo(unconfirmed) = %v, %v, %v; want true, nil, nil", inMempool, blockHash, err)
	}
	_, err = c.SendRawTransaction(ctx, breach.Commitment)
	wantRPCCode(t, err, bitcoind.CodeVerifyRejected) // already in the mempool

	mined := node.Generate(t, 1)
	inMempool, blockHash, err := c.RawTransactionInfo(ctx, commitTxid)
	if err != nil || inMempool || blockHash == nil || *blockHash != *mined[0] {
		t.Fatalf("RawTransactionInfo(confirmed) = %v, %v, %v; want false, %s", inMempool, blockHash, err, mined[0])
	}
	_, err = c.SendRawTransaction(ctx, breach.Commitment)
	wantRPCCode(t, err, bitcoind.CodeVerifyAlreadyInChain)

	penaltyTxid := breach.Penalty.TxHash()
	if txid, err := c.SendRawTransaction(ctx, breach.Penalty); err != nil || txid != penaltyTxid {
		t.Fatalf("SendRawTransaction(penalty) = %s, %v; want %s", txid, err, penaltyTxid)
	}

	t.Run("conflicting", func(t *testing.T) {
		// Spends the same outputs as the penalty in the mempool (its signatures no longer
		// match, but the conflict is found first).
		conflict := breach.Penalty.Copy()
		conflict.TxOut[0].Value -= 1000
		_, err := c.SendRawTransaction(ctx, conflict)
		wantRPCCode(t, err, bitcoind.CodeVerifyRejected)
	})
	t.Run("missing inputs", func(t *testing.T) {
		orphan := wire.NewMsgTx(2)
		orphan.AddTxIn(wire.NewTxIn(&wire.OutPoint{Hash: chainhash.Hash{7}, Index: 0}, nil, nil))
		orphan.AddTxOut(wire.NewTxOut(1000, breach.Penalty.TxOut[0].PkScript))
		_, err := c.SendRawTransaction(ctx, orphan)
		wantRPCCode(t, err, bitcoind.CodeVerifyError)
	})
	t.Run("undecodable", func(t *testing.T) {
		// No inputs: the serialisation reads as a segwit marker with a bad flag.
		_, err := c.SendRawTransaction(ctx, wire.NewMsgTx(2))
		wantRPCCode(t, err, bitcoind.CodeDeserializationError)
	})
	t.Run("unknown txid", func(t *testing.T) {
		_, _, err := c.RawTransactionInfo(ctx, chainhash.Hash{9})
		wantRPCCode(t, err, bitcoind.CodeInvalidAddressOrKey)
	})

	mined = node.Generate(t, 1)
	inMempool, blockHash, err = c.RawTransactionInfo(ctx, penaltyTxid)
	if err != nil || inMempool || blockHash == nil || *blockHash != *mined[0] {
		t.Fatalf("RawTransactionInfo(penalty) = %v, %v, %v; want false, %s", inMempool, blockHash, err, mined[0])
	}
	// With both of its outputs spent, btcd (like bitcoind) cannot tell the commitment is
	// confirmed and reports its inputs as missing.
	_, err = c.SendRawTransaction(ctx, breach.Commitment)
	wantRPCCode(t, err, bitcoind.CodeVerifyError)
}

func TestUnreachableAfterKill(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t)
	c := node.Client(t)
	ctx := t.Context()
	breach := node.NewBreach(t)
	tip, err := c.BestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node.Kill(t)

	calls := map[string]func() error{
		"ChainName":     func() error { _, err := c.ChainName(ctx); return err },
		"PruneHeight":   func() error { _, _, err := c.PruneHeight(ctx); return err },
		"BestBlockHash": func() error { _, err := c.BestBlockHash(ctx); return err },
		"BlockHash":     func() error { _, err := c.BlockHash(ctx, 1); return err },
		"BlockHeader":   func() error { _, err := c.BlockHeader(ctx, tip); return err },
		"Block":         func() error { _, err := c.Block(ctx, tip); return err },
		"BlockHeight":   func() error { _, err := c.BlockHeight(ctx, tip); return err },
		"SendRawTransaction": func() error {
			_, err := c.SendRawTransaction(ctx, breach.Commitment)
			return err
		},
		"RawTransactionInfo": func() error {
			_, _, err := c.RawTransactionInfo(ctx, breach.Commitment.TxHash())
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !bitcoind.IsUnreachable(err) {
			t.Errorf("%s on a killed node: %v, want ErrUnreachable", name, err)
		}
		// A refused connection must fail at once, not after rpcclient-style retries.
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v to fail", name, d)
		}
	}

	node.Restart(t) // regtest: a new chain, but the same port and credentials
	if best, err := c.BestBlockHash(ctx); err != nil || best != *chaincfg.RegressionNetParams.GenesisHash {
		t.Errorf("after restart, BestBlockHash = %s, %v; want genesis", best, err)
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	node := btcdtest.Start(t)
	c, err := bitcoind.New(bitcoind.Config{Host: node.RPCHost, User: node.User, Pass: "wrong", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.BestBlockHash(t.Context())
	if !errors.Is(err, bitcoind.ErrUnauthorized) || !bitcoind.IsUnreachable(err) {
		t.Fatalf("BestBlockHash with a wrong password: %v, want ErrUnauthorized and ErrUnreachable", err)
	}
}
