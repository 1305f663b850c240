package wtcrypto

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidZBase32 is returned for text that EncodeZBase32 could not have produced.
var ErrInvalidZBase32 = errors.New("invalid zbase32")

const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// zbase32Values maps an ASCII byte (either case) to its 5-bit value, or -1.
var zbase32Values = func() [128]int8 {
	var t [128]int8
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(zbase32Alphabet); i++ {
		c := zbase32Alphabet[i]
		t[c] = int8(i)
		if c >= 'a' && c <= 'z' {
			t[c-'a'+'A'] = int8(i)
		}
	}
	return t
}()

// zbase32Len is the length of the encoding of n bytes: ceil(8n/5).
func zbase32Len(n int) int { return (n*8 + 4) / 5 }

// EncodeZBase32 encodes b in zbase32, most significant bit first, without padding.
func EncodeZBase32(b []byte) string {
	var sb strings.Builder
	sb.Grow(zbase32Len(len(b)))
	var acc uint32 // pending bits, right-aligned
	var bits uint
	for _, x := range b {
		acc = acc<<8 | uint32(x)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(zbase32Alphabet[(acc>>bits)&31])
		}
		acc &= 1<<bits - 1
	}
	if bits > 0 {
		sb.WriteByte(zbase32Alphabet[(acc<<(5-bits))&31])
	}
	return sb.String()
}

// DecodeZBase32 is the strict inverse of EncodeZBase32, except that it also accepts upper case.
// A signature must have exactly one accepted spelling per case, so leftover bits must be zero
// and the length must be one EncodeZBase32 can produce.
func DecodeZBase32(s string) ([]byte, error) {
	n := len(s) * 5 / 8
	if zbase32Len(n) != len(s) {
		return nil, fmt.Errorf("%w: %d characters is not a possible length", ErrInvalidZBase32, len(s))
	}
	out := make([]byte, 0, n)
	var acc uint32
	var bits uint
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 128 || zbase32Values[c] < 0 {
			return nil, fmt.Errorf("%w: bad character at position %d", ErrInvalidZBase32, i)
		}
		acc = acc<<5 | uint32(zbase32Values[c])
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
			acc &= 1<<bits - 1
		}
	}
	if acc != 0 {
		return nil, fmt.Errorf("%w: non-zero trailing bits", ErrInvalidZBase32)
	}
	return out, nil
}
