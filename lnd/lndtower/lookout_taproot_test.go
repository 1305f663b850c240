package lndtower

import (
	"crypto/rand"
	"testing"

	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/txsort"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/lightningnetwork/lnd/channeldb"
	"github.com/lightningnetwork/lnd/fn/v2"
	"github.com/lightningnetwork/lnd/input"
	"github.com/lightningnetwork/lnd/keychain"
	"github.com/lightningnetwork/lnd/lntypes"
	"github.com/lightningnetwork/lnd/lnwallet"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtpolicy"
)

// taprootChanType is the channel type lnd's funding code gives a taproot channel: tweakless,
// anchors with zero-fee HTLC transactions, simple taproot, and for the production type the
// final-scripts bit.
func taprootChanType(bt blob.Type) channeldb.ChannelType {
	ct := channeldb.SingleFunderTweaklessBit | channeldb.AnchorOutputsBit | channeldb.ZeroHtlcTxFeeBit |
		channeldb.SimpleTaprootFeatureBit
	if bt.IsTaprootFinalChannel() {
		ct |= channeldb.TaprootFinalBit
	}
	return ct
}

// newTaprootBreach plays lnd for a taproot channel: the cheater's commitment is made by
// lnwallet.CreateCommitTx from keys of lnwallet.DeriveCommitmentKeys, the breach retribution
// carries the sign descriptors lnwallet.NewBreachRetribution gives a taproot channel, and the
// justice transaction is built, signed and sealed as wtclient's backup task does (inputs'
// CraftInputScript, ParseRawSig, NewJusticeKit, blob.Encrypt).
func newTaprootBreach(t *testing.T, bt blob.Type) *breachCase {
	t.Helper()
	chanType := taprootChanType(bt)
	desc := func(sk *btcec.PrivateKey) keychain.KeyDescriptor { return keychain.KeyDescriptor{PubKey: sk.PubKey()} }
	// The victim (the tower's client) is "local"; the cheater broadcasts its own revoked state.
	ourRevBase, ourPayBase := key(t), key(t)
	local := channeldb.ChannelConfig{
		CommitmentParams:    channeldb.CommitmentParams{DustLimit: 354, CsvDelay: csvDelay},
		RevocationBasePoint: desc(ourRevBase), PaymentBasePoint: desc(ourPayBase),
		DelayBasePoint: desc(key(t)), HtlcBasePoint: desc(key(t)), MultiSigKey: desc(key(t)),
	}
	remote := channeldb.ChannelConfig{
		CommitmentParams:    channeldb.CommitmentParams{DustLimit: 354, CsvDelay: csvDelay},
		RevocationBasePoint: desc(key(t)), PaymentBasePoint: desc(key(t)),
		DelayBasePoint: desc(key(t)), HtlcBasePoint: desc(key(t)), MultiSigKey: desc(key(t)),
	}
	commitSecret := key(t) // the revealed per-commitment secret of the revoked state
	keyRing := lnwallet.DeriveCommitmentKeys(commitSecret.PubKey(), lntypes.Remote, chanType, &local, &remote)

	// The cheater's commitment, as lnwallet's commitment builder makes it for the remote party
	// (we opened the channel, so the cheater is not the initiator).
	const initiator = true
	const theirAmt, ourAmt = 400_000, 300_000
	var funding wire.OutPoint
	rand.Read(funding.Hash[:])
	commit, err := lnwallet.CreateCommitTx(chanType, wire.TxIn{PreviousOutPoint: funding}, keyRing,
		&remote, &local, theirAmt, ourAmt, 0, !initiator, 0, fn.None[lnwallet.CommitAuxLeaves]())
	if err != nil {
		t.Fatal(err)
	}
	lnwallet.InPlaceCommitSort(commit, make([]uint32, len(commit.TxOut)))
	if len(commit.TxOut) != 4 {
		t.Fatalf("taproot commitment has %d outputs, want to_local, to_remote and two anchors", len(commit.TxOut))
	}
	txid := commit.TxHash()

	// The breach retribution's scripts and sign descriptors (lnwallet.NewBreachRetribution).
	ourScript, _, err := lnwallet.CommitScriptToRemote(chanType, !initiator, keyRing.ToRemoteKey, 0, fn.None[txscript.TapLeaf]())
	if err != nil {
		t.Fatal(err)
	}
	theirScript, err := lnwallet.CommitScriptToSelf(chanType, !initiator, keyRing.ToLocalKey, keyRing.RevocationKey,
		csvDelay, 0, fn.None[txscript.TapLeaf]())
	if err != nil {
		t.Fatal(err)
	}
	outpoint := func(pk []byte) wire.OutPoint {
		for i, o := range commit.TxOut {
			if string(o.PkScript) == string(pk) {
				return wire.OutPoint{Hash: txid, Index: uint32(i)}
			}
		}
		t.Fatal("commitment output not found")
		return wire.OutPoint{}
	}
	toLocal, toRemote := outpoint(theirScript.PkScript()), outpoint(ourScript.PkScript())
	signDesc := func(sd input.ScriptDescriptor, path input.ScriptPath, amt int64) *input.SignDescriptor {
		ws, err := sd.WitnessScriptForPath(path)
		if err != nil {
			t.Fatal(err)
		}
		ctrl, err := sd.(input.TapscriptDescriptor).CtrlBlockForPath(path)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := ctrl.ToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return &input.SignDescriptor{
			WitnessScript: ws, Output: &wire.TxOut{PkScript: sd.PkScript(), Value: amt},
			HashType: txscript.SigHashDefault, SignMethod: input.TaprootScriptSpendSignMethod, ControlBlock: cb,
		}
	}
	ours := signDesc(ourScript, input.ScriptPathDelay, ourAmt)
	ours.KeyDesc, ours.SingleTweak = local.PaymentBasePoint, keyRing.LocalCommitKeyTweak
	theirs := signDesc(theirScript, input.ScriptPathRevocation, theirAmt)
	theirs.KeyDesc, theirs.DoubleTweak = local.RevocationBasePoint, commitSecret
	br := &lnwallet.BreachRetribution{
		BreachTxHash: txid, LocalOutpoint: toRemote, RemoteOutpoint: toLocal,
		LocalOutputSignDesc: ours, RemoteOutputSignDesc: theirs,
		KeyRing: keyRing, RemoteDelay: csvDelay, ChanType: chanType,
	}

	// wtclient's backup task: bind to the session, then craft the payload.
	policy := wtpolicy.Policy{TxPolicy: wtpolicy.TxPolicy{BlobType: bt, SweepFeeRate: 2500}, MaxUpdates: 10}
	commitType, err := bt.CommitmentType(&chanType)
	if err != nil {
		t.Fatal(err)
	}
	toLocalIn, err := commitType.ToLocalInput(br)
	if err != nil {
		t.Fatal(err)
	}
	toRemoteIn, err := commitType.ToRemoteInput(br)
	if err != nil {
		t.Fatal(err)
	}
	sweep, err := input.PayToTaprootScript(key(t).PubKey()) // lnd's wallet sweeps to P2TR
	if err != nil {
		t.Fatal(err)
	}
	var w input.TxWeightEstimator
	localWit, _ := commitType.ToLocalWitnessSize()
	remoteWit, _ := commitType.ToRemoteWitnessSize()
	w.AddWitnessInput(localWit)
	w.AddWitnessInput(remoteWit)
	w.AddP2TROutput()
	outs, err := policy.ComputeJusticeTxOuts(btcutil.Amount(theirAmt+ourAmt), w.Weight(), sweep, nil)
	if err != nil {
		t.Fatal(err)
	}
	kit, err := commitType.NewJusticeKit(sweep, br, true)
	if err != nil {
		t.Fatal(err)
	}
	justice := wire.NewMsgTx(2)
	prev := txscript.NewMultiPrevOutFetcher(nil)
	for _, in := range []input.Input{toLocalIn, toRemoteIn} {
		prev.AddPrevOut(in.OutPoint(), in.SignDesc().Output)
		justice.AddTxIn(&wire.TxIn{PreviousOutPoint: in.OutPoint(), Sequence: in.BlocksToMaturity()})
	}
	justice.TxOut = outs
	txsort.InPlaceSort(justice)
	if err := blockchain.CheckTransactionSanity(btcutil.NewTx(justice)); err != nil {
		t.Fatal(err)
	}
	hashes := txscript.NewTxSigHashes(justice, prev)
	signer := input.NewMockSigner([]*btcec.PrivateKey{ourRevBase, ourPayBase}, &chaincfg.RegressionNetParams)
	for i, tin := range justice.TxIn {
		in := toLocalIn
		if tin.PreviousOutPoint == toRemote {
			in = toRemoteIn
		}
		script, err := in.CraftInputScript(signer, justice, hashes, prev, i)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := commitType.ParseRawSig(script.Witness)
		if err != nil {
			t.Fatal(err)
		}
		if in == toLocalIn {
			kit.AddToLocalSig(sig)
		} else {
			kit.AddToRemoteSig(sig)
		}
	}
	sealed, err := blob.Encrypt(kit, blob.NewBreachKeyFromHash(&txid))
	if err != nil {
		t.Fatal(err)
	}
	return &breachCase{commit: commit, blob: sealed, expected: justice, policy: policy,
		toLocal: toLocal, toRemote: toRemote, sweep: sweep, total: theirAmt + ourAmt}
}
