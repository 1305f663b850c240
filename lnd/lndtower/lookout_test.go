package lndtower

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/btcutil/txsort"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
	"github.com/lightningnetwork/lnd/input"
	"github.com/lightningnetwork/lnd/lnwallet"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/watchtower/blob"
	"github.com/lightningnetwork/lnd/watchtower/wtdb"
	"github.com/lightningnetwork/lnd/watchtower/wtpolicy"
	bolt "go.etcd.io/bbolt"

	"github.com/teos-go/teos/internal/store"
	"github.com/teos-go/teos/internal/store/damagetest"
	"github.com/teos-go/teos/pkg/teos"
)

// breacher records what the lookout hands over.
type breacher struct {
	ids      []teos.UUID
	disputes []*wire.MsgTx
	txs      []*wire.MsgTx
}

func (b *breacher) HandleBreach(_ context.Context, id teos.UUID, dispute, penalty *wire.MsgTx) (*store.Tracker, error) {
	b.ids = append(b.ids, id)
	b.disputes = append(b.disputes, dispute)
	b.txs = append(b.txs, penalty)
	var d, p bytes.Buffer
	if err := dispute.Serialize(&d); err != nil {
		return nil, err
	}
	if err := penalty.Serialize(&p); err != nil {
		return nil, err
	}
	return &store.Tracker{UUID: id, DisputeTx: d.Bytes(), PenaltyTx: p.Bytes()}, nil
}

const csvDelay = 144

func key(t *testing.T) *btcec.PrivateKey {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// breachCase is a revoked commitment with a to_local and a to_remote output, the client's
// encrypted justice kit for it, and the justice transaction (without witnesses) lnd's client
// signed for: what lnd's tower must broadcast.
type breachCase struct {
	commit   *wire.MsgTx
	blob     []byte
	expected *wire.MsgTx
	policy   wtpolicy.Policy
	// The revoked to_local and the victim's to_remote output, the sweep script and the
	// commitment value they hold.
	toLocal, toRemote wire.OutPoint
	sweep             []byte
	total             int64
}

// newBreachFor builds a breach for any kit type lnd's tower serves.
func newBreachFor(t *testing.T, bt blob.Type) *breachCase {
	t.Helper()
	if bt.IsTaprootChannel() {
		return newTaprootBreach(t, bt)
	}
	return newBreach(t, bt)
}

// newBreach plays lnd's client: it builds the commitment's scripts with lnd's input package,
// the justice transaction under the session policy, signs it and seals the kit.
func newBreach(t *testing.T, bt blob.Type) *breachCase {
	t.Helper()
	commitType, err := bt.CommitmentType(nil)
	if err != nil {
		t.Fatal(err)
	}
	revSK, toLocalSK, toRemoteSK := key(t), key(t), key(t)
	toLocalScript, err := input.CommitScriptToSelf(csvDelay, toLocalSK.PubKey(), revSK.PubKey())
	if err != nil {
		t.Fatal(err)
	}
	toLocalPk, err := input.WitnessScriptHash(toLocalScript)
	if err != nil {
		t.Fatal(err)
	}
	var toRemotePk, toRemoteSignScript []byte
	var toRemoteSeq uint32
	if bt.IsAnchorChannel() {
		toRemoteSeq = 1
		if toRemoteSignScript, err = input.CommitScriptToRemoteConfirmed(toRemoteSK.PubKey()); err != nil {
			t.Fatal(err)
		}
		if toRemotePk, err = input.WitnessScriptHash(toRemoteSignScript); err != nil {
			t.Fatal(err)
		}
	} else {
		if toRemotePk, err = input.CommitScriptUnencumbered(toRemoteSK.PubKey()); err != nil {
			t.Fatal(err)
		}
		toRemoteSignScript = toRemotePk
	}
	const localAmt, remoteAmt = 400_000, 300_000
	commit := wire.NewMsgTx(2)
	var funding wire.OutPoint
	rand.Read(funding.Hash[:])
	commit.AddTxIn(wire.NewTxIn(&funding, nil, nil))
	commit.AddTxOut(wire.NewTxOut(localAmt, toLocalPk))
	commit.AddTxOut(wire.NewTxOut(remoteAmt, toRemotePk))
	txid := commit.TxHash()

	sweep, err := input.WitnessScriptHash([]byte{txscript.OP_TRUE}) // any P2WSH
	if err != nil {
		t.Fatal(err)
	}
	policy := wtpolicy.Policy{TxPolicy: wtpolicy.TxPolicy{BlobType: bt, SweepFeeRate: 2500}, MaxUpdates: 10}
	kit, err := commitType.NewJusticeKit(sweep, &lnwallet.BreachRetribution{
		RemoteDelay: csvDelay,
		KeyRing: &lnwallet.CommitmentKeyRing{
			ToLocalKey: toLocalSK.PubKey(), ToRemoteKey: toRemoteSK.PubKey(), RevocationKey: revSK.PubKey(),
		},
	}, true)
	if err != nil {
		t.Fatal(err)
	}

	// The justice transaction as lnd's client computes it for the session's policy.
	var w input.TxWeightEstimator
	w.AddP2WSHOutput()
	localWit, _ := commitType.ToLocalWitnessSize()
	remoteWit, _ := commitType.ToRemoteWitnessSize()
	w.AddWitnessInput(localWit)
	w.AddWitnessInput(remoteWit)
	justice := wire.NewMsgTx(2)
	justice.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Hash: txid, Index: 0}})
	justice.AddTxIn(&wire.TxIn{PreviousOutPoint: wire.OutPoint{Hash: txid, Index: 1}, Sequence: toRemoteSeq})
	outs, err := policy.ComputeJusticeTxOuts(localAmt+remoteAmt, w.Weight(), sweep, nil)
	if err != nil {
		t.Fatal(err)
	}
	justice.TxOut = outs
	txsort.InPlaceSort(justice)
	prev := txscript.NewMultiPrevOutFetcher(map[wire.OutPoint]*wire.TxOut{
		{Hash: txid, Index: 0}: commit.TxOut[0], {Hash: txid, Index: 1}: commit.TxOut[1],
	})
	hashes := txscript.NewTxSigHashes(justice, prev)
	sign := func(op uint32, script []byte, amt int64, sk *btcec.PrivateKey) lnwire.Sig {
		for i, in := range justice.TxIn {
			if in.PreviousOutPoint.Index == op {
				h, err := txscript.CalcWitnessSigHash(script, hashes, txscript.SigHashAll, justice, i, amt)
				if err != nil {
					t.Fatal(err)
				}
				sig, err := lnwire.NewSigFromSignature(ecdsa.Sign(sk, h))
				if err != nil {
					t.Fatal(err)
				}
				return sig
			}
		}
		t.Fatal("input not found")
		return lnwire.Sig{}
	}
	kit.AddToLocalSig(sign(0, toLocalScript, localAmt, revSK))
	kit.AddToRemoteSig(sign(1, toRemoteSignScript, remoteAmt, toRemoteSK))

	sealed, err := blob.Encrypt(kit, blob.NewBreachKeyFromHash(&txid))
	if err != nil {
		t.Fatal(err)
	}
	return &breachCase{commit: commit, blob: sealed, expected: justice, policy: policy,
		toLocal: wire.OutPoint{Hash: txid, Index: 0}, toRemote: wire.OutPoint{Hash: txid, Index: 1},
		sweep: sweep, total: localAmt + remoteAmt}
}

func addSession(t *testing.T, db *DB, p wtpolicy.Policy) wtdb.SessionID {
	t.Helper()
	id := wtdb.NewSessionIDFromPubKey(key(t).PubKey())
	if err := db.InsertSessionInfo(&wtdb.SessionInfo{ID: id, Policy: p}); err != nil {
		t.Fatal(err)
	}
	return id
}

func blockWith(txs ...*wire.MsgTx) *wire.MsgBlock {
	b := &wire.MsgBlock{}
	cb := wire.NewMsgTx(1)
	cb.AddTxIn(wire.NewTxIn(&wire.OutPoint{Index: ^uint32(0)}, []byte{1, 2}, nil))
	cb.AddTxOut(wire.NewTxOut(50, []byte{txscript.OP_TRUE}))
	b.Transactions = append([]*wire.MsgTx{cb}, txs...)
	return b
}

// kitTypes are the blob types of lnd 0.21.3's client: legacy, anchor, taproot (staging) and
// taproot-final (production taproot channels).
var kitTypes = []blob.Type{blob.TypeAltruistCommit, blob.TypeAltruistAnchorCommit,
	blob.TypeAltruistTaprootCommit, blob.TypeAltruistTaprootFinalCommit}

// For each kit type lnd's tower serves, a breach in a block gives exactly the justice
// transaction the client signed for, with witnesses that pass the script engine.
func TestLookoutJusticePerKitType(t *testing.T) {
	for _, bt := range kitTypes {
		name, _ := bt.Identifier()
		t.Run(name, func(t *testing.T) {
			db := openDB(t)
			bc := newBreachFor(t, bt)
			sid := addSession(t, db, bc.policy)
			txid := bc.commit.TxHash()
			if _, err := db.InsertStateUpdate(&wtdb.SessionStateUpdate{
				ID: sid, SeqNum: 1, Hint: blob.NewBreachHintFromHash(&txid), EncryptedBlob: bc.blob,
			}); err != nil {
				t.Fatal(err)
			}
			var got breacher
			l := NewLookout(db, &got, nil)
			if err := l.BlockConnected(context.Background(), blockWith(), 200); err != nil {
				t.Fatal(err)
			}
			if len(got.txs) != 0 {
				t.Fatal("justice for a block without the breach")
			}
			if err := l.BlockConnected(context.Background(), blockWith(bc.commit), 201); err != nil {
				t.Fatal(err)
			}
			if len(got.txs) != 1 {
				t.Fatalf("%d justice transactions, want 1", len(got.txs))
			}
			j := got.txs[0]
			if j.TxHash() != bc.expected.TxHash() {
				t.Fatalf("justice txid %s, the client signed %s", j.TxHash(), bc.expected.TxHash())
			}
			if got.disputes[0].TxHash() != txid || got.ids[0] != trackerUUID(sid, blob.NewBreachHintFromHash(&txid)) {
				t.Fatal("wrong dispute or tracker id handed over")
			}
			checkJustice(t, bc, j)
		})
	}
}

// checkJustice checks that j sweeps exactly the breach's to_local and to_remote outputs into
// one output paying the session's sweep script (altruist policy: all but the fee), and that
// every input passes btcd's script engine (taproot sighashes need all prevouts).
func checkJustice(t *testing.T, bc *breachCase, j *wire.MsgTx) {
	t.Helper()
	txid := bc.commit.TxHash()
	prevs := make(map[wire.OutPoint]*wire.TxOut, len(bc.commit.TxOut))
	for i, o := range bc.commit.TxOut {
		prevs[wire.OutPoint{Hash: txid, Index: uint32(i)}] = o
	}
	prev := txscript.NewMultiPrevOutFetcher(prevs)
	if len(j.TxIn) != 2 {
		t.Fatalf("justice spends %d inputs, want 2", len(j.TxIn))
	}
	spent := map[wire.OutPoint]bool{}
	for _, in := range j.TxIn {
		spent[in.PreviousOutPoint] = true
	}
	if !spent[bc.toLocal] || !spent[bc.toRemote] {
		t.Fatalf("justice spends %v, want to_local %v and to_remote %v", spent, bc.toLocal, bc.toRemote)
	}
	hashes := txscript.NewTxSigHashes(j, prev)
	for i, in := range j.TxIn {
		out := prev.FetchPrevOutput(in.PreviousOutPoint)
		vm, err := txscript.NewEngine(out.PkScript, j, i, txscript.StandardVerifyFlags, nil, hashes, out.Value, prev)
		if err != nil {
			t.Fatal(err)
		}
		if err := vm.Execute(); err != nil {
			t.Fatalf("input %d does not verify: %v", i, err)
		}
	}
	if len(j.TxOut) != 1 || !bytes.Equal(j.TxOut[0].PkScript, bc.sweep) {
		t.Fatalf("justice pays %d outputs, not only the sweep script", len(j.TxOut))
	}
	if fee := bc.total - j.TxOut[0].Value; fee <= 0 || j.TxOut[0].Value != bc.expected.TxOut[0].Value {
		t.Fatalf("justice pays %d (fee %d), the policy gives %d", j.TxOut[0].Value, fee, bc.expected.TxOut[0].Value)
	}
}

// A kit that does not decrypt (or decrypts to something unusable) is skipped, not retried
// forever and not a panic; other breaches in the block are still answered.
func TestLookoutBadKits(t *testing.T) {
	for _, bt := range kitTypes[1:] {
		name, _ := bt.Identifier()
		t.Run(name, func(t *testing.T) { testBadKits(t, bt) })
	}
}

func testBadKits(t *testing.T, bt blob.Type) {
	db := openDB(t)
	good := newBreachFor(t, bt)
	policy := good.policy
	sidGood := addSession(t, db, policy)
	put := func(commit *wire.MsgTx, sealed []byte) *wtdb.Match {
		t.Helper()
		sid := addSession(t, db, policy)
		if commit == good.commit {
			sid = sidGood
		}
		txid := commit.TxHash()
		hint := blob.NewBreachHintFromHash(&txid)
		if _, err := db.InsertStateUpdate(&wtdb.SessionStateUpdate{
			ID: sid, SeqNum: 1, Hint: hint, EncryptedBlob: sealed,
		}); err != nil {
			t.Fatal(err)
		}
		return &wtdb.Match{ID: sid, SeqNum: 1, Hint: hint, EncryptedBlob: sealed,
			SessionInfo: &wtdb.SessionInfo{ID: sid, Policy: policy}}
	}
	reseal := func(kit blob.JusticeKit, commit *wire.MsgTx) []byte {
		t.Helper()
		txid := commit.TxHash()
		sealed, err := blob.Encrypt(kit, blob.NewBreachKeyFromHash(&txid))
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}

	// Random bytes of a kit's size: they do not decrypt.
	garbage := make([]byte, len(good.blob))
	rand.Read(garbage)
	undecryptable := newBreachFor(t, bt)
	mGarbage := put(undecryptable.commit, garbage)
	put(good.commit, good.blob)

	// Another channel's kit sealed under this breach's txid: it decrypts, but its keys do not
	// give this commitment's outputs.
	foreign := newBreachFor(t, bt)
	wrongKeys := newBreachFor(t, bt)
	mKeys := put(wrongKeys.commit, reseal(decryptFor(t, foreign), wrongKeys.commit))

	// This breach's own kit with the to_local signature of another justice transaction: the
	// outputs match, the signature does not verify.
	wrongSig := newBreachFor(t, bt)
	kit := decryptFor(t, wrongSig)
	otherTx := decryptFor(t, foreign)
	kit.AddToLocalSig(toLocalSig(t, otherTx))
	mSig := put(wrongSig.commit, reseal(kit, wrongSig.commit))

	var got breacher
	l := NewLookout(db, &got, nil)
	block := blockWith(undecryptable.commit, wrongKeys.commit, wrongSig.commit, good.commit)
	if err := l.BlockConnected(context.Background(), block, 300); err != nil {
		t.Fatal(err)
	}
	if len(got.txs) != 1 || got.txs[0].TxHash() != good.expected.TxHash() {
		t.Fatalf("handed over %d transactions, want only the good breach's", len(got.txs))
	}

	// Each was refused for its own reason.
	if _, err := JusticeTx(undecryptable.commit, mGarbage); !errors.Is(err, ErrJustice) ||
		!strings.Contains(err.Error(), "decrypt") {
		t.Fatalf("garbage kit: %v", err)
	}
	if _, err := JusticeTx(wrongKeys.commit, mKeys); !errors.Is(err, ErrJustice) ||
		!strings.Contains(err.Error(), "find output") {
		t.Fatalf("kit of another channel: %v", err)
	}
	if _, err := JusticeTx(wrongSig.commit, mSig); !errors.Is(err, ErrJustice) ||
		!strings.Contains(err.Error(), "validating") {
		t.Fatalf("kit with a signature for another transaction: %v", err)
	}
	// The same kit with its own signature put back builds: the signature made the difference.
	kit.AddToLocalSig(toLocalSig(t, decryptFor(t, wrongSig)))
	if _, err := JusticeTx(wrongSig.commit, &wtdb.Match{EncryptedBlob: reseal(kit, wrongSig.commit),
		SessionInfo: mSig.SessionInfo}); err != nil {
		t.Fatalf("kit with its own signature: %v", err)
	}
	if _, err := JusticeTx(nil, nil); err == nil {
		t.Fatal("JusticeTx without input succeeded")
	}
}

// toLocalSig is the to_local signature a kit carries, read back from the witness it gives.
func toLocalSig(t *testing.T, kit blob.JusticeKit) lnwire.Sig {
	t.Helper()
	_, wit, err := kit.ToLocalOutputSpendInfo()
	if err != nil {
		t.Fatal(err)
	}
	raw := wit[0]
	var sig lnwire.Sig
	if len(raw) == 64 {
		sig, err = lnwire.NewSigFromSchnorrRawSignature(raw)
	} else {
		sig, err = lnwire.NewSigFromECDSARawSignature(raw[:len(raw)-1]) // DER + sighash byte
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func decryptFor(t *testing.T, bc *breachCase) blob.JusticeKit {
	t.Helper()
	txid := bc.commit.TxHash()
	kit, err := blob.Decrypt(blob.NewBreachKeyFromHash(&txid), bc.blob, bc.policy.BlobType)
	if err != nil {
		t.Fatal(err)
	}
	return kit
}

// The tracker records round-trip (a corrupt one is refused: internal/store's TestLndTrackerCodec).
func TestTrackerCodec(t *testing.T) {
	db := openDB(t)
	var id teos.UUID
	rand.Read(id[:])
	tr := newTracker(id)
	if err := db.PutTracker(tr); err != nil {
		t.Fatal(err)
	}
	got, err := db.Tracker(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Height != tr.Height || !got.Confirmed || !bytes.Equal(got.PenaltyTx, tr.PenaltyTx) || got.PenaltyTxID != tr.PenaltyTxID {
		t.Fatalf("tracker round trip: %+v", got)
	}
	all, err := db.Trackers()
	if err != nil || len(all) != 1 {
		t.Fatalf("trackers: %d, %v", len(all), err)
	}
	if err := db.DeleteAppointments([]teos.UUID{id}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Tracker(id); err == nil {
		t.Fatal("tracker left after delete")
	}
}

func newTracker(id teos.UUID) *store.Tracker {
	return &store.Tracker{UUID: id, DisputeTx: []byte{1, 2, 3}, PenaltyTx: []byte{4, 5}, Height: 7, Confirmed: true,
		PenaltyTxID: chainhash.Hash{9}}
}

// A breach whose tracker record is damaged (a block run again after a restart, or the dispute
// mined again after a reorg) is taken as handed over, as the watcher does for the tower's
// appointments: failing the block would make the chain monitor retry it for ever and stall
// the whole tower.
func TestLookoutDamagedTracker(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "teos.db"), &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db := NewDB(s, nil)
	bc, sid, hint := storedBreach(t, db)
	id := trackerUUID(sid, hint)
	if err := db.PutTracker(newTracker(id)); err != nil {
		t.Fatal(err)
	}
	// Damage the record in place (an unknown record version).
	if err := s.ExtUpdate("lnd", func(root *bolt.Bucket) error {
		return root.Bucket([]byte("trackers")).Put(id[:], []byte{0xee, 1, 2})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Tracker(id); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("damaged tracker read: %v, want ErrCorrupt", err)
	}
	var got breacher
	l := NewLookout(db, &got, nil)
	if err := l.BlockConnected(context.Background(), blockWith(bc.commit), 201); err != nil {
		t.Fatalf("block with the breach of a damaged tracker: %v", err)
	}
	if len(got.txs) != 0 {
		t.Fatal("justice handed over again for a breach that has a tracker")
	}
}

// A tracker lookup that reaches a damaged page (a torn header under the trackers bucket) says
// nothing about whether this breach's tracker exists: the block fails, to be retried with the
// damage in the log, where taking it as tracked would drop the justice transaction for good.
func TestLookoutDamagedTrackerPage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "teos.db")
	s, err := store.Open(path, &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db := NewDB(s, nil)
	bc, sid, hint := storedBreach(t, db)
	id := trackerUUID(sid, hint)
	// Other breaches' trackers fill leaf pages; this breach has none. Their UUIDs follow this
	// breach's, so its lookup reaches the leftmost leaf, and only the lowest of them, written
	// last so that no page freed earlier holds it, carries the marker: the page zeroed is the
	// one the lookup reaches. (With UUIDs of their own and the marker in each, the first page
	// holding it was at times a freed copy or another leaf, and the lookup found nothing.)
	marker := bytes.Repeat([]byte{0xa5}, 48)
	for i := 40; i >= 1; i-- {
		tr := newTracker(uuidAfter(id, i))
		tr.PenaltyTx = bytes.Repeat([]byte{0x5a}, 49)
		if i == 1 {
			tr.PenaltyTx = append(bytes.Clone(marker), 1)
		}
		if err := db.PutTracker(tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	damagetest.ZeroPageHolding(t, path, marker)
	s, err = store.Open(path, &store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db = NewDB(s, nil)
	if _, err := db.Tracker(id); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("tracker read through the damaged page: %v, want ErrDamaged", err)
	}
	var got breacher
	l := NewLookout(db, &got, nil)
	err = l.BlockConnected(context.Background(), blockWith(bc.commit), 201)
	if !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("block whose tracker lookup hit a damaged page = %v, want ErrDamaged", err)
	}
}

// uuidAfter is u plus n, the UUID read as a big-endian number.
func uuidAfter(u teos.UUID, n int) teos.UUID {
	carry := n
	for i := len(u) - 1; i >= 0 && carry > 0; i-- {
		sum := int(u[i]) + carry
		u[i], carry = byte(sum), sum>>8
	}
	return u
}

// storedBreach stores an anchor channel's session with the update for one breach of it.
func storedBreach(t *testing.T, db *DB) (*breachCase, wtdb.SessionID, blob.BreachHint) {
	t.Helper()
	bc := newBreachFor(t, blob.TypeAltruistAnchorCommit)
	sid := addSession(t, db, bc.policy)
	txid := bc.commit.TxHash()
	hint := blob.NewBreachHintFromHash(&txid)
	if _, err := db.InsertStateUpdate(&wtdb.SessionStateUpdate{ID: sid, SeqNum: 1, Hint: hint, EncryptedBlob: bc.blob}); err != nil {
		t.Fatal(err)
	}
	return bc, sid, hint
}
