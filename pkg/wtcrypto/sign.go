package wtcrypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/teos-go/teos/pkg/teos"
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
func messageDigest(msg []byte) []byte {
	h := sha256.New()
	h.Write([]byte(signedMessagePrefix))
	h.Write(msg)
	first := h.Sum(nil)
	second := sha256.Sum256(first)
	return second[:]
}

// SignMessage signs msg the way lnd and CLN signmessage do and returns the zbase32 text of
// the 65-byte recoverable signature.
func SignMessage(msg []byte, sk *btcec.PrivateKey) string {
	return EncodeZBase32(ecdsa.SignCompact(sk, messageDigest(msg), true))
}

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
	pk, _, err := ecdsa.RecoverCompact(raw, messageDigest(msg))
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	return teos.UserIDFromPubKey(pk), nil
}

// VerifySignature reports whether sig over msg was made by signer.
func VerifySignature(msg []byte, sig string, signer teos.UserID) bool {
	got, err := RecoverUserID(msg, sig)
	return err == nil && bytes.Equal(got[:], signer[:])
}
