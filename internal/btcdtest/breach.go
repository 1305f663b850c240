package btcdtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

const (
	coinbaseMaturity = 100
	// ToSelfDelay is the CSV delay in the commitment's to_local script.
	ToSelfDelay = 144
	breachFee   = 10_000 // sat per tx; always enough on btcd (docs/BTCD.md §4)
)

// Breach is a revoked commitment and the penalty that sweeps it, both signed and valid.
type Breach struct {
	// Commitment spends one of the miner's mature coinbases into a P2WPKH output (0) and a
	// BOLT-3-style to_local P2WSH output (1).
	Commitment *wire.MsgTx
	// Penalty spends both commitment outputs, the to_local one via the revocation branch.
	Penalty *wire.MsgTx
	// Sweep spends the penalty's only output: once it is mined, nothing of the penalty is
	// unspent, and bitcoind answers a re-send of the penalty -25, not -27.
	Sweep *wire.MsgTx
	// Conflict spends the commitment's output 0 elsewhere: once it is mined, the penalty can
	// never be (a double spend of one of its inputs).
	Conflict *wire.MsgTx
}

// NewBreach builds a breach from a coinbase no earlier call used, mining first if no such
// coinbase is mature yet. Nothing is broadcast.
func (n *Node) NewBreach(t testing.TB) *Breach {
	t.Helper()
	return n.newBreach(t, breachFee, wire.MaxTxInSequenceNum)
}

// NewBreachRelativeLock is NewBreach with a penalty whose inputs have a BIP68 relative lock of
// blocks: it is refused until the commitment has been confirmed that many blocks (as an
// anchor channel's justice transaction, whose to_remote input waits one block).
func (n *Node) NewBreachRelativeLock(t testing.TB, blocks uint16) *Breach {
	t.Helper()
	return n.newBreach(t, breachFee, uint32(blocks))
}

// NewBreachPenaltyFee is NewBreach with a penalty paying penaltyFee sat. A free penalty is
// refused by btcd for "insufficient priority" until the commitment's outputs are a few blocks
// old (its priority grows with their age).
func (n *Node) NewBreachPenaltyFee(t testing.TB, penaltyFee int64) *Breach {
	t.Helper()
	return n.newBreach(t, penaltyFee, wire.MaxTxInSequenceNum)
}

func (n *Node) newBreach(t testing.TB, penaltyFee int64, penaltySequence uint32) *Breach {
	t.Helper()
	n.breachMu.Lock()
	defer n.breachMu.Unlock()

	coinbase, vout := n.nextMatureCoinbase(t)
	n.ensureSegwit(t)

	remoteKey, revocationKey, delayedKey, sweepKey := newKey(t), newKey(t), newKey(t), newKey(t)
	toLocal := toLocalScript(t, revocationKey.PubKey(), ToSelfDelay, delayedKey.PubKey())
	toLocalPkScript := p2wsh(t, toLocal)
	remotePkScript := p2wpkh(t, remoteKey.PubKey())

	prevOut := coinbase.TxOut[vout]
	commitment := wire.NewMsgTx(2)
	commitment.AddTxIn(wire.NewTxIn(&wire.OutPoint{Hash: coinbase.TxHash(), Index: vout}, nil, nil))
	spendable := prevOut.Value - breachFee
	commitment.AddTxOut(wire.NewTxOut(spendable/2, remotePkScript))
	commitment.AddTxOut(wire.NewTxOut(spendable-spendable/2, toLocalPkScript))
	sigScript, err := txscript.SignatureScript(commitment, 0, prevOut.PkScript, txscript.SigHashAll, n.MinerKey, true)
	if err != nil {
		t.Fatalf("btcdtest: signing commitment: %v", err)
	}
	commitment.TxIn[0].SignatureScript = sigScript
	verify(t, "commitment", commitment, map[wire.OutPoint]*wire.TxOut{commitment.TxIn[0].PreviousOutPoint: prevOut})

	commitTxid := commitment.TxHash()
	penalty := wire.NewMsgTx(2)
	prevOuts := make(map[wire.OutPoint]*wire.TxOut, 2)
	for i, out := range commitment.TxOut {
		op := wire.OutPoint{Hash: commitTxid, Index: uint32(i)}
		in := wire.NewTxIn(&op, nil, nil)
		in.Sequence = penaltySequence
		penalty.AddTxIn(in)
		prevOuts[op] = out
	}
	penalty.AddTxOut(wire.NewTxOut(spendable-penaltyFee, p2wpkh(t, sweepKey.PubKey())))
	sigHashes := txscript.NewTxSigHashes(penalty, txscript.NewMultiPrevOutFetcher(prevOuts))
	penalty.TxIn[0].Witness, err = txscript.WitnessSignature(penalty, sigHashes, 0,
		commitment.TxOut[0].Value, remotePkScript, txscript.SigHashAll, remoteKey, true)
	if err != nil {
		t.Fatalf("btcdtest: signing penalty input 0: %v", err)
	}
	revocationSig, err := txscript.RawTxInWitnessSignature(penalty, sigHashes, 1,
		commitment.TxOut[1].Value, toLocal, txscript.SigHashAll, revocationKey)
	if err != nil {
		t.Fatalf("btcdtest: signing penalty input 1: %v", err)
	}
	penalty.TxIn[1].Witness = wire.TxWitness{revocationSig, {1}, toLocal} // 1 selects OP_IF
	verify(t, "penalty", penalty, prevOuts)

	sweepPkScript := p2wpkh(t, sweepKey.PubKey())
	penaltyOut := wire.OutPoint{Hash: penalty.TxHash(), Index: 0}
	sweep := wire.NewMsgTx(2)
	sweep.AddTxIn(wire.NewTxIn(&penaltyOut, nil, nil))
	sweep.AddTxOut(wire.NewTxOut(penalty.TxOut[0].Value-breachFee, p2wpkh(t, newKey(t).PubKey())))
	sweepPrev := map[wire.OutPoint]*wire.TxOut{penaltyOut: penalty.TxOut[0]}
	sweep.TxIn[0].Witness, err = txscript.WitnessSignature(sweep, txscript.NewTxSigHashes(sweep, txscript.NewMultiPrevOutFetcher(sweepPrev)), 0,
		penalty.TxOut[0].Value, sweepPkScript, txscript.SigHashAll, sweepKey, true)
	if err != nil {
		t.Fatalf("btcdtest: signing sweep: %v", err)
	}
	verify(t, "sweep", sweep, sweepPrev)

	remoteOut := wire.OutPoint{Hash: commitTxid, Index: 0}
	conflict := wire.NewMsgTx(2)
	conflict.AddTxIn(wire.NewTxIn(&remoteOut, nil, nil))
	conflict.AddTxOut(wire.NewTxOut(commitment.TxOut[0].Value-breachFee, p2wpkh(t, newKey(t).PubKey())))
	conflictPrev := map[wire.OutPoint]*wire.TxOut{remoteOut: commitment.TxOut[0]}
	conflict.TxIn[0].Witness, err = txscript.WitnessSignature(conflict, txscript.NewTxSigHashes(conflict, txscript.NewMultiPrevOutFetcher(conflictPrev)), 0,
		commitment.TxOut[0].Value, remotePkScript, txscript.SigHashAll, remoteKey, true)
	if err != nil {
		t.Fatalf("btcdtest: signing conflict: %v", err)
	}
	verify(t, "conflict", conflict, conflictPrev)

	return &Breach{Commitment: commitment, Penalty: penalty, Sweep: sweep, Conflict: conflict}
}

// nextMatureCoinbase returns the next unused coinbase paying MiningAddr and the index of that
// output, mining until it is mature. Blocks from another miner (a reorg peer) are skipped.
func (n *Node) nextMatureCoinbase(t testing.TB) (*wire.MsgTx, uint32) {
	t.Helper()
	minerScript, err := txscript.PayToAddrScript(n.MiningAddr)
	if err != nil {
		t.Fatalf("btcdtest: %v", err)
	}
	const maxSkipped = 1000
	for range maxSkipped {
		tip, err := n.rpc.GetBlockCount()
		if err != nil {
			t.Fatalf("btcdtest: getblockcount: %v", err)
		}
		// Spendable in the next block when (tip+1) - height >= maturity.
		if lacking := int64(n.nextCoinbase) + coinbaseMaturity - 1 - tip; lacking > 0 {
			n.Generate(t, uint32(lacking))
		}
		height := n.nextCoinbase
		n.nextCoinbase++
		hash, err := n.rpc.GetBlockHash(int64(height))
		if err != nil {
			t.Fatalf("btcdtest: getblockhash %d: %v", height, err)
		}
		block, err := n.rpc.GetBlock(hash)
		if err != nil {
			t.Fatalf("btcdtest: getblock %s: %v", hash, err)
		}
		coinbase := block.Transactions[0]
		for i, out := range coinbase.TxOut {
			if bytes.Equal(out.PkScript, minerScript) {
				return coinbase, uint32(i)
			}
		}
	}
	t.Fatalf("btcdtest: no coinbase paying %s in %d blocks", n.MiningAddr, maxSkipped)
	return nil, 0
}

// ensureSegwit mines until segwit is active, for a btcd older than v0.26 given through $BTCD
// (v0.24.2 activates it at regtest height 432). v0.26.2 has it from height 1.
func (n *Node) ensureSegwit(t testing.TB) {
	t.Helper()
	const maxRounds = 10
	for range maxRounds {
		raw, err := n.rpc.RawRequest("getblockchaininfo", nil)
		if err != nil {
			t.Fatalf("btcdtest: getblockchaininfo: %v", err)
		}
		var info struct {
			Softforks map[string]struct {
				Status string `json:"status"`
			} `json:"bip9_softforks"`
		}
		if err := json.Unmarshal(raw, &info); err != nil {
			t.Fatalf("btcdtest: getblockchaininfo: %v", err)
		}
		segwit, listed := info.Softforks["segwit"]
		if !listed || segwit.Status == "active" {
			return
		}
		n.Generate(t, 144) // one BIP9 window
	}
	t.Fatalf("btcdtest: segwit still inactive after %d windows", maxRounds)
}

// toLocalScript is BOLT 3's to_local witness script:
// OP_IF <revocationpub> OP_ELSE <delay> OP_CSV OP_DROP <delayedpub> OP_ENDIF OP_CHECKSIG.
func toLocalScript(t testing.TB, revocation *btcec.PublicKey, delay int64, delayed *btcec.PublicKey) []byte {
	t.Helper()
	script, err := txscript.NewScriptBuilder().
		AddOp(txscript.OP_IF).AddData(revocation.SerializeCompressed()).
		AddOp(txscript.OP_ELSE).AddInt64(delay).AddOp(txscript.OP_CHECKSEQUENCEVERIFY).AddOp(txscript.OP_DROP).
		AddData(delayed.SerializeCompressed()).
		AddOp(txscript.OP_ENDIF).AddOp(txscript.OP_CHECKSIG).
		Script()
	if err != nil {
		t.Fatalf("btcdtest: to_local script: %v", err)
	}
	return script
}

func p2wsh(t testing.TB, witnessScript []byte) []byte {
	t.Helper()
	h := sha256.Sum256(witnessScript)
	script, err := txscript.NewScriptBuilder().AddOp(txscript.OP_0).AddData(h[:]).Script()
	if err != nil {
		t.Fatalf("btcdtest: p2wsh: %v", err)
	}
	return script
}

func p2wpkh(t testing.TB, pub *btcec.PublicKey) []byte {
	t.Helper()
	script, err := txscript.NewScriptBuilder().
		AddOp(txscript.OP_0).AddData(btcutil.Hash160(pub.SerializeCompressed())).Script()
	if err != nil {
		t.Fatalf("btcdtest: p2wpkh: %v", err)
	}
	return script
}

func newKey(t testing.TB) *btcec.PrivateKey {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatalf("btcdtest: %v", err)
	}
	return k
}

// verify runs every input of tx through the script engine, so a bad signature fails here
// rather than as a puzzling rejection from the node.
func verify(t testing.TB, name string, tx *wire.MsgTx, prevOuts map[wire.OutPoint]*wire.TxOut) {
	t.Helper()
	fetcher := txscript.NewMultiPrevOutFetcher(prevOuts)
	sigHashes := txscript.NewTxSigHashes(tx, fetcher)
	for i, in := range tx.TxIn {
		prev := prevOuts[in.PreviousOutPoint]
		if prev == nil {
			t.Fatalf("btcdtest: %s input %d: unknown previous output", name, i)
		}
		vm, err := txscript.NewEngine(prev.PkScript, tx, i, txscript.StandardVerifyFlags, nil, sigHashes, prev.Value, fetcher)
		if err != nil {
			t.Fatalf("btcdtest: %s input %d: %v", name, i, err)
		}
		if err := vm.Execute(); err != nil {
			t.Fatalf("btcdtest: %s input %d does not verify: %v", name, i, err)
		}
	}
}
