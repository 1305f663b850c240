package serdejson

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPlainEndMatchesBytewise: the eight-bytes-a-step scan stops where a byte-at-a-time scan
// does, from every start, over random strings of plain text with a few bytes of each kind
// that end a run ('"', '\\', controls) and bytes that do not (DEL, >= 0x80, 0x20, '!', '#', '[', ']').
func TestPlainEndMatchesBytewise(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	odd := []byte{'"', '\\', 0, 0x1f, 0x7f, 0x80, 0xff, 0x20, '!', '#', '[', ']', 0x22 ^ 0x80, 0x5c ^ 0x80, 0x9f, 0xa0}
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			switch rng.IntN(12) {
			case 0:
				b[i] = odd[rng.IntN(len(odd))]
			case 1:
				b[i] = byte(rng.IntN(256))
			default:
				b[i] = "0123456789abcdef"[rng.IntN(16)]
			}
		}
		for start := 0; start <= len(b); start++ {
			want := start
			for want < len(b) && plainStrByte[b[want]] {
				want++
			}
			if got := plainEnd(b, start); got != want {
				t.Fatalf("plainEnd(%q, %d) = %d, want %d", b, start, got, want)
			}
		}
	}
}

// BenchmarkDecodeAddBody decodes an add_appointment body with a 500-byte blob, as the public
// API does for every add.
func BenchmarkDecodeAddBody(b *testing.B) {
	body := []byte(`{"appointment":{"locator":"` + strings.Repeat("0f", 16) + `","encrypted_blob":"` + strings.Repeat("a5", 500) +
		`","to_self_delay":42},"signature":"d7i5iau8rdrq49j8ts9ebnb3ynx4n3m6ebkfs8wmz8js3i5n9uwpzpqtxq7nsdyw1ua8p4goq6ma39a7afr5yrt3p6igyqaer6wdbrc5"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body, addAppointmentSpec); err != nil {
			b.Fatal(err)
		}
	}
}
