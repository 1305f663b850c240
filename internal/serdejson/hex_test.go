package serdejson

import (
	"math/rand/v2"
	"testing"
)

// TestDecodeHexMatchesSlow: the encoding/hex path answers every input as the digit-at-a-time
// decoder does (bytes and the crate's error text), over random strings biased to hex digits.
func TestDecodeHexMatchesSlow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const digits = "0123456789abcdefABCDEF"
	inputs := [][]byte{nil, {}, []byte("0"), []byte("zz"), []byte("0g"), []byte("\xff0"), []byte("00\xc3\xa9")}
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			if rng.IntN(50) == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = digits[rng.IntN(len(digits))]
			}
		}
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		got, gotMsg := decodeHex(in)
		want, wantMsg := decodeHexSlow(in)
		if gotMsg != wantMsg || string(got) != string(want) || (got == nil) != (want == nil) {
			t.Fatalf("decodeHex(%q) = %x %q, want %x %q", in, got, gotMsg, want, wantMsg)
		}
	}
}
