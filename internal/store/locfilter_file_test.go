package store

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// TestFilterFileWordCountOverflowIsRefused: a filter file whose word count wraps the size
// check (count·8 overflowing to the real size) with a matching CRC is refused, not a panic
// in make at start-up.
func TestFilterFileWordCountOverflowIsRefused(t *testing.T) {
	f := newLocFilter(filterMinCapacity)
	p := filepath.Join(t.TempDir(), "teos.db"+filterFileSuffix)
	saved := savedFilter{epoch: make([]byte, filterEpochLen), txid: 7}
	if err := writeFilterFile(p, f, saved); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	words := binary.LittleEndian.Uint64(b[24+8*7:])
	binary.LittleEndian.PutUint64(b[24+8*7:], words+1<<61) // ·8 wraps to the same size
	end := len(b) - 4
	crc := crc32.Update(crc32.Checksum(b[:filterHeaderLen], crcTable), crcTable, b[filterHeaderLen:end])
	binary.LittleEndian.PutUint32(b[end:], crc)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readFilterFile(p, saved); !errors.Is(err, errFilterFile) {
		t.Fatalf("readFilterFile = %v, want errFilterFile", err)
	}
}
