package wtcrypto_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // the protocol fixes RIPEMD-160
)

// docs/VECTORS.md §1 and §2.
const (
	e1Tx           = "010000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff54038e830a1b4d696e656420627920416e74506f6f6c373432c2005b005e7a0ae3fabe6d6d7841cd582ead8ea5dd8e3de1173cae6fcd2a53c7362ebb7fb6f815604fe07cbe0200000000000000ac0e060005f90000ffffffff04d9476026000000001976a91411dbe48cc6b617f9c6adaf4d9ed5f625b1c7cb5988ac0000000000000000266a24aa21a9ed7248c6efddd8d99bfddd7f499f0b915bffa8253003cc934df1ff14a81301e2340000000000000000266a24b9e11b6d7054937e13f39529d6ad7e685e9dd4efa426f247d5f5a5bed58cdddb2d0fa60100000000000000002b6a2952534b424c4f434b3a054a68aa5368740e8b3e3c67bce45619c2cfd07d4d4f0936a5612d2d0034fa0a0120000000000000000000000000000000000000000000000000000000000000000000000000"
	e1TxidDisplay  = "d6ac4a5e61657c4c604dcde855a1db74ec6b3e54f32695d72c5e11c7761ea1b4"
	e1TxidInternal = "b4a11e76c7115e2cd79526f3543e6bec74dba155e8cd4d604c7c65615e4aacd6"
	e1Key          = "0b5ea4b921962850f241810c04296a8cf7b63651943886f18131fe0ee7d942ea"
	e1Blob         = "f64d730654738fdbcd9e65068be17bc1abb44e74f8977985cce48e77209cf97292c862e4eb7190aedc6c53ceddda6871a3988d1d9608e2d0dd7a1f59769e410618a7029001479ac3b9d699b11a08b0ccb04e56bfee88461d9cd3207623a4a543996dd3805323c93cd62069636305aaf159e9cca1063ad1f097c16fb3c2ebbcf09be96512c5d7c195c684569cbe8b7979870b04cada9806b7610569c66021afcc63f46dd4af75716950c4de094334cdf7d9e532820afe29d2621dd79920c7e0ecc10853517dd84ca9d699f712c229e86954c227cba1d0fc87c8d48ac05e2de8a6bc980afdfafcd7064e411c8d76065c06cc7f233e869eaff5bd8ccb5d8f0090d91a8f017355cc115863356ecf06cdda9b309096ea766d033dbd4f70a789a5b03138cfc7e2900a79bb465abf07a7ac45c41b4b30c008d4b299aad9d001cf45acd07e47cdd63c3b13d4b0788b041735225b5db1a43a2142311f695478168e31deb260702976fd70d0724ded84a7c3f89b"
	e1Tag          = "b260702976fd70d0724ded84a7c3f89b"
	e1LocatorV2    = "b4a11e76c7115e2cd79526f3543e6bec"

	e2Plaintext  = "6097cdf52309b1b2124efeed36bd34f46dc1c25ad23ac86f28380f746254f777"
	e2Secret     = "b2e984a570f6f49bc38ace178e09147b0aa296cbb7c92eb01412f7e2d07b5659"
	e2Key        = "93da6725f05542f8d8520f31343ffda8c8ff29d5c700f5ba100e9585015a706a"
	e2Ciphertext = "8f31028097a8bf12a92e088caab5cf3fcddf0d35ed2b72c24b12269373efcdea04f9d2a820adafe830c20ff132d89810"

	t1TxidDisplay  = "3e9d344993b210915c41e693df0bbf48af7a88f2f7011ad4e0264a3c69da8b33"
	t1TxidConstant = "338bda693c4a26e0d41a01f7f2887aaf48bf0bdf93e6415c9110b29349349d3e"
	t1Locator      = "338bda693c4a26e0d41a01f7f2887aaf"

	t2Tx          = "0100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd3704000000004847304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd410220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901ffffffff0200ca9a3b00000000434104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac00286bee0000000043410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac00000000"
	t2TxidDisplay = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"

	// RIPEMD160(t1Locator || s1Pubkey), computed with Python's hashlib.
	uuidT1S1 = "276079f1c99aecf97254f9a48e8dc1969494ffa0"
)

func TestE1Vector(t *testing.T) {
	txid := hashFromInternal(t, e1TxidInternal)
	if txid.String() != e1TxidDisplay {
		t.Fatalf("display form of txid_internal = %s, want %s", txid, e1TxidDisplay)
	}
	if key := sha256.Sum256(txid[:]); hex.EncodeToString(key[:]) != e1Key {
		t.Fatalf("SHA256(txid_internal) = %x, want %s", key, e1Key)
	}
	tx := mustHex(t, e1Tx)
	blob := wtcrypto.Encrypt(tx, txid)
	if got := hex.EncodeToString(blob); got != e1Blob {
		t.Fatalf("Encrypt = %s, want %s", got, e1Blob)
	}
	if len(blob) != len(tx)+16 || hex.EncodeToString(blob[len(blob)-16:]) != e1Tag {
		t.Fatalf("blob is %d bytes ending %x; want %d ending %s", len(blob), blob[len(blob)-16:], len(tx)+16, e1Tag)
	}
	plain, err := wtcrypto.Decrypt(blob, txid)
	if err != nil || !bytes.Equal(plain, tx) {
		t.Fatalf("Decrypt = %x, %v", plain, err)
	}
	if got := teos.NewLocator(txid); got.String() != e1LocatorV2 {
		t.Fatalf("locator = %s, want %s", got, e1LocatorV2)
	}

	// The v0.2 key comes from internal order: the display bytes must not reproduce the blob.
	displayBytes, _ := chainhash.NewHash(mustHex(t, e1TxidDisplay))
	if bytes.Equal(wtcrypto.Encrypt(tx, *displayBytes), blob) {
		t.Fatal("display-order key reproduced the blob")
	}
	if _, err := wtcrypto.Decrypt(blob, *displayBytes); !errors.Is(err, wtcrypto.ErrDecryptionFailed) {
		t.Fatalf("Decrypt with display-order key: %v, want ErrDecryptionFailed", err)
	}
}

func TestE2Vector(t *testing.T) {
	// python-teos hashes the 32-byte secret as given, i.e. the Hash's raw bytes.
	secret := hashFromInternal(t, e2Secret)
	if key := sha256.Sum256(secret[:]); hex.EncodeToString(key[:]) != e2Key {
		t.Fatalf("key = %x, want %s", key, e2Key)
	}
	if got := hex.EncodeToString(wtcrypto.Encrypt(mustHex(t, e2Plaintext), secret)); got != e2Ciphertext {
		t.Fatalf("Encrypt = %s, want %s", got, e2Ciphertext)
	}
	plain, err := wtcrypto.Decrypt(mustHex(t, e2Ciphertext), secret)
	if err != nil || hex.EncodeToString(plain) != e2Plaintext {
		t.Fatalf("Decrypt = %x, %v", plain, err)
	}
}

func TestDecryptTxE1(t *testing.T) {
	tx, err := wtcrypto.DecryptTx(mustHex(t, e1Blob), hashFromInternal(t, e1TxidInternal))
	if err != nil {
		t.Fatal(err)
	}
	if !tx.HasWitness() {
		t.Fatal("E1 tx decoded without its witness")
	}
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(buf.Bytes()) != e1Tx {
		t.Fatal("decoded tx does not re-serialize to E1.tx")
	}
	// TV-T1: the real txid of E1.tx and its v0.2 locator.
	txid := tx.TxHash()
	if txid.String() != t1TxidDisplay {
		t.Fatalf("txid = %s, want %s", txid, t1TxidDisplay)
	}
	if hex.EncodeToString(txid[:]) != t1TxidConstant {
		t.Fatalf("internal txid = %x, want %s", txid[:], t1TxidConstant)
	}
	if loc := teos.NewLocator(txid); loc.String() != t1Locator {
		t.Fatalf("locator = %s, want %s", loc, t1Locator)
	}
}

func TestDecryptTxT2RoundTrip(t *testing.T) {
	dispute := hashFromInternal(t, t1TxidConstant)
	raw := mustHex(t, t2Tx)
	tx, err := wtcrypto.DecryptTx(wtcrypto.Encrypt(raw, dispute), dispute)
	if err != nil {
		t.Fatal(err)
	}
	if tx.HasWitness() || tx.TxHash().String() != t2TxidDisplay {
		t.Fatalf("txid = %s (witness %v), want legacy %s", tx.TxHash(), tx.HasWitness(), t2TxidDisplay)
	}
}

func TestDecryptRejects(t *testing.T) {
	txid := hashFromInternal(t, e1TxidInternal)
	blob := mustHex(t, e1Blob)
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 1
		return b
	}
	other := hashFromInternal(t, t1TxidConstant)
	for _, tc := range []struct {
		name string
		blob []byte
		txid chainhash.Hash
	}{
		{"first byte flipped", flip(0), txid},
		{"middle byte flipped", flip(len(blob) / 2), txid},
		{"tag byte flipped", flip(len(blob) - 1), txid},
		{"truncated", blob[:len(blob)-1], txid},
		{"extended", append(bytes.Clone(blob), 0), txid},
		{"only the tag", blob[len(blob)-16:], txid},
		{"shorter than a tag", blob[:15], txid},
		{"empty", nil, txid},
		{"wrong txid", blob, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := wtcrypto.Decrypt(tc.blob, tc.txid); !errors.Is(err, wtcrypto.ErrDecryptionFailed) {
				t.Fatalf("Decrypt: %v, want ErrDecryptionFailed", err)
			}
			if _, err := wtcrypto.DecryptTx(tc.blob, tc.txid); !errors.Is(err, wtcrypto.ErrDecryptionFailed) {
				t.Fatalf("DecryptTx: %v, want ErrDecryptionFailed", err)
			}
		})
	}
}

func TestDecryptTxRejectsNonTransactions(t *testing.T) {
	txid := hashFromInternal(t, e1TxidInternal)
	tx := mustHex(t, e1Tx)
	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{"trailing byte", append(bytes.Clone(tx), 0)},
		{"trailing tx", append(bytes.Clone(tx), tx...)},
		{"truncated tx", tx[:len(tx)-1]},
		{"empty plaintext", nil},
		{"garbage", []byte("not a transaction")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blob := wtcrypto.Encrypt(tc.plain, txid)
			if _, err := wtcrypto.Decrypt(blob, txid); err != nil {
				t.Fatalf("Decrypt: %v", err) // the cipher layer is fine; only the tx is bad
			}
			if _, err := wtcrypto.DecryptTx(blob, txid); !errors.Is(err, wtcrypto.ErrInvalidTransaction) {
				t.Fatalf("DecryptTx: %v, want ErrInvalidTransaction", err)
			}
		})
	}
}

func TestNewUUID(t *testing.T) {
	loc, err := teos.LocatorFromBytes(mustHex(t, t1Locator))
	if err != nil {
		t.Fatal(err)
	}
	user := mustUserID(t, s1Pubkey)
	got := teos.NewUUID(loc, user)
	if got.String() != uuidT1S1 {
		t.Fatalf("NewUUID = %s, want %s", got, uuidT1S1)
	}
	h := ripemd160.New()
	h.Write(append(mustHex(t, t1Locator), mustHex(t, s1Pubkey)...))
	if want := h.Sum(nil); !bytes.Equal(got[:], want) {
		t.Fatalf("NewUUID = %s, RIPEMD160(locator||user_id) = %x", got, want)
	}
	if other := teos.NewUUID(loc, mustUserID(t, s3Pubkey)); other == got {
		t.Fatal("two users share a UUID for one locator")
	}
}
