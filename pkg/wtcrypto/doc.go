// Package wtcrypto is the cryptography a teos v0.2 tower and its clients share: zbase32,
// Lightning message signing with public-key recovery, and the ChaCha20-Poly1305 blob cipher
// keyed by the dispute txid.
package wtcrypto
