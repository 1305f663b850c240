package wtcrypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/teos-go/teos/pkg/teos"
	"github.com/teos-go/teos/pkg/wtcrypto/secp"
)

// ErrInvalidSignature is wrapped by every error RecoverUserID returns.
var ErrInvalidSignature = errors.New("invalid signature")

const (
	signedMessagePrefix = "Lightning Signed Message:"
	compactSigLen       = 65
	// Compact headers are 27 + recid, plus 4 when the key is compressed. Only compressed
	// keys can be user ids, so 27..30 are refused.
	minCompressedHeader = 31
	maxCompressedHeader = 34
)

// messageDigest is SHA256(SHA256(prefix || msg)), the hash lnd and CLN sign.
func messageDigest(msg []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(signedMessagePrefix))
	h.Write(msg)
	var first [32]byte
	h.Sum(first[:0])
	return sha256.Sum256(first[:])
}

// SignMessage signs msg the way lnd and CLN signmessage do and returns the zbase32 text of
// the 65-byte recoverable signature.
func SignMessage(msg []byte, sk *btcec.PrivateKey) string {
	digest := messageDigest(msg)
	var key [32]byte
	sk.Key.PutBytes(&key)
	rs, recid, err := secp.SignCompact(&digest, &key)
	clear(key[:])
	if err != nil {
		// Only the zero key gets here; keep btcec's answer for it.
		return EncodeZBase32(ecdsa.SignCompact(sk, digest[:], true))
	}
	var raw [compactSigLen]byte
	raw[0] = minCompressedHeader + recid
	copy(raw[1:], rs[:])
	return EncodeZBase32(raw[:])
}

// Secp256k1Implementation names the secp256k1 code in use: "libsecp256k1" (cgo) or
// "pure-go".
func Secp256k1Implementation() string { return secp.Implementation() }

// RecoverUserID returns the compressed public key whose signature over msg is sig.
func RecoverUserID(msg []byte, sig string) (teos.UserID, error) {
	var id teos.UserID
	raw, err := DecodeZBase32(sig)
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	if len(raw) != compactSigLen {
		return id, fmt.Errorf("%w: decoded length %d, want %d", ErrInvalidSignature, len(raw), compactSigLen)
	}
	if raw[0] < minCompressedHeader || raw[0] > maxCompressedHeader {
		return id, fmt.Errorf("%w: header byte %d", ErrInvalidSignature, raw[0])
	}
	digest := messageDigest(msg)
	pub, err := secp.RecoverCompressed(&digest, (*[64]byte)(raw[1:]), raw[0]-minCompressedHeader)
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	return teos.UserID(pub), nil
}

// VerifySignature reports whether sig over msg was made by signer.
func VerifySignature(msg []byte, sig string, signer teos.UserID) bool {
	got, err := RecoverUserID(msg, sig)
	return err == nil && bytes.Equal(got[:], signer[:])
}
