// Package secp holds the two secp256k1 implementations behind wtcrypto's recoverable
// signatures: libsecp256k1 through cgo (go-ethereum's crypto/secp256k1, which ships the C
// library's source in its Go module) and decred's pure-Go secp256k1. The libsecp256k1 one
// is used when cgo is on and the purego build tag is not set; both answer every input the
// same way (see the differential test), so the choice changes speed, never behaviour.
package secp

import (
	"errors"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Errors are the same values from both implementations, so callers cannot tell them apart.
var (
	// ErrNotRecoverable: r or s out of [1, n-1], a recovery id above 3, no curve point for
	// r, or the point at infinity as the key.
	ErrNotRecoverable = errors.New("signature does not recover a public key")
	// ErrBadSecretKey: the secret key is zero or not below the group order.
	ErrBadSecretKey = errors.New("invalid secret key")
)

// Names reported by Implementation.
const (
	NameLibsecp256k1 = "libsecp256k1"
	NamePureGo       = "pure-go"
)

// Implementation names the implementation RecoverCompressed and SignCompact use.
func Implementation() string { return implementation }

// RecoverCompressed returns the compressed public key that made the signature r||s (sig)
// with recovery id recid over hash. High-S signatures are accepted, as by both libraries.
func RecoverCompressed(hash *[32]byte, sig *[64]byte, recid byte) ([33]byte, error) {
	return recoverImpl(hash, sig, recid)
}

// SignCompact signs hash with the secret key (RFC 6979 nonce, low S) and returns r||s and
// the recovery id (0..3).
func SignCompact(hash *[32]byte, key *[32]byte) ([64]byte, byte, error) {
	return signImpl(hash, key)
}

// compactHeaderCompressed is the compact-signature header of recovery id 0 for a
// compressed key (27 + 4), the form decred's RecoverCompact reads.
const compactHeaderCompressed = 31

func pureRecover(hash *[32]byte, sig *[64]byte, recid byte) ([33]byte, error) {
	var out [33]byte
	if recid > 3 {
		return out, ErrNotRecoverable
	}
	var compact [65]byte
	compact[0] = compactHeaderCompressed + recid
	copy(compact[1:], sig[:])
	pk, _, err := ecdsa.RecoverCompact(compact[:], hash[:])
	if err != nil {
		return out, ErrNotRecoverable
	}
	copy(out[:], pk.SerializeCompressed())
	return out, nil
}

func pureSign(hash *[32]byte, key *[32]byte) ([64]byte, byte, error) {
	var sig [64]byte
	var k secp256k1.ModNScalar
	if overflow := k.SetBytes(key); overflow != 0 || k.IsZero() {
		return sig, 0, ErrBadSecretKey
	}
	compact := ecdsa.SignCompact(secp256k1.NewPrivateKey(&k), hash[:], true)
	copy(sig[:], compact[1:])
	return sig, compact[0] - compactHeaderCompressed, nil
}
