package wtcrypto_test

import (
	"errors"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto"
)

// FuzzRecoverUserID checks that any signature text is either rejected with
// ErrInvalidSignature or recovers a key that VerifySignature agrees with, and that a
// signature made with a key derived from the input always recovers that key.
func FuzzRecoverUserID(f *testing.F) {
	f.Add([]byte(s1Msg), s1Sig, []byte{1})
	f.Add([]byte(s5Msg), s5BadSig, []byte{2})
	f.Add([]byte{}, "", []byte{})
	f.Add([]byte("x"), s1Sig[:len(s1Sig)-1], []byte{0xff})
	f.Add([]byte("x"), "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy", []byte{3})
	f.Fuzz(func(t *testing.T, msg []byte, sig string, keySeed []byte) {
		id, err := wtcrypto.RecoverUserID(msg, sig)
		if err != nil {
			if !errors.Is(err, wtcrypto.ErrInvalidSignature) {
				t.Fatalf("RecoverUserID(%q, %q): error %v does not wrap ErrInvalidSignature", msg, sig, err)
			}
		} else if !wtcrypto.VerifySignature(msg, sig, id) {
			t.Fatalf("RecoverUserID(%q, %q) = %s, but VerifySignature disagrees", msg, sig, id)
		}

		var sk [32]byte
		copy(sk[:], keySeed)
		sk[31] |= 1 // never the zero scalar
		key, _ := btcec.PrivKeyFromBytes(sk[:])
		want := teos.UserIDFromPubKey(key.PubKey())
		got, err := wtcrypto.RecoverUserID(msg, wtcrypto.SignMessage(msg, key))
		if err != nil || got != want {
			t.Fatalf("own signature over %q recovered %s, %v; want %s", msg, got, err, want)
		}
	})
}
