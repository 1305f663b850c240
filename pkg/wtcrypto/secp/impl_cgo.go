//go:build cgo && !purego

package secp

import (
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	gethsecp "github.com/ethereum/go-ethereum/crypto/secp256k1"
)

const implementation = NameLibsecp256k1

var (
	recoverImpl = libRecover
	signImpl    = libSign
)

// libRecover checks recid itself: the wrapper passes it to the C parser, which is defined
// only for 0..3.
func libRecover(hash *[32]byte, sig *[64]byte, recid byte) ([33]byte, error) {
	var out [33]byte
	if recid > 3 {
		return out, ErrNotRecoverable
	}
	var full [65]byte
	copy(full[:], sig[:])
	full[64] = recid
	pub, err := gethsecp.RecoverPubkey(hash[:], full[:])
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		return out, ErrNotRecoverable
	}
	out[0] = 2 | pub[64]&1
	copy(out[1:], pub[1:33])
	return out, nil
}

// libSign hands a hash >= n to the pure-Go signer: libsecp256k1 derives the RFC 6979
// nonce from the unreduced hash there and decred from the reduced one, so both signatures
// would be valid but different. A SHA-256 output is >= n with probability about 2^-128.
func libSign(hash *[32]byte, key *[32]byte) ([64]byte, byte, error) {
	var sig [64]byte
	var h secp256k1.ModNScalar
	if h.SetBytes(hash) != 0 {
		return pureSign(hash, key)
	}
	full, err := gethsecp.Sign(hash[:], key[:])
	if err != nil || len(full) != 65 {
		return sig, 0, ErrBadSecretKey
	}
	copy(sig[:], full[:64])
	return sig, full[64], nil
}
