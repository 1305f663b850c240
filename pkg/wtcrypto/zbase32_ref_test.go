package wtcrypto

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// refEncodeZBase32 and refDecodeZBase32 are the character-at-a-time coder that the
// eight-characters-a-step one replaced, kept to check it against.
func refEncodeZBase32(b []byte) string {
	var sb strings.Builder
	var acc uint32
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

func refDecodeZBase32(s string) ([]byte, error) {
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

// TestZBase32MatchesReference: the coder gives the reference's text for every byte string, and
// the reference's bytes or error text (with the same position) for every string, over random
// lengths that cover whole steps and every tail, both cases and stray bytes.
func TestZBase32MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	stray := []byte("0lv2 =\x00\x7f\x80\xff")
	for range 30000 {
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		text := EncodeZBase32(b)
		if want := refEncodeZBase32(b); text != want {
			t.Fatalf("EncodeZBase32(%x) = %q, want %q", b, text, want)
		}
		in := []byte(text)
		if rng.IntN(2) == 0 {
			in = bytes.ToUpper(in)
		}
		switch rng.IntN(4) {
		case 0: // a stray byte anywhere
			if len(in) > 0 {
				in[rng.IntN(len(in))] = stray[rng.IntN(len(stray))]
			}
		case 1: // another length
			in = append(in, zbase32Alphabet[rng.IntN(32)])
		case 2: // any last character, which may leave bits set
			if len(in) > 0 {
				in[len(in)-1] = zbase32Alphabet[rng.IntN(32)]
			}
		}
		got, err := DecodeZBase32(string(in))
		want, wantErr := refDecodeZBase32(string(in))
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("DecodeZBase32(%q) = %x, %v; want %x, %v", in, got, err, want, wantErr)
		}
		if err != nil && !errors.Is(err, ErrInvalidZBase32) {
			t.Fatalf("DecodeZBase32(%q): %v is not ErrInvalidZBase32", in, err)
		}
	}
}

// BenchmarkZBase32Signature encodes and decodes a 65-byte signature, as every add does once
// each (the user's signature read, the receipt's written).
func BenchmarkZBase32Signature(b *testing.B) {
	raw := bytes.Repeat([]byte{0xa7}, 65)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeZBase32(EncodeZBase32(raw)); err != nil {
			b.Fatal(err)
		}
	}
}
