// Package tor publishes the tower's public API as a Tor v3 onion service through tor's control
// port, with the onion key kept where and how rust-teos keeps it.
package tor

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/edwards25519"

	"github.com/teos-go/teos/internal/durable"
)

// KeyFileName is the onion key's file in <datadir>/<network>, as rust-teos names it.
const KeyFileName = "onion_v3_sk"

// KeySize is the size of onion_v3_sk: an expanded ED25519 secret key, no header.
const KeySize = 64

// ErrBadKey means onion_v3_sk is not an expanded ED25519 secret key.
var ErrBadKey = errors.New("not a Tor v3 onion key")

// SecretKey is an expanded ED25519 secret key: the clamped scalar, then the 32-byte nonce
// prefix. It is what rust-teos writes to onion_v3_sk and what tor takes as an ED25519-V3 key.
type SecretKey [KeySize]byte

// GenerateKey makes a fresh key the way tor and rust-teos do: SHA-512 of a random seed, the
// first half clamped.
func GenerateKey() (SecretKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return SecretKey{}, fmt.Errorf("generate onion key: %w", err)
	}
	return ExpandSeed(seed), nil
}

// ExpandSeed expands a 32-byte ED25519 seed (RFC 8032 §5.1.5).
func ExpandSeed(seed []byte) SecretKey {
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return SecretKey(h)
}

// ParseKey checks b is an expanded key as rust-teos writes it.
func ParseKey(b []byte) (SecretKey, error) {
	if len(b) > KeySize {
		return SecretKey{}, fmt.Errorf("%w: longer than %d bytes (expanded ED25519 secret key, no header)", ErrBadKey, KeySize)
	}
	if len(b) != KeySize {
		return SecretKey{}, fmt.Errorf("%w: %d bytes, want %d (expanded ED25519 secret key, no header)", ErrBadKey, len(b), KeySize)
	}
	// Every expanded key has a clamped scalar; anything else is another file or format
	// (a tor hs_ed25519_secret_key file, for one, starts with a text header).
	if b[0]&7 != 0 || b[31]&0xc0 != 0x40 {
		return SecretKey{}, fmt.Errorf("%w: the first 32 bytes are not a clamped ED25519 scalar", ErrBadKey)
	}
	return SecretKey(b), nil
}

// PublicKey is scalar·B.
func (k SecretKey) PublicKey() [32]byte {
	s, err := new(edwards25519.Scalar).SetBytesWithClamping(k[:32])
	if err != nil {
		panic(err) // unreachable: the slice is 32 bytes
	}
	var pub [32]byte
	copy(pub[:], new(edwards25519.Point).ScalarBaseMult(s).Bytes())
	return pub
}

// ServiceID is the onion address without ".onion", as tor's control port spells it.
func (k SecretKey) ServiceID() string { return ServiceID(k.PublicKey()) }

// Address is the onion address, "<56 characters>.onion" (rust-teos's form in get_tower_info).
func (k SecretKey) Address() string { return k.ServiceID() + ".onion" }

// ServiceID derives a v3 onion service id from its public key: base32(pubkey || checksum ||
// version), checksum = SHA3-256(".onion checksum" || pubkey || version)[:2], version 3.
func ServiceID(pub [32]byte) string {
	const version = 3
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub[:])
	h.Write([]byte{version})
	sum := h.Sum(nil)
	raw := append(append(pub[:], sum[:2]...), version)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw))
}

// LoadOrCreateKey reads dir/onion_v3_sk, or creates it with a fresh key when it does not
// exist. A file that exists but is not a key is an error: it is never replaced.
func LoadOrCreateKey(dir string) (key SecretKey, created bool, err error) {
	path := filepath.Join(dir, KeyFileName)
	key, err = loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	if key, err = GenerateKey(); err != nil {
		return SecretKey{}, false, err
	}
	// Whole and its name flushed, or not at all; never over a key another process just made.
	created, err = durable.CreateFile(path, key[:], 0o600)
	if err != nil {
		return SecretKey{}, false, fmt.Errorf("store onion key: %w", err)
	}
	if created {
		return key, true, nil
	}
	// Made meanwhile by another process: use that one. Read once only: a name that exists
	// yet reads as missing is a link to nothing, and retrying would never end.
	key, err = loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		target, _ := os.Readlink(path)
		return SecretKey{}, false, fmt.Errorf("read onion key: %s is a link to %s, which does not exist (a volume not mounted?); teosd writes no new key through it", path, target)
	}
	return key, false, err
}

// loadKey reads the key at path; a missing file is an error wrapping fs.ErrNotExist.
func loadKey(path string) (SecretKey, error) {
	b, err := readAtMost(path, KeySize+1)
	if err != nil {
		return SecretKey{}, fmt.Errorf("read onion key: %w", err)
	}
	key, err := ParseKey(b)
	if err != nil {
		return SecretKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// readAtMost reads up to n bytes of path: enough to tell a key from anything else, without
// reading a huge (or endless) file into memory.
func readAtMost(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}
