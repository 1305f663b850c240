package wtcrypto_test

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

func FuzzDecodeZBase32(f *testing.F) {
	for _, v := range zbase32Vectors {
		f.Add(v.text)
		f.Add(strings.ToUpper(v.text))
	}
	for _, s := range []string{"00", "l1", "?", "=", "yn", "yyy", s5BadSig, "\u212ay"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := wtcrypto.DecodeZBase32(s)
		if err != nil {
			return
		}
		if got := wtcrypto.EncodeZBase32(b); got != strings.ToLower(s) {
			t.Fatalf("DecodeZBase32(%q) = %x, which re-encodes to %q", s, b, got)
		}
	})
}

// FuzzDecryptTx feeds arbitrary blobs straight in (exercising the cipher) and arbitrary
// plaintexts sealed under the right key (exercising the transaction decoder).
func FuzzDecryptTx(f *testing.F) {
	seedTxid, _ := hex.DecodeString(e1TxidInternal)
	for _, p := range []string{e1Tx, t2Tx, e1Blob, "", "00", "0100000000010000000000"} {
		b, _ := hex.DecodeString(p)
		f.Add(b, seedTxid)
	}
	f.Fuzz(func(t *testing.T, data, txidBytes []byte) {
		var txid chainhash.Hash
		copy(txid[:], txidBytes)
		_, _ = wtcrypto.DecryptTx(data, txid)
		if _, err := wtcrypto.DecryptTx(wtcrypto.Encrypt(data, txid), txid); err != nil && !errors.Is(err, wtcrypto.ErrInvalidTransaction) {
			t.Fatalf("sealed blob failed for a reason other than its content: %v", err)
		}
	})
}
