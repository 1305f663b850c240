//go:build cgo && !purego

package secp

import "testing"

// A cgo build must not fall back to pure Go unnoticed.
func TestCgoBuildUsesLibsecp256k1(t *testing.T) {
	if Implementation() != NameLibsecp256k1 {
		t.Fatalf("Implementation() = %q in a cgo build", Implementation())
	}
}
