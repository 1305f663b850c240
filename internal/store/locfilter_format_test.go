package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/teos-go/teos/pkg/teos"
)

// TestLocFilterFormatPinned pins the filter's bit layout for fixed keys. The saved file
// (filterFileMagic) is loaded by whichever build opens the data dir next, older or newer: a
// build that read another build's bits differently would skip locators that are stored and
// miss their breaches. If this test fails, change filterFileMagic along with the layout.
func TestLocFilterFormatPinned(t *testing.T) {
	// Built as readFilterFile builds a loaded one: the file gives the keys and the words.
	f := &locFilter{k0: 0x0123456789abcdef, k1: 0xfedcba9876543210, nblocks: 64}
	f.words = make([]uint64, f.nblocks*filterWordsPerBlk)
	for i := range 1000 {
		var loc teos.Locator
		binary.BigEndian.PutUint64(loc[:8], uint64(i))
		binary.BigEndian.PutUint64(loc[8:], uint64(i)*0x9e3779b97f4a7c15)
		f.add(&loc)
	}
	h := sha256.New()
	for _, w := range f.words {
		_ = binary.Write(h, binary.LittleEndian, w)
	}
	const want = "1ab2adbe2b1667d423e5d56a9ebd923f9fe8e257be1895e3bd3b0488266f7c2c"
	if got := hex.EncodeToString(h.Sum(nil)); got != want || filterFileMagic != "TEOSLF02" {
		t.Fatalf("filter layout %s (magic %s), pinned %s (TEOSLF02): a changed layout needs a new filterFileMagic", got, filterFileMagic, want)
	}
}
