package httpapi

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadAll: readAll returns exactly what the reader held whatever Content-Length announced
// (less, the same, more, a large value that is not reserved up front), through short reads, and
// passes a read error on.
func TestReadAll(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 3000) // 48,000 bytes, past the preallocation
	for _, tc := range []struct {
		n        int
		announce uint64
	}{{0, 0}, {10, 10}, {10, 0}, {10, 5}, {2048, 2048}, {len(body), uint64(len(body))}, {len(body), 100}, {10, 2_200_000}} {
		got, err := readAll(iotest.OneByteReader(bytes.NewReader(body[:tc.n])), tc.announce)
		if err != nil || !bytes.Equal(got, body[:tc.n]) {
			t.Fatalf("%d bytes announced as %d: got %d bytes, %v", tc.n, tc.announce, len(got), err)
		}
		if tc.n < 16<<10 && cap(got) > 16<<10+1 {
			t.Errorf("announced %d: %d bytes reserved before they arrived", tc.announce, cap(got))
		}
	}
	boom := errors.New("boom")
	if _, err := readAll(io.MultiReader(bytes.NewReader(body[:5]), iotest.ErrReader(boom)), 5); !errors.Is(err, boom) {
		t.Fatalf("read error: got %v", err)
	}
}
