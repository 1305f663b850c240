package wtcrypto

import (
	"bytes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/btcsuite/btcd/wire"
	"golang.org/x/crypto/chacha20poly1305"
)

var (
	// ErrDecryptionFailed means the blob was not sealed with the key of this txid.
	ErrDecryptionFailed = errors.New("decryption failed")
	// ErrInvalidTransaction means the blob opened but is not exactly one transaction.
	ErrInvalidTransaction = errors.New("decrypted blob is not a valid transaction")
)

// The key is single-use (one per dispute txid), which is why a constant nonce is safe.
var zeroNonce [chacha20poly1305.NonceSize]byte

// blobCipher returns ChaCha20-Poly1305 keyed with SHA256 of the internal-order txid bytes.
func blobCipher(txid chainhash.Hash) cipher.AEAD {
	key := sha256.Sum256(txid[:])
	aead, err := chacha20poly1305.New(key[:])
	if err != nil {
		// Unreachable: New only fails on a key that is not 32 bytes.
		panic(fmt.Sprintf("wtcrypto: chacha20poly1305.New: %v", err))
	}
	return aead
}

// Encrypt seals plaintext (a serialized penalty tx) under txid, the dispute transaction's id,
// and returns ciphertext || tag.
func Encrypt(plaintext []byte, txid chainhash.Hash) []byte {
	return blobCipher(txid).Seal(nil, zeroNonce[:], plaintext, nil)
}

// Decrypt opens a blob made by Encrypt with the same txid.
func Decrypt(blob []byte, txid chainhash.Hash) ([]byte, error) {
	plain, err := blobCipher(txid).Open(nil, zeroNonce[:], blob, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecryptionFailed, err)
	}
	return plain, nil
}

// DecryptTx opens blob and decodes exactly one consensus-serialized transaction from it.
func DecryptTx(blob []byte, txid chainhash.Hash) (*wire.MsgTx, error) {
	plain, err := Decrypt(blob, txid)
	if err != nil {
		return nil, err
	}
	r := bytes.NewReader(plain)
	tx := new(wire.MsgTx)
	if err := tx.Deserialize(r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTransaction, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidTransaction, r.Len())
	}
	return tx, nil
}
