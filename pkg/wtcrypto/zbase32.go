package wtcrypto

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidZBase32 is returned for text that EncodeZBase32 could not have produced.
var ErrInvalidZBase32 = errors.New("invalid zbase32")

const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// zbase32Values maps a byte to its 5-bit value (either case), or -1.
var zbase32Values = func() [256]int8 {
	var t [256]int8
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
	// Five bytes make eight characters with no bits left over; a character at a time through
	// the Builder cost ~40 instructions each (every add's receipt signature is 104).
	i := 0
	for ; i+5 <= len(b); i += 5 {
		v := uint64(b[i])<<32 | uint64(b[i+1])<<24 | uint64(b[i+2])<<16 | uint64(b[i+3])<<8 | uint64(b[i+4])
		var chunk [8]byte
		for k := range chunk {
			chunk[k] = zbase32Alphabet[v>>(35-5*k)&31]
		}
		sb.Write(chunk[:])
	}
	var acc uint32 // pending bits, right-aligned
	var bits uint
	for _, x := range b[i:] {
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
	out := make([]byte, n)
	i, j := 0, 0
	// Eight characters make five bytes with no bits left over.
	for ; i+8 <= len(s); i += 8 {
		var v uint64
		var bad int8
		for k := range 8 {
			x := zbase32Values[s[i+k]]
			bad |= x
			v = v<<5 | uint64(x)&31
		}
		if bad < 0 {
			return nil, badZBase32Char(s, i)
		}
		out[j], out[j+1], out[j+2], out[j+3], out[j+4] = byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		j += 5
	}
	var acc uint32
	var bits uint
	for ; i < len(s); i++ {
		x := zbase32Values[s[i]]
		if x < 0 {
			return nil, badZBase32Char(s, i)
		}
		acc = acc<<5 | uint32(x)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out[j] = byte(acc >> bits)
			j++
			acc &= 1<<bits - 1
		}
	}
	if acc != 0 {
		return nil, fmt.Errorf("%w: non-zero trailing bits", ErrInvalidZBase32)
	}
	return out, nil
}

// badZBase32Char reports the first byte from i on that is not a zbase32 character.
func badZBase32Char(s string, i int) error {
	for zbase32Values[s[i]] >= 0 {
		i++
	}
	return fmt.Errorf("%w: bad character at position %d", ErrInvalidZBase32, i)
}
