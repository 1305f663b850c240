package wtcrypto_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/teos-go/teos/pkg/wtcrypto"
)

// TV-Z1, plus the two 65-byte signatures whose raw bytes docs/VECTORS.md gives (S1, S3).
var zbase32Vectors = []struct{ text, hex string }{
	{"", ""},
	{"yy", "00"},
	{"oy", "80"},
	{"tqrey", "8b8880"},
	{"6n9hq", "f0bfc7"},
	{"4t7ye", "d47a04"},
	{"6im5sdy", "f557bb0c"},
	{"ybndrfg8ejkmcpqxot1uwisza345h769", "00443214c74254b635cf84653a56d7c675be77df"},
	{s1Sig, s1Raw},
	{s3Sig, s3Raw},
}

func TestZBase32Vectors(t *testing.T) {
	for _, v := range zbase32Vectors {
		want := mustHex(t, v.hex)
		if got := wtcrypto.EncodeZBase32(want); got != v.text {
			t.Errorf("EncodeZBase32(%s) = %q, want %q", v.hex, got, v.text)
		}
		for _, in := range []string{v.text, strings.ToUpper(v.text)} {
			got, err := wtcrypto.DecodeZBase32(in)
			if err != nil {
				t.Errorf("DecodeZBase32(%q): %v", in, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("DecodeZBase32(%q) = %x, want %s", in, got, v.hex)
			}
		}
	}
}

func TestZBase32Rejects(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"TV-Z1 00", "00"},
		{"TV-Z1 l1", "l1"},
		{"TV-Z1 ?", "?"},
		{"TV-Z1 =", "="},
		{"one char", "y"},
		{"three chars", "yyy"},
		{"six chars", "yyyyyy"},
		{"105 chars", s1Sig + "y"},
		{"103 chars", s1Sig[:103]},
		{"trailing bit set", "yn"},           // 'n' = 2: a bit past the 8 encoded ones
		{"trailing bit of 3 bytes", "tqreb"}, // "b" = 00001: its last bit is past the 24 encoded
		{"non-ascii", "y\u00ff"},
		{"Kelvin sign folds to k in Unicode", "\u212a" + "y"},
		{"space", "y y"},
		{"TV-S5", s5BadSig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := wtcrypto.DecodeZBase32(tc.in); !errors.Is(err, wtcrypto.ErrInvalidZBase32) {
				t.Fatalf("DecodeZBase32(%q) = %x, %v; want ErrInvalidZBase32", tc.in, b, err)
			}
		})
	}
}

func TestZBase32RoundTripAllLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 70; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		s := wtcrypto.EncodeZBase32(b)
		if want := (n*8 + 4) / 5; len(s) != want {
			t.Fatalf("len(EncodeZBase32(%d bytes)) = %d, want %d", n, len(s), want)
		}
		got, err := wtcrypto.DecodeZBase32(s)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %s: got %x, %v", hex.EncodeToString(b), got, err)
		}
	}
}
