package store

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkLocFilterLoadCold10M is the start-up cost the saved filter adds to Open at 10M
// appointments: reading its file (23 MiB) with the file dropped from the page cache.
func BenchmarkLocFilterLoadCold10M(b *testing.B) {
	f := newLocFilter(12_500_000) // Open sizes it 1.25x the count
	p := filepath.Join(b.TempDir(), "teos.db"+filterFileSuffix)
	saved := savedFilter{epoch: make([]byte, filterEpochLen), txid: 7}
	if err := writeFilterFile(p, f, saved); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(8 * len(f.words)))
	for b.Loop() {
		b.StopTimer()
		fd, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		_ = unix.Fadvise(int(fd.Fd()), 0, 0, unix.FADV_DONTNEED)
		fd.Close()
		b.StartTimer()
		if _, err := readFilterFile(p, saved); err != nil {
			b.Fatal(err)
		}
	}
}
