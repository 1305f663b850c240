package store

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
)

// bbolt's meta page, as its files hold it (native byte order): after a 16-byte page header,
// magic, version, page size, flags, the root bucket (2 words), the freelist page, the high
// water mark (pgid), the transaction id, and an FNV-64a checksum of the fields before it.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	metaOffset       = 16
	metaChecksumFrom = metaOffset + 56
	metaEnd          = metaChecksumFrom + 8
)

type boltMeta struct {
	pageSize, pgid, txid uint64
}

// checkWhole refuses a bbolt file shorter than its own header says. bbolt maps the file and
// reads the pages it counts, so pages missing past the end (a copy cut short, a restore from an
// incomplete backup) killed the process with SIGBUS instead of failing the open. A missing or
// empty file, or one without a valid header, is left to bbolt to create or refuse.
func checkWhole(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // bbolt reports it, or creates the file
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil
	}
	m0, ok0 := readMeta(f, 0)
	pageSize := uint64(os.Getpagesize())
	if ok0 {
		pageSize = m0.pageSize
	}
	m1, ok1 := readMeta(f, int64(pageSize))
	// bbolt's choice: the newer valid meta page.
	m, ok := m0, ok0
	if ok1 && (!ok0 || m1.txid > m0.txid) {
		m, ok = m1, true
	}
	if !ok {
		return nil
	}
	if need := m.pgid * m.pageSize; uint64(fi.Size()) < need {
		return fmt.Errorf("%w: the file was cut short: %d bytes, its header counts %d (an incomplete copy or restore?)",
			ErrCorrupt, fi.Size(), need)
	}
	return nil
}

// readMeta reads the meta page at off; ok is false unless it is a valid one.
func readMeta(f *os.File, off int64) (boltMeta, bool) {
	var b [metaEnd]byte
	if n, _ := f.ReadAt(b[:], off); n < len(b) {
		return boltMeta{}, false
	}
	u32 := func(at int) uint32 { return binary.NativeEndian.Uint32(b[at:]) }
	u64 := func(at int) uint64 { return binary.NativeEndian.Uint64(b[at:]) }
	h := fnv.New64a()
	h.Write(b[metaOffset:metaChecksumFrom])
	if u32(metaOffset) != boltMagic || u32(metaOffset+4) != boltVersion || h.Sum64() != u64(metaChecksumFrom) {
		return boltMeta{}, false
	}
	m := boltMeta{pageSize: uint64(u32(metaOffset + 8)), pgid: u64(metaOffset + 40), txid: u64(metaOffset + 48)}
	if m.pageSize == 0 {
		return boltMeta{}, false
	}
	return m, true
}
